"""Parquet files through awkward: ``ak.to_parquet`` of the event Array itself.

Each written chunk becomes a row group, so a file written by a streaming
conversion can be streamed back a row group (or several) at a time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import awkward as ak
import numpy as np

from flavortag.io.checks import screen_columns
from flavortag.io.columns import EventColumns
from flavortag.io.errors import EventFormatError, OnError, ReadReport


def _row_group_plan(path: str, step_events: int | None, step_bytes: int | None) -> list[list[int]]:
    """Row groups to read together: up to ``step_events`` rows or ``step_bytes`` (uncompressed)."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except FileNotFoundError:
        raise
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError for a non-Parquet file
        raise EventFormatError(path, None, f"not a readable Parquet file ({err})") from None
    if step_events is None and step_bytes is None:
        return [list(range(meta.num_row_groups))]
    plan: list[list[int]] = []
    rows = size = 0
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        if plan and (
            (step_events is not None and rows + group.num_rows > step_events)
            or (step_bytes is not None and size + group.total_byte_size > step_bytes)
        ):
            plan.append([])
            rows = size = 0
        if not plan:
            plan.append([])
        plan[-1].append(i)
        rows += group.num_rows
        size += group.total_byte_size
    return plan or [[]]


def iter_parquet_columns(
    path: str | Path,
    label_fallback: Callable[[], int],
    on_error: OnError,
    report: ReadReport,
    step_events: int | None = None,
    step_bytes: int | None = None,
) -> Iterator[tuple[EventColumns, int]]:
    """Yield ``(events, approximate bytes of the file consumed)``, whole row groups at a time.

    Groups are read together up to ``step_events`` rows or ``step_bytes``
    uncompressed bytes (both None: the whole file at once); a row group larger
    than the step is read whole.
    """
    shown = str(path)
    plan = _row_group_plan(shown, step_events, step_bytes)
    size = os.path.getsize(path)
    entry = 0
    for k, groups in enumerate(plan):
        if not groups and k > 0:
            continue
        array = ak.from_parquet(shown, row_groups=groups if groups else None)
        label = None if "label" in ak.fields(array) else label_fallback()
        try:
            cols = EventColumns.from_awkward(array, label=label, check_labels=False)
            raw = None if label is not None else np.asarray(ak.to_numpy(array["label"]))
        except ValueError as err:
            raise EventFormatError(shown, None, str(err)) from None
        cols = screen_columns(cols, shown, on_error, report, first_entry=entry, raw_labels=raw)
        entry += len(array)
        yield cols, size * (k + 1) // len(plan)


def write_parquet_chunks(chunks: Iterable[EventColumns], path: Path) -> None:
    """Write events to a new Parquet file at ``path``, one row group per chunk."""
    arrays = (cols.to_awkward() for cols in chunks)
    first = next(arrays, None)
    if first is None:
        first = EventColumns.empty().to_awkward()

    def all_arrays() -> Iterator[ak.Array]:
        yield first
        yield from arrays

    ak.to_parquet_row_groups(all_arrays(), path, compression="zstd")
