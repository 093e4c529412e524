"""Fast path of the text reader: one block of complete events parsed by ``pyarrow.csv``.

The trick: every ``Axis = `` prefix at the start of a line is overwritten, in
place and with the same length, by `` 0 0 0 ``, so the axis line becomes a
7-field row whose first field (E) is empty. ``pyarrow.csv`` (multithreaded C++
float parsing) then reads the whole block as one 7-column float32 table; the
rows with a null E are the axis rows, and their positions give the event
offsets. The buffer is restored before returning.

The fast path accepts a block only when nothing at all is unusual: every
line a 7-number row or an ``Axis = `` line (CRLF endings allowed), the first
row an axis row, no empty field besides the markers, no NaN, and every value
passing :mod:`flavortag.io.checks`. Otherwise it returns None and the caller
falls back to the careful parser, which finds the exact line and reason.
:func:`normalise` rewrites harmless variations (tabs, runs of spaces, dash
separator lines, ``Axis=``) so that such files stay on the fast path.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from flavortag.io.checks import axis_ok_mask, tracks_all_ok
from flavortag.io.columns import TRACK_FIELDS, EventColumns

AXIS_PREFIX = b"Axis = "
_MARKER = b" 0 0 0 "  # same length as AXIS_PREFIX: empty E, px = py = pz = 0, then ax ay az
_PREFIX_CODES = np.frombuffer(AXIS_PREFIX, np.uint8)
_MARKER_CODES = np.frombuffer(_MARKER, np.uint8)

#: Bytes of text per ``pyarrow.csv`` call (its own 1 MB blocks are parsed in parallel).
PIECE_BYTES: int = 4 * 1024 * 1024
_READ_OPTIONS = pacsv.ReadOptions(column_names=list(TRACK_FIELDS), use_threads=True)
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

    The per-block outputs come and go in similar sizes; Arrow's allocator
    reuses such blocks well, where the C heap fragments and lets the resident
    memory of a long streaming pass creep upwards.
    """
    return np.frombuffer(pa.allocate_buffer(4 * n), np.float32)


def parse_fast(buf: bytearray, start: int, stop: int, label: int, *, last: bool) -> EventColumns | None:
    """Parse ``buf[start:stop]`` (whole lines, whole events) or return None if it is not plain.

    ``last``: the block ends the file, so its last line must end with a newline.
    ``buf`` is modified during the call and restored before it returns.
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
    # Parsed in pieces of about PIECE_BYTES (cut at event starts): the parser's
    # intermediate buffers then stay small next to the block itself. Each piece
    # is copied into Arrow-owned memory: Arrow's I/O threads may drop their
    # reference to the input after read_csv returns, and dropping a reference
    # to Python-owned memory needs the GIL, which at interpreter exit aborts
    # the process ("terminate called without an active exception").
    cuts = positions[np.searchsorted(positions, np.arange(start + PIECE_BYTES, stop, PIECE_BYTES))]
    bounds = [start, *np.unique(cuts[cuts > start]).tolist(), stop]
    codes = np.frombuffer(buf, np.uint8)
    _overwrite(codes, positions, _MARKER_CODES)
    try:
        tables = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            piece = pa.allocate_buffer(b - a)
            np.frombuffer(piece, np.uint8)[:] = codes[a:b]
            tables.append(pacsv.read_csv(
                pa.BufferReader(piece), read_options=_READ_OPTIONS,
                parse_options=_PARSE_OPTIONS, convert_options=_CONVERT_OPTIONS,
            ))
            del piece
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    finally:
        _overwrite(codes, positions, _PREFIX_CODES)
        del codes
    table = pa.concat_tables(tables)
    return _columns_from_table(table, len(positions), label)


def _overwrite(codes: np.ndarray, positions: np.ndarray, text: np.ndarray) -> None:
    for k, code in enumerate(text):
        codes[positions + k] = code


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


def _columns_from_table(table: pa.Table, n_axis: int, label: int) -> EventColumns | None:
    """Split the parsed rows into axes and tracks (one pass per column, straight from Arrow's chunks)."""
    columns = table.columns
    if columns[0].null_count != n_axis or any(c.null_count for c in columns[1:]):
        return None
    # The null E fields are exactly the marked axis lines: the count matches
    # the number of edits and every edited line yields one.
    is_track = [pc.is_valid(chunk).to_numpy(zero_copy_only=False) for chunk in columns[0].chunks]
    if not len(is_track) or not len(is_track[0]) or is_track[0][0]:
        return None  # empty, or rows before the first axis line
    track_counts = [int(np.count_nonzero(m)) for m in is_track]
    n_tracks = sum(track_counts)
    tracks = {}
    for name, column in zip(TRACK_FIELDS, columns):
        tracks[name] = _compress_chunks(column.chunks, is_track, track_counts, n_tracks, invert=False)
    axis = float32_array(3 * n_axis).reshape(n_axis, 3)
    axis_counts = [len(m) - c for m, c in zip(is_track, track_counts)]
    for k in range(3):
        axis[:, k] = _compress_chunks(columns[4 + k].chunks, is_track, axis_counts, n_axis, invert=True)
    axis_rows = np.flatnonzero(~np.concatenate(is_track))
    offsets = np.empty(n_axis + 1, np.int64)
    offsets[:-1] = axis_rows - np.arange(n_axis)
    offsets[-1] = n_tracks
    if not axis_ok_mask(axis[:, 0], axis[:, 1], axis[:, 2]).all():
        return None
    if not tracks_all_ok(*tracks.values()):
        return None
    return EventColumns(axis=axis, offsets=offsets, tracks=tracks, label=np.full(n_axis, label, np.int32))


def _compress_chunks(
    chunks: list[pa.Array], masks: list[np.ndarray], counts: list[int], total: int, *, invert: bool
) -> np.ndarray:
    """Concatenation of ``chunk[mask]`` (or ``chunk[~mask]``) over the chunks of a float32 column."""
    out = float32_array(total)
    at = 0
    for chunk, mask, count in zip(chunks, masks, counts):
        # The raw values buffer (null slots hold junk, and they are the ones dropped).
        values = np.frombuffer(chunk.buffers()[1], np.float32, len(chunk), chunk.offset * 4)
        np.compress(~mask if invert else mask, values, out=out[at : at + count])
        at += count
    return out


_ODD_WHITESPACE = re.compile(rb"[\t\r\x0b\x0c][ \t\r\x0b\x0c]*| [ \t\r\x0b\x0c]+")
_DASH_LINE = re.compile(rb"\n-+(?=\n)")
_AXIS_VARIANT = re.compile(rb"\nAxis ?= ?")


def normalise(data: bytes) -> bytes:
    """Rewrite harmless variations into the plain form the fast path accepts.

    Runs of whitespace become one space, spaces at line ends go, dash-only
    lines become blank and ``Axis=`` / ``Axis =`` become ``Axis = ``; line
    breaks are kept, so a line means the same to the careful parser before and
    after. A trailing line without newline keeps lacking it.
    """
    text = b"\n" + _ODD_WHITESPACE.sub(b" ", data)
    text = text.replace(b"\n ", b"\n").replace(b" \n", b"\n")
    if text.endswith(b" "):
        text = text[:-1]
    text = _DASH_LINE.sub(b"\n", text)  # the lookahead leaves the next line's start in place
    if text.endswith(b"-") and not text[text.rfind(b"\n") + 1 :].strip(b"-"):
        text = text[: text.rfind(b"\n") + 1]
    return _AXIS_VARIANT.sub(b"\nAxis = ", text)[1:]
