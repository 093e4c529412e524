"""Writing the event text format (docs/FORMAT.md): ``Axis = ax ay az`` lines and track rows.

Numbers are written in the shortest form that reads back as the same float32
(Arrow's formatter), so text round-trips exactly; ``.gz`` files are
gzip-compressed (level 6, no time stamp, so the output is reproducible).
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from flavortag.io.columns import TRACK_FIELDS, EventColumns

_WRITE_OPTIONS = pacsv.WriteOptions(include_header=False, delimiter=" ", quoting_style="none")


def format_text(cols: EventColumns) -> bytes:
    """The text lines of ``cols``: ``Axis = ax ay az`` then one row per track.

    Numbers are written in the shortest form that reads back as the same
    float32 (Arrow's formatter), so text round-trips exactly.
    """
    n = len(cols)
    n_rows = n + cols.n_tracks
    axis_rows = cols.offsets[:-1] + np.arange(n)
    is_axis = np.zeros(n_rows, bool)
    is_axis[axis_rows] = True
    track_rows = np.flatnonzero(~is_axis)
    columns = {}
    for k, name in enumerate(TRACK_FIELDS):
        values = np.zeros(n_rows, np.float32)
        values[track_rows] = cols.tracks[name]
        if k >= 4:
            values[axis_rows] = cols.axis[:, k - 4]
        columns[name] = pa.array(values, mask=is_axis) if k == 0 else pa.array(values)
    sink = io.BytesIO()
    pacsv.write_csv(pa.table(columns), sink, write_options=_WRITE_OPTIONS)
    # An axis row came out as " 0 0 0 ax ay az" (empty E): give it its prefix back.
    text = b"\n" + sink.getvalue()
    return text.replace(b"\n 0 0 0 ", b"\nAxis = ")[1:]


def write_text_chunks(chunks: Iterable[EventColumns], path: Path, *, compress: bool) -> None:
    """Write events to ``path`` as text (gzip-compressed when ``compress``)."""
    with open(path, "wb") as raw:
        out: BinaryIO = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) if compress else raw  # type: ignore[assignment]
        try:
            for cols in chunks:
                for start in range(0, len(cols), 100_000):
                    out.write(format_text(cols.slice(start, min(start + 100_000, len(cols)))))
        finally:
            if compress:
                out.close()
