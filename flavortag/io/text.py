"""Reading the event text format (docs/FORMAT.md), plain or gzip-compressed, with bounded memory.

The text is read a piece at a time (:data:`PIECE_BYTES`): read a fixed number
of bytes, cut at the last event boundary (the last line starting with
``Axis``), parse the complete events, carry the remainder into the next
piece. A chunk handed to the caller gathers the pieces of about ``step_size``
bytes. Each piece goes through the fast path (:mod:`flavortag.io.text_fast`);
a piece it refuses is cut in halves at event boundaries until the broken part
is small, and that part goes through the careful parser
(:mod:`flavortag.io.text_careful`), which names the exact line. Worker
threads (:data:`PARSE_WORKERS`) run the fast parses of the pieces before while
the next is read and prepared; results are taken in file order.
Line numbers are only needed on the careful path, so they are counted lazily
(by re-reading the file up to the piece) instead of on every piece.

Compression is recognised by the gzip magic bytes, whatever the file name. A
gzip stream that ends before its end-of-stream marker (a truncated copy) is
always an error, even with ``on_error="skip"``: how much is missing is unknown.

Junk costs bounded time and memory, whatever the size or compression ratio
(issue 21), and is an error in both ``on_error`` modes: text holding a NUL
byte is binary (or a damaged file) and is refused at the piece that holds it
(for junk: the first); a line longer than :data:`~flavortag.io.text_input.MAX_LINE_BYTES` or an event
longer than :data:`~flavortag.io.text_input.MAX_EVENT_BYTES` (no ``Axis`` line in that much text) is
refused as soon as the reader has read that much, instead of growing its buffer
to the whole (decompressed) file.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from flavortag.io.columns import ColumnsBuilder, EventColumns
from flavortag.io.errors import EventFormatError, OnError, ReadReport
from flavortag.io.text_careful import parse_careful
from flavortag.io.text_fast import (
    PieceRows,
    fill_rows,
    parse_fast,
    parse_table,
    prepare,
    split_rows,
)
from flavortag.io.text_fast import normalise as normalise_text
from flavortag.io.text_input import (
    BOM,
    LineCounter,
    gzip_valid_end,
    opener,
    refuse_binary,
    refuse_huge_event,
    sniff,
)

#: Default bytes of text per chunk handed to the caller.
DEFAULT_CHUNK_BYTES: int = 16_000_000
#: Bytes of text read and parsed at a time (a chunk gathers several): keeps the
#: text buffer and the parser's scratch memory small next to a chunk's arrays.
PIECE_BYTES: int = 2 * 1024**2
#: Chunks of at least 64 pieces (whole-file reads) are read in pieces this many times
#: larger: fewer per-piece costs, where a few MB more of text buffers do not matter.
LARGE_CHUNK_PIECE_FACTOR: int = 2
#: Pieces parsed at once by worker threads (pyarrow.csv and numpy release the GIL).
PARSE_WORKERS: int = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
#: Prepared pieces waiting beside those being parsed, so that a worker that is done finds
#: the next one ready (large chunks only: streaming keeps its text buffers few).
QUEUED_PIECES: int = 1
#: Text refused by the fast path is halved down to about this size for the careful parser.
CAREFUL_BLOCK_BYTES: int = 64 * 1024
_SLACK_BYTES = 256 * 1024  # room for the carried-over partial event without reallocating


class _PieceParser:
    """Parses the pieces of one text file: fast path, halving, careful path."""

    def __init__(
        self, path: str, label: int, on_error: OnError, report: ReadReport, lines: LineCounter,
        *, queued: int = 0,
    ) -> None:
        self.queued = queued  # prepared pieces waiting beside those in the workers
        self.path = path
        self.label = label
        self.on_error = on_error
        self.report = report
        self.lines = lines
        self.normalise_first = False  # the previous piece needed normalising

    def parse_all(
        self, pieces: Iterator[_Piece]
    ) -> Iterator[tuple[_Piece, list[EventColumns | PieceRows]]]:
        """Events of each piece, in order; the fast parses of :data:`PARSE_WORKERS` pieces run at once.

        Worker threads run pyarrow and the column extraction of pieces
        N - k .. N - 1 while this thread reads and prepares piece N (both
        release the GIL for their heavy parts); results come back in file
        order, and a refused piece goes to the careful path here, in order.
        ``pieces`` must leave a piece's buffer alone until
        :data:`PARSE_WORKERS` + :attr:`queued` more pieces have been asked for
        after it (see :func:`_pieces`). A file that is a single piece is parsed with
        pyarrow's own threads instead. A piece the fast path reads comes as
        one :class:`~flavortag.io.text_fast.PieceRows`, for :meth:`append_to` to write into the chunk.
        """
        workers = PARSE_WORKERS
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="flavortag-parse") as pool:
            pending: deque[tuple[_Piece, Future | None, bool]] = deque()
            for piece in _finishing_first(pieces, pending, self._finish):
                tried = not self.normalise_first
                prepared = (
                    prepare(piece.buf, 0, piece.cut, last=piece.last) if tried else None
                )
                future = None
                if prepared is not None:
                    alone = piece.last and piece.offset == 0  # the whole file: nothing to run beside
                    future = pool.submit(_split_piece, prepared, alone)
                pending.append((piece, future, tried))
                if len(pending) > workers + self.queued:
                    done = pending.popleft()
                    yield done[0], self._finish(*done)
            while pending:
                done = pending.popleft()
                yield done[0], self._finish(*done)

    def _finish(self, piece: _Piece, future: Future | None, tried: bool) -> list[EventColumns | PieceRows]:
        cols = future.result() if future is not None else None
        if cols is not None:
            return [cols]
        out: list[EventColumns] = []
        self._parse(piece.buf, 0, piece.cut, piece.offset, piece.last, out, fast_tried=tried)
        return list(out)

    def append_to(self, chunk: ColumnsBuilder, piece: _Piece, events: list[EventColumns | PieceRows]) -> None:
        """Add a piece's events to ``chunk`` (rows the fast checks refuse: the careful way)."""
        for cols in events:
            if isinstance(cols, EventColumns):
                chunk.append(cols)
            elif not fill_rows(cols, self.label, chunk):
                out: list[EventColumns] = []
                self._parse(piece.buf, 0, piece.cut, piece.offset, piece.last, out, fast_tried=True)
                for part in out:
                    chunk.append(part)

    def _parse(
        self, buf: bytearray, start: int, stop: int, offset: int, last: bool, out: list[EventColumns],
        *, fast_tried: bool = False,
    ) -> None:
        if start >= stop:
            return
        skip_fast = self.normalise_first or fast_tried
        cols = None if skip_fast else parse_fast(buf, start, stop, self.label, last=last)
        if cols is None:
            original = bytes(memoryview(buf)[start:stop])
            plain = normalise_text(original)
            if plain != original:
                cols = parse_fast(bytearray(plain), 0, len(plain), self.label, last=last)
                self.normalise_first = cols is not None
            elif self.normalise_first and not fast_tried:
                self.normalise_first = False
                cols = parse_fast(buf, start, stop, self.label, last=last)
        if cols is not None:
            out.append(cols)
            return
        if stop - start > CAREFUL_BLOCK_BYTES:
            middle = start + (stop - start) // 2
            cut = event_boundary(buf, start, middle, stop)
            if cut is not None:
                self._parse(buf, start, cut, offset, False, out)
                self._parse(buf, cut, stop, offset + (cut - start), last, out)
                return
        out.append(
            parse_careful(
                bytes(memoryview(buf)[start:stop]), self.lines.line_at(offset), self.path, self.label,
                self.on_error, self.report, last=last,
            )
        )


def _finishing_first(
    pieces: Iterator[_Piece], pending: deque[tuple[_Piece, Future | None, bool]],
    finish: Callable[[_Piece, Future | None, bool], object],
) -> Iterator[_Piece]:
    """``pieces``; an error in reading one is raised after the pieces in flight are parsed.

    So a file's errors come in file order: a piece read ahead that is refused
    (binary data, an endless event) does not hide a bad line before it.
    """
    iterator = iter(pieces)
    while True:
        try:
            piece = next(iterator)
        except StopIteration:
            return
        except EventFormatError:
            for done in pending:
                finish(*done)
            raise
        yield piece


def _split_piece(prepared: tuple[pa.Buffer, int], threads: bool) -> PieceRows | None:
    table = parse_table(prepared, threads=threads)
    return None if table is None else split_rows(table, prepared[1])


def event_boundary(buf: bytearray, start: int, near: int, stop: int) -> int | None:
    """Offset of the start of a line beginning with ``Axis``, in ``(start, stop)``, close to ``near``."""
    at = buf.find(b"\nAxis", near, stop)
    if at < 0 or at + 1 >= stop:
        at = buf.rfind(b"\nAxis", start, near)
    return at + 1 if start < at + 1 < stop else None


def _last_event_start(buf: bytearray, stop: int) -> int:
    """Offset of the last line in ``buf[:stop]`` starting with ``Axis`` (after blanks), or -1."""
    at = buf.rfind(b"\nAxis", 0, stop)
    if at >= 0:
        return at + 1
    # Axis lines indented with whitespace: look at each "Axis" from the end.
    at = buf.rfind(b"Axis", 0, stop)
    while at > 0:
        line_start = buf.rfind(b"\n", 0, at) + 1
        if line_start > 0 and not buf[line_start:at].strip():
            return line_start
        at = buf.rfind(b"Axis", 0, at)
    return -1


class _Piece:
    """Text ``buf[:cut]`` (whole events) starting at ``offset``; ``last``: it ends the file."""

    __slots__ = ("buf", "cut", "offset", "last", "raw_position")

    def __init__(self, buf: bytearray, cut: int, offset: int, last: bool, raw_position: int) -> None:
        self.buf, self.cut, self.offset, self.last, self.raw_position = buf, cut, offset, last, raw_position


def _pieces(
    stream: BinaryIO, raw: BinaryIO, piece_bytes: int, path: str,
    open_streams: Callable[[], tuple[BinaryIO, BinaryIO]], *, read_ahead: bool, queued: int = 0,
) -> Iterator[_Piece]:
    """Pieces of whole events, each about ``piece_bytes`` of text.

    Buffers are used in turn, so a piece's text stays intact until
    :data:`PARSE_WORKERS` + ``queued`` + 1 more pieces are asked for (the
    parser's workers and its queue hold that many pieces before the one it
    prepares). With ``read_ahead`` (gzip input) a thread also reads
    and decompresses the following piece (zlib releases the GIL) meanwhile.
    """
    def fill(buf: bytearray, pending: bytes) -> tuple[bytearray, int, bool, int]:
        need = len(pending) + piece_bytes
        if len(buf) < need:
            buf = bytearray(need + _SLACK_BYTES)
        buf[: len(pending)] = pending
        with memoryview(buf) as view:
            n_read = _read_into(stream, view[len(pending) : need], path, open_streams)
        return buf, len(pending) + n_read, n_read < piece_bytes, raw.tell()

    def grow(buf: bytearray, length: int) -> tuple[bytearray, int, bool, int]:
        """Read ``piece_bytes`` more after ``buf[:length]`` (one copy of it when the buffer must grow)."""
        need = length + piece_bytes
        if len(buf) < need:
            bigger = bytearray(need + _SLACK_BYTES)
            with memoryview(buf) as old:
                bigger[:length] = old[:length]
            buf = bigger
        with memoryview(buf) as view:
            n_read = _read_into(stream, view[length:need], path, open_streams)
        return buf, length + n_read, n_read < piece_bytes, raw.tell()

    ring = [bytearray(piece_bytes + _SLACK_BYTES) for _ in range(PARSE_WORKERS + queued + (2 if read_ahead else 1))]
    turn = 0
    pending = b""
    offset = 0
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flavortag-read") if read_ahead else None
    future: Future | None = pool.submit(fill, ring[0], pending) if pool else None
    try:
        while True:
            if future is not None:
                buf, length, eof, raw_position = future.result()
                future = None
            else:
                buf, length, eof, raw_position = fill(ring[turn], pending)
            if offset == 0:
                sniff(buf, length, path)
            refuse_binary(buf, 0, length, offset, path, open_streams)
            if offset == 0 and buf.startswith(BOM):
                buf[: len(BOM)] = b"   "  # a UTF-8 byte-order mark: whitespace to the parsers
            cut = length if eof else _last_event_start(buf, length)
            while cut <= 0 and not eof:  # no event boundary in the piece
                if offset == 0 and length >= piece_bytes and buf.find(b"Axis", 0, length) < 0:
                    cut = buf.rfind(b"\n", 0, length) + 1  # stray rows before any event: check them now
                    if cut > 0:
                        break
                refuse_huge_event(buf, length, offset, path, open_streams)
                before = length
                buf, length, eof, raw_position = grow(buf, length)  # a huge event
                ring[turn] = buf  # the smaller one can go
                refuse_binary(buf, before, length, offset, path, open_streams)
                cut = length if eof else _last_event_start(buf, length)
            ring[turn] = buf  # it may have grown
            turn = (turn + 1) % len(ring)
            pending = bytes(memoryview(buf)[cut:length])
            if pool is not None and not eof:
                future = pool.submit(fill, ring[turn], pending)
            yield _Piece(buf, cut, offset, eof, raw_position)
            if eof:
                return
            offset += cut
    finally:
        if pool is not None:
            if future is not None:
                future.cancel()
                try:
                    future.result()
                except Exception:  # noqa: BLE001 -- the caller's error wins
                    pass
            pool.shutdown()


def iter_text_columns(
    path: str | Path,
    label: int,
    on_error: OnError,
    report: ReadReport,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Iterator[tuple[EventColumns, int]]:
    """Yield ``(events, bytes of the file consumed so far)``, about ``chunk_bytes`` of text at a time.

    The text is read and parsed :data:`PIECE_BYTES` at a time (more for very
    large chunks: :data:`LARGE_CHUNK_PIECE_FACTOR`), so memory stays
    near one chunk's arrays (twice while its pieces are joined) plus a few
    pieces of text, unless a single event is larger than a piece (the piece
    then grows to hold it).
    """
    shown = str(path)
    open_streams = opener(path)
    lines = LineCounter(open_streams)
    stream, raw = open_streams()
    text_bytes = os.path.getsize(path) if stream is raw else None  # unknown for gzip
    large = chunk_bytes >= 64 * PIECE_BYTES  # e.g. a whole-file read
    queued = QUEUED_PIECES if large else 0
    parser = _PieceParser(shown, label, on_error, report, lines, queued=queued)
    try:
        piece_bytes = PIECE_BYTES * (LARGE_CHUNK_PIECE_FACTOR if large else 1)
        pieces = _pieces(
            stream, raw, min(chunk_bytes, piece_bytes), shown, open_streams, read_ahead=stream is not raw,
            queued=queued,
        )
        chunk = ColumnsBuilder()
        n_bytes = 0
        for piece, events in parser.parse_all(pieces):
            parser.append_to(chunk, piece, events)
            if n_bytes == 0 and len(chunk) and piece.offset == 0:
                _reserve(chunk, piece, chunk_bytes, text_bytes)
            n_bytes += piece.cut
            if n_bytes >= chunk_bytes or piece.last:
                # Hand the parser's scratch memory back once per chunk: keeps a long
                # streaming pass at the same resident size from start to end (once
                # per piece costs a seventh of the reading time in page faults).
                pa.default_memory_pool().release_unused()
                if len(chunk):
                    yield chunk.build(), piece.raw_position
                size = (len(chunk), chunk.n_tracks)
                chunk, n_bytes = ColumnsBuilder(), 0
                chunk.reserve(size[0] * 11 // 10, size[1] * 11 // 10)  # the next chunk: about as big
    finally:
        stream.close()
        raw.close()
        lines.close()


def _reserve(chunk: ColumnsBuilder, first: _Piece, chunk_bytes: int, text_bytes: int | None) -> None:
    """Room for the first chunk, scaled from its first piece (later ones reserve the size of the last)."""
    expected = chunk_bytes if text_bytes is None else min(chunk_bytes, text_bytes - first.offset)
    if expected >= 1 << 40:
        return  # a whole gzip file: its size is unknown, let the chunk grow
    scale = 1.05 * expected / max(first.cut, 1)
    chunk.reserve(int(len(chunk) * scale) + 64, int(chunk.n_tracks * scale) + 1024)


def _read_into(
    stream: BinaryIO, view: memoryview, path: str, open_streams: Callable[[], tuple[BinaryIO, BinaryIO]]
) -> int:
    """Fill ``view`` from ``stream`` (short only at the end); gzip trouble -> EventFormatError."""
    total = 0
    try:
        while total < len(view):
            n = stream.readinto(view[total:])  # type: ignore[attr-defined]
            if not n:
                break
            total += n
    except EOFError:
        counter = LineCounter(open_streams)  # its own streams: this may run in the read-ahead thread
        try:
            line = counter.line_at_end()
        finally:
            counter.close()
        raise EventFormatError(
            path, line, "the gzip stream ends before its end-of-stream marker: "
            "the file is truncated (the data stops in this line)"
        ) from None
    except (gzip.BadGzipFile, zlib.error) as err:
        end = gzip_valid_end(path)
        if end is not None:
            raise EventFormatError(
                path, None, f"{os.path.getsize(path) - end} bytes of trailing garbage after the gzip "
                f"stream, from byte offset {end} (the data before it is complete)"
            ) from None
        raise EventFormatError(path, None, f"corrupt gzip data ({err})") from None
    return total
