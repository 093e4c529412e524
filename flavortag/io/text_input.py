"""The text reader's input: opening (gzip by its magic bytes), line numbers on demand, junk refused.

What :mod:`flavortag.io.text` needs around the parsing: a file opened as
decompressed text (:func:`opener`), the line number at a byte offset counted
only when an error needs it (:class:`LineCounter`), and the checks that keep
junk at bounded time and memory (issue 21): NUL bytes (binary data), a line
longer than :data:`MAX_LINE_BYTES`, an event longer than
:data:`MAX_EVENT_BYTES`, UTF-16 text and lone-CR line breaks
(:func:`sniff`), and where a gzip stream's valid members end
(:func:`gzip_valid_end`).
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from flavortag.io.errors import EventFormatError

#: Input is refused once this many bytes of one line are read without its end (a track row
#: is under 200 bytes; a shorter long line is refused by the parsers for its content).
MAX_LINE_BYTES: int = 1024**2
#: Most text of one event (bytes; about 150 000 track rows): without an ``Axis`` line in this
#: much text the input is refused (the reader's buffer holds a whole event).
MAX_EVENT_BYTES: int = 16 * 1024**2
GZIP_MAGIC = b"\x1f\x8b"
#: The UTF-8 byte-order mark (whitespace to the parsers).
BOM = b"\xef\xbb\xbf"


def is_gzip(path: str | Path) -> bool:
    """True when the file starts with the gzip magic bytes."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def opener(path: str | Path) -> Callable[[], tuple[BinaryIO, BinaryIO]]:
    """A function returning ``(decompressed stream, raw file)`` for ``path``."""
    compressed = is_gzip(path)

    def open_streams() -> tuple[BinaryIO, BinaryIO]:
        raw = open(path, "rb")  # noqa: SIM115 -- closed by the caller
        if compressed:
            return gzip.GzipFile(fileobj=raw, mode="rb"), raw  # type: ignore[return-value]
        return raw, raw

    return open_streams


class LineCounter:
    """1-based line number at a byte offset of the (decompressed) text, counted on demand."""

    def __init__(self, open_streams: Callable[[], tuple[BinaryIO, BinaryIO]]) -> None:
        self._open = open_streams
        self._streams: tuple[BinaryIO, BinaryIO] | None = None
        self._offset = 0
        self._newlines = 0

    def line_at(self, offset: int) -> int:
        """Line number of the line that starts at ``offset`` (offsets must not decrease)."""
        if self._streams is None:
            self._streams = self._open()
        stream = self._streams[0]
        while self._offset < offset:
            data = stream.read1(min(1 << 20, offset - self._offset))  # type: ignore[attr-defined]
            if not data:
                break
            self._newlines += data.count(b"\n")
            self._offset += len(data)
        return self._newlines + 1

    def line_at_end(self) -> int:
        """Line number of the last (possibly partial) line readable from the stream."""
        try:
            self.line_at(1 << 62)
        except EOFError:
            pass
        return self._newlines + 1

    def close(self) -> None:
        if self._streams is not None:
            self._streams[0].close()
            self._streams[1].close()
            self._streams = None


def line_at(open_streams: Callable[[], tuple[BinaryIO, BinaryIO]], offset: int) -> int:
    """Line number at ``offset`` of the text, counted by a reader of its own (any thread)."""
    counter = LineCounter(open_streams)
    try:
        return counter.line_at(offset)
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile):
        return counter.line_at_end()
    finally:
        counter.close()


def refuse_binary(
    buf: bytearray, start: int, stop: int, offset: int, path: str,
    open_streams: Callable[[], tuple[BinaryIO, BinaryIO]],
) -> None:
    """Refuse text holding a NUL byte in ``buf[start:stop]`` (``buf`` starts at byte ``offset``)."""
    at = buf.find(b"\0", start, stop)
    if at < 0:
        return
    line_start = buf.rfind(b"\n", 0, at) + 1
    line = line_at(open_streams, offset) + buf.count(b"\n", 0, line_start)
    where = "" if offset + at == 0 else f" from byte {offset + at} of the text"
    raise EventFormatError(
        path, line, f"binary data (NUL bytes{where}): not an event text file (a ROOT or Parquet file "
        "with a text name? then give its real suffix), or a damaged one (a zero-filled block after a crash?)"
    )


def refuse_huge_event(
    buf: bytearray, length: int, offset: int, path: str, open_streams: Callable[[], tuple[BinaryIO, BinaryIO]]
) -> None:
    """Refuse a line over :data:`MAX_LINE_BYTES` or an event over :data:`MAX_EVENT_BYTES` in ``buf[:length]``.

    ``buf`` holds the text from byte ``offset`` on, without an event boundary
    after its start (it would grow to hold more).
    """
    last_line = buf.rfind(b"\n", 0, length) + 1
    if length - last_line > MAX_LINE_BYTES:
        line = line_at(open_streams, offset) + buf.count(b"\n", 0, last_line)
        raise EventFormatError(
            path, line, f"a line of more than {MAX_LINE_BYTES // 1024**2} MB (no line break): not an event "
            "text file (binary or compressed data?), or a damaged one"
        )
    if length > MAX_EVENT_BYTES:
        raise EventFormatError(
            path, line_at(open_streams, offset), f"no line starting with 'Axis' in the "
            f"{MAX_EVENT_BYTES // 1024**2} MB of text from this line on: an event this large is not an event "
            "of the format; not an event text file, or a damaged one (axis lines lost?)"
        )


def sniff(buf: bytearray, length: int, path: str) -> None:
    """Refuse, saying what it looks like, a file start that is UTF-16 or has lone-CR line breaks."""
    head = bytes(memoryview(buf)[: min(length, 4096)])
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        order = "little" if head.startswith(b"\xff\xfe") else "big"
        raise EventFormatError(
            path, 1, f"this looks like UTF-16 text ({order}-endian byte-order mark): the event format "
            "is plain ASCII / UTF-8; convert it first, e.g. iconv -f UTF-16 -t UTF-8"
        )
    if len(head) >= 16:
        zeros_even, zeros_odd = head[0::2].count(0), head[1::2].count(0)
        if max(zeros_even, zeros_odd) >= 0.4 * (len(head) // 2) and min(zeros_even, zeros_odd) == 0:
            raise EventFormatError(
                path, 1, "this looks like UTF-16 text without byte-order mark (every other byte is "
                "zero): the event format is plain ASCII / UTF-8; convert it first, e.g. iconv -f UTF-16 -t UTF-8"
            )
    if b"\r" in buf[:length] and b"\n" not in buf[:length]:
        raise EventFormatError(
            path, 1, "the lines end in a lone CR (old Mac line breaks) and no LF: the whole file reads "
            "as one line; convert it first, e.g. tr '\\r' '\\n' < in > out"
        )


def gzip_valid_end(path: str) -> int | None:
    """Byte offset where non-gzip bytes follow complete gzip member(s), or None (corrupt inside).

    Streams the file a block at a time and throws the inflated data away, so
    memory stays small whatever the file's size or compression ratio.
    """
    block_bytes = 1 << 20
    offset = 0
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        while offset < size:
            f.seek(offset)
            if f.read(2) != GZIP_MAGIC:
                if not offset:
                    return None
                f.seek(offset)
                while block := f.read(block_bytes):
                    if block.strip(b"\0"):
                        return offset
                return None  # zero padding after the last member
            f.seek(offset)
            inflater = zlib.decompressobj(wbits=31)
            try:
                while not inflater.eof:
                    block = f.read(block_bytes)
                    if not block:
                        return None  # the member is cut off
                    data = block
                    while data and not inflater.eof:
                        inflater.decompress(data, block_bytes)  # output bounded, then dropped
                        data = inflater.unconsumed_tail
                    offset += len(block) - len(inflater.unused_data)
            except zlib.error:
                return None
    return None
