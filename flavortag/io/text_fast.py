"""Fast path of the text reader: a piece of complete events parsed by ``pyarrow.csv``.

The trick: the text is copied for the parser, and in the copy every ``Axis = ``
prefix at the start of a line is overwritten, with the same length, by
`` 0 0 0 ``, so the axis line becomes a 7-field row whose first field (E) is
empty; dash-only separator lines become empty lines. ``pyarrow.csv``
(multithreaded C++ float parsing) then reads the piece as one 7-column
float32 table; the rows with a null E are the axis rows, and their positions
give the event offsets. The caller's buffer is never modified.

The fast path accepts a piece only when nothing at all is unusual: every
line a 7-number row, an ``Axis = `` line, blank or a dash separator (CRLF
endings allowed), the first row an axis row, no empty field besides the
markers, no NaN, and every value passing :mod:`flavortag.io.checks`.
Otherwise it returns None and the caller falls back to the careful parser,
which finds the exact line and reason. :func:`normalise` rewrites harmless
variations (tabs, runs of spaces, ``Axis=``, dash lines elsewhere) so that
such files stay on the fast path.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from flavortag.io.checks import axis_ok_mask, tracks_all_ok
from flavortag.io.columns import TRACK_FIELDS, ColumnsBuilder, EventColumns

AXIS_PREFIX = b"Axis = "
_MARKER = b" 0 0 0 "  # same length as AXIS_PREFIX: empty E, px = py = pz = 0, then ax ay az
_PREFIX_CODES = np.frombuffer(AXIS_PREFIX, np.uint8)
_MARKER_CODES = np.frombuffer(_MARKER, np.uint8)

# A piece is parsed by one thread, in one block (the reader runs several pieces at
# once, one per worker thread: pyarrow's own threads gain little on a few MB and cost
# a thread hand-off per block). A text that is a whole file by itself gets
# pyarrow's threads, in 512 kB blocks.
_SERIAL_OPTIONS = pacsv.ReadOptions(column_names=list(TRACK_FIELDS), use_threads=False, block_size=8 * 1024**2)
_THREADED_OPTIONS = pacsv.ReadOptions(column_names=list(TRACK_FIELDS), use_threads=True, block_size=512 * 1024)
_PARSE_OPTIONS = pacsv.ParseOptions(
    delimiter=" ", quote_char=False, double_quote=False, escape_char=False,
    newlines_in_values=False, ignore_empty_lines=True,
)
_CONVERT_OPTIONS = pacsv.ConvertOptions(
    column_types={name: pa.float32() for name in TRACK_FIELDS},
    null_values=[""], strings_can_be_null=False, quoted_strings_can_be_null=False,
    check_utf8=False,
)


def float32_array(n: int) -> np.ndarray:
    """An uninitialised float32 array allocated from Arrow's memory pool.

    The per-piece outputs come and go in similar sizes; Arrow's allocator
    reuses such blocks well, where the C heap tends to fragment and let the
    resident memory of a long streaming pass creep upwards.
    """
    return np.frombuffer(pa.allocate_buffer(4 * n), np.float32)


def prepare(buf: bytearray, start: int, stop: int, *, last: bool) -> tuple[pa.Buffer, int] | None:
    """The parser's copy of ``buf[start:stop]`` and its number of axis lines, or None if not plain.

    ``last``: the text ends the file, so its last line must end with a newline.
    ``buf`` is left as it is: the edits go to the copy, which lives in
    Arrow-owned memory (Arrow's I/O threads may drop their reference to the
    input after read_csv returns; dropping one to Python-owned memory needs
    the GIL, which at interpreter exit aborts the process with "terminate
    called without an active exception").
    """
    if start >= stop:
        return None
    if buf.find(b"\r", start, stop) >= 0 and buf.count(b"\r", start, stop) != buf.count(b"\r\n", start, stop):
        return None  # a lone CR: leave it to the careful parser (it is whitespace there)
    if last and buf[stop - 1] != 0x0A:
        return None  # a last line without newline may be cut off
    positions = _axis_line_starts(buf, start, stop)
    if len(positions) == 0:
        return None
    text = pa.allocate_buffer(stop - start)
    copy = np.frombuffer(text, np.uint8)
    copy[:] = np.frombuffer(buf, np.uint8)[start:stop]
    marks = positions - start
    _overwrite(copy, marks, _MARKER_CODES)
    _blank_dash_lines(buf, start, copy, marks)
    return text, len(positions)


def parse_prepared(prepared: tuple[pa.Buffer, int], label: int, *, threads: bool = False) -> EventColumns | None:
    """Events of a text prepared by :func:`prepare`, or None if anything is unusual.

    Safe to run in a worker thread: pyarrow and numpy release the GIL for
    the heavy parts, so the caller can prepare the next piece meanwhile.
    ``threads``: let ``pyarrow.csv`` use its own threads (for a text that is
    not parsed beside others).
    """
    table = parse_table(prepared, threads=threads)
    return None if table is None else _columns_from_table(table, prepared[1], label)


def parse_table(prepared: tuple[pa.Buffer, int], *, threads: bool = False) -> pa.Table | None:
    """The 7-column float32 table of a prepared text, or None if ``pyarrow.csv`` refuses it."""
    try:
        return pacsv.read_csv(
            pa.BufferReader(prepared[0]), read_options=_THREADED_OPTIONS if threads else _SERIAL_OPTIONS,
            parse_options=_PARSE_OPTIONS, convert_options=_CONVERT_OPTIONS,
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def parse_fast(buf: bytearray, start: int, stop: int, label: int, *, last: bool) -> EventColumns | None:
    """Parse ``buf[start:stop]`` (whole lines, whole events) or return None if it is not plain."""
    prepared = prepare(buf, start, stop, last=last)
    return None if prepared is None else parse_prepared(prepared, label, threads=True)


def _overwrite(codes: np.ndarray, positions: np.ndarray, text: np.ndarray) -> None:
    for k, code in enumerate(text):
        codes[positions + k] = code


_DASH, _NEWLINE, _CR = ord("-"), ord("\n"), ord("\r")


def _blank_dash_lines(buf: bytearray, start: int, copy: np.ndarray, marks: np.ndarray) -> None:
    """Turn dash-only separator lines just before an axis line into empty lines (in ``copy``).

    Each dash becomes a CR, which the CSV parser takes for a line end, so the
    line is empty to it. Only the dash lines right above an axis line or at
    the end of the text (a blank line between allowed) are handled here;
    others go to :func:`normalise`.
    """
    # Line starts to look above: the axis lines, and the end of the text (a
    # piece is cut just before an axis line, so its separator ends the piece).
    inside = np.append(marks[marks >= 3], len(copy)) if len(copy) >= 3 else marks[:0]
    candidates = inside[  # "---\nAxis" or "---\n\nAxis"
        (copy[inside - 2] == _DASH) | ((copy[inside - 2] == _NEWLINE) & (copy[inside - 3] == _DASH))
    ]
    for mark in candidates.tolist():
        end = start + mark - 1  # the newline ending the line above the axis line
        while end > start:
            line_start = buf.rfind(b"\n", start, end) + 1 or start
            line = buf[line_start:end]
            if line and not line.strip(b"-"):
                copy[line_start - start : end - start] = _CR
            elif line:
                break
            end = line_start - 1


def _axis_line_starts(buf: bytearray, start: int, stop: int) -> np.ndarray:
    """Offsets of the ``Axis = `` prefixes that begin a line inside ``buf[start:stop]``."""
    found = []
    find = buf.find
    at = find(b"A", start, stop)  # memchr: far quicker than searching for the whole prefix
    while at >= 0:
        found.append(at)
        at = find(b"A", at + 1, stop)
    positions = np.array(found, np.int64)
    positions = positions[positions <= stop - len(AXIS_PREFIX)]
    if len(positions) == 0:
        return positions
    codes = np.frombuffer(buf, np.uint8)
    ok = np.ones(len(positions), bool)
    for k, code in enumerate(_PREFIX_CODES[1:], start=1):
        ok &= codes[positions + k] == code
    line_start = positions == start
    line_start[~line_start] = codes[positions[~line_start] - 1] == 0x0A
    return positions[ok & line_start]


class PieceRows:
    """A parsed piece split into axis and track rows (in a worker thread), tracks not yet copied.

    ``axis`` ``[n_axis, 3]`` and ``offsets`` (``n_axis + 1``, from 0) are
    final and the axes checked; the track rows are ``track_rows[k]`` of record
    batch ``k`` of ``table``, for :func:`fill_rows` to copy straight into a
    chunk and check there (one copy of the track values, not two).
    """

    __slots__ = ("table", "track_rows", "n_tracks", "axis", "offsets")

    def __init__(
        self, table: pa.Table, track_rows: list[np.ndarray], n_tracks: int, axis: np.ndarray, offsets: np.ndarray
    ) -> None:
        self.table, self.track_rows, self.n_tracks = table, track_rows, n_tracks
        self.axis, self.offsets = axis, offsets

    @property
    def n_axis(self) -> int:
        return len(self.axis)


def split_rows(table: pa.Table, n_axis: int) -> PieceRows | None:
    """Axis rows apart, event offsets and the axis checks of a parsed table, or None if unusual."""
    columns = table.columns
    if columns[0].null_count != n_axis or any(c.null_count for c in columns[1:]):
        return None
    # The null E fields are exactly the marked axis lines: the count matches
    # the number of edits and every edited line yields one.
    is_track = [pc.is_valid(chunk).to_numpy(zero_copy_only=False) for chunk in columns[0].chunks]
    if not len(is_track) or not len(is_track[0]) or is_track[0][0]:
        return None  # empty, or rows before the first axis line
    track_rows = [np.flatnonzero(m) for m in is_track]
    axis_rows_per_chunk = [np.flatnonzero(~m) for m in is_track]
    n_tracks = sum(len(r) for r in track_rows)
    axis = float32_array(3 * n_axis).reshape(n_axis, 3)
    for k in range(3):
        axis[:, k] = _take_chunks(columns[4 + k].chunks, axis_rows_per_chunk, n_axis)
    axis_rows = np.flatnonzero(~np.concatenate(is_track))
    offsets = np.empty(n_axis + 1, np.int64)
    offsets[:-1] = axis_rows - np.arange(n_axis)
    offsets[-1] = n_tracks
    if not axis_ok_mask(axis[:, 0], axis[:, 1], axis[:, 2]).all():
        return None
    return PieceRows(table, track_rows, n_tracks, axis, offsets)


def fill_rows(rows: PieceRows, label: int, chunk: ColumnsBuilder) -> bool:
    """Copy the track rows of a split piece into ``chunk`` and check them; False (nothing appended) if unusual."""
    n_axis, n_tracks = rows.n_axis, rows.n_tracks
    store = chunk.room(n_axis, n_tracks)
    if tuple(store.tracks) != TRACK_FIELDS:
        return False
    t0, t1, e0 = chunk.n_tracks, chunk.n_tracks + n_tracks, len(chunk)
    tracks = [store.tracks[name][t0:t1] for name in TRACK_FIELDS]
    for out, column in zip(tracks, rows.table.columns):
        _take_chunks(column.chunks, rows.track_rows, n_tracks, out)
    if not tracks_all_ok(*tracks):
        return False
    store.axis[e0 : e0 + n_axis] = rows.axis
    store.offsets[e0 : e0 + n_axis] = rows.offsets[:-1] + t0
    chunk.advance(n_axis, n_tracks, label)
    return True


def _columns_from_table(table: pa.Table, n_axis: int, label: int) -> EventColumns | None:
    """Split the parsed rows into axes and tracks (one pass per column, straight from Arrow's chunks)."""
    rows = split_rows(table, n_axis)
    if rows is None:
        return None
    columns = table.columns
    tracks = {
        name: _take_chunks(column.chunks, rows.track_rows, rows.n_tracks) for name, column in zip(TRACK_FIELDS, columns)
    }
    if not tracks_all_ok(*tracks.values()):
        return None
    return EventColumns(axis=rows.axis, offsets=rows.offsets, tracks=tracks, label=np.full(n_axis, label, np.int32))


def _take_chunks(
    chunks: list[pa.Array], rows: list[np.ndarray], total: int, out: np.ndarray | None = None
) -> np.ndarray:
    """Concatenation of ``chunk[rows]`` over the chunks of a float32 column (into ``out`` if given)."""
    if out is None:
        out = float32_array(total)
    at = 0
    for chunk, these in zip(chunks, rows):
        # The raw values buffer: null slots hold junk, and they are never taken.
        values = np.frombuffer(chunk.buffers()[1], np.float32, len(chunk), chunk.offset * 4)
        np.take(values, these, out=out[at : at + len(these)], mode="clip")  # "clip": no buffered copy
        at += len(these)
    return out


_OTHER_WHITESPACE = bytes.maketrans(b"\t\r\x0b\x0c", b"    ")
_SPACE_RUN = re.compile(rb"  +")
_DASH_LINE = re.compile(rb"\n-+(?=\n)")
_AXIS_VARIANT = re.compile(rb"\nAxis ?= ?")


def normalise(data: bytes) -> bytes:
    """Rewrite harmless variations into the plain form the fast path accepts.

    Tabs, CRs and runs of spaces become one space, spaces at line ends go,
    dash-only lines become blank and ``Axis=`` / ``Axis =`` become
    ``Axis = ``; line breaks are kept, so a line means the same to the careful
    parser before and after. A trailing line without newline keeps lacking it.
    Each rewrite runs only when a quick test finds something to rewrite.
    """
    text = b"\n" + data.translate(_OTHER_WHITESPACE)
    if b"  " in text:
        text = _SPACE_RUN.sub(b" ", text)
    text = text.replace(b"\n ", b"\n").replace(b" \n", b"\n")
    if text.endswith(b" "):
        text = text[:-1]
    if b"-\n" in text:
        text = _DASH_LINE.sub(b"\n", text)  # the lookahead leaves the next line's start in place
    if text.endswith(b"-") and not text[text.rfind(b"\n") + 1 :].strip(b"-"):
        text = text[: text.rfind(b"\n") + 1]
    if b"Axis=" in text or text.count(b"Axis =") != text.count(b"Axis = "):
        text = _AXIS_VARIANT.sub(b"\nAxis = ", text)
    return text[1:]
