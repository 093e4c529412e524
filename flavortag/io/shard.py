"""Training files for clusters: :func:`make_shards` turns any event files into mixed, shuffled Parquet shards.

Streaming training (``data.streaming=true``) reads whole row groups and only
shuffles inside a buffer, so its files must each hold a mix of classes in
random order, in row groups small enough to stream; ``flavortag generate``
writes one class per file. :func:`make_shards` reads the inputs (any format,
chunk by chunk, bounded memory) and writes ``out/shard-<i>-of-<N>.parquet``:

* every event goes to exactly one shard (nothing lost, nothing doubled; the
  class counts of the inputs are the sums over the shards): the events are cut
  into blocks of ``N`` consecutive events and each block is dealt over the
  ``N`` shards with a rotation drawn from ``(seed, block)``, so each shard gets
  one event of every block (sizes equal to within one event, class fractions
  those of the inputs) and the result does not depend on how the inputs are
  chunked while reading;
* each shard is then shuffled (a permutation drawn from ``(seed, shard)``) and
  written with row groups of ``rows_per_group`` events (atomically);
* ``out/shards.json`` records the inputs, the settings and each shard's event
  count per class.

Two passes: the events are first spilled, per shard, to temporary Parquet
files under ``out/.spill-<pid>/`` (removed at the end), then each shard is read back,
shuffled and written there too; one shard at a time is held in memory, so choose ``N``
such that a shard fits (about 2 kB per event for Z-pole events). The set then
moves into ``out/`` as one (:mod:`flavortag.io.shard_set`): a killed run leaves
the directory as it was, or a manifest that makes readers refuse the set; the
next run removes the staging directories of killed runs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import awkward as ak
import numpy as np

from flavortag.io.api import (
    DEFAULT_STEP_SIZE,
    PathsLike,
    iter_source_columns,
    parse_step_size,
    plan_sources,
    write_columns,
)
from flavortag.io.columns import EventColumns
from flavortag.io.errors import OnError, ReadReport, check_on_error
from flavortag.io.shard_set import MANIFEST, commit, remove_stale_spills, shard_path, spill_dir
from flavortag.progress import progress_bar

__all__ = ["MANIFEST", "ShardResult", "make_shards", "shard_assignment", "shard_path", "take_events"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 (wrapping arithmetic)."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def shard_assignment(first_event: int, n_events: int, n_shards: int, seed: int) -> np.ndarray:
    """The shard (int64) of events ``first_event .. first_event + n_events - 1`` of the input stream.

    Block ``b`` (events ``b * n_shards`` ...) is dealt to the shards rotated by
    a hash of ``(seed, b)``: each shard gets one event per block.
    """
    index = np.arange(first_event, first_event + n_events, dtype=np.uint64)
    shards = np.uint64(n_shards)
    block, position = index // shards, index % shards
    with np.errstate(over="ignore"):
        rotation = _mix64(block ^ _mix64(np.full(1, seed, dtype=np.uint64))) % shards
    return ((position + rotation) % shards).astype(np.int64)


def take_events(cols: EventColumns, order: np.ndarray) -> EventColumns:
    """The events at ``order`` (indices, any order; copies)."""
    return cols.take(order)


@dataclass
class ShardResult:
    """What :func:`make_shards` wrote: the shard files, events per shard and class, the read report."""

    paths: list[Path]
    class_counts: list[dict[int, int]]
    report: ReadReport = field(default_factory=ReadReport)

    @property
    def n_events(self) -> int:
        """Events in all shards."""
        return sum(sum(c.values()) for c in self.class_counts)


def _class_counts(labels: np.ndarray) -> dict[int, int]:
    values, counts = np.unique(labels, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


def make_shards(
    inputs: PathsLike,
    out_dir: str | os.PathLike,
    n_shards: int,
    *,
    rows_per_group: int = 5000,
    seed: int = 0,
    label: int | str | None = None,
    label_rules: Mapping[str, str] | None = None,
    on_error: OnError = "raise",
    format: str | None = None,
    tree: str = "events",
    step_size: int | str = DEFAULT_STEP_SIZE,
    progress: bool | None = None,
) -> ShardResult:
    """Write the events of ``inputs`` as ``n_shards`` mixed, shuffled Parquet shards (see the module doc).

    ``inputs``: files or glob patterns (any formats holding the same fields);
    ``out_dir``: the directory of ``shard-<i>-of-<N>.parquet`` and ``shards.json``;
    ``rows_per_group``: events per Parquet row group; reader options as in
    :func:`~flavortag.io.read_events`, ``step_size`` as in :func:`~flavortag.io.iter_events`.
    """
    import pyarrow.parquet as pq
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, not {n_shards}")
    if rows_per_group < 1:
        raise ValueError(f"rows_per_group must be >= 1, not {rows_per_group}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, not {seed}")
    on_error = check_on_error(on_error)
    parse_step_size(step_size)
    sources = plan_sources(inputs, label, label_rules, format)
    out = Path(out_dir)
    targets = [shard_path(out, i, n_shards).resolve() for i in range(n_shards)]
    if any(s.path.resolve() in targets for s in sources):
        raise ValueError(f"{out}: the shards would overwrite their own inputs; write them to another directory")
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_spills(out)
    spill = spill_dir(out)
    spill.mkdir(exist_ok=True)
    report = ReadReport()
    writers: dict[int, pq.ParquetWriter] = {}
    result = ShardResult(paths=[], class_counts=[], report=report)
    try:
        # pass 1: deal every event to its shard's spill file
        n_seen = 0
        template = EventColumns.empty()  # zero events with the inputs' fields, for an empty shard
        total = sum(os.path.getsize(s.path) for s in sources)
        with progress_bar(total=total, unit="B", unit_scale=True, unit_divisor=1024, show=progress,
                          force=progress is True, desc="deal") as bar:
            for cols in iter_source_columns(sources, on_error, tree, report, step_size, progress=bar.update):
                if not len(cols):
                    continue
                if not n_seen:
                    template = cols.slice(0, 0)
                where = shard_assignment(n_seen, len(cols), n_shards, seed)
                n_seen += len(cols)
                for shard in np.unique(where):
                    table = ak.to_arrow_table(cols.select(where == shard).to_awkward())
                    if shard not in writers:
                        writers[shard] = pq.ParquetWriter(spill / f"{shard}.parquet", table.schema,
                                                          compression="lz4")
                    writers[shard].write_table(table)
        for writer in writers.values():
            writer.close()
        writers.clear()
        # pass 2: one shard at a time, shuffled, in row groups
        for shard in progress_bar(range(n_shards), desc="shuffle + write", unit="shard", show=progress,
                                  force=progress is True):
            part = spill / f"{shard}.parquet"
            if part.exists():
                cols = EventColumns.from_awkward(ak.from_arrow(pq.ParquetFile(part).read()))
                order = np.random.default_rng([seed, shard]).permutation(len(cols))
                cols = take_events(cols, order)
                part.unlink()
            else:  # fewer events than shards
                cols = template
            groups = [cols.slice(i, min(i + rows_per_group, len(cols)))
                      for i in range(0, len(cols), rows_per_group)] or [cols]
            path = shard_path(spill, shard, n_shards)  # staged: moved into out/ with the others at the end
            write_columns(groups, path, "parquet")
            result.paths.append(path)
            result.class_counts.append(_class_counts(cols.label))
            del cols, groups
        manifest = _manifest(sources, n_shards, rows_per_group, seed, result)
        result.paths = commit(out, result.paths, manifest)
    finally:
        for writer in writers.values():
            writer.close()
        shutil.rmtree(spill, ignore_errors=True)
    return result


def _manifest(sources: list, n_shards: int, rows_per_group: int, seed: int, result: ShardResult) -> dict:
    """The content of ``shards.json`` (:data:`MANIFEST`): inputs, settings, events per shard and class."""
    return {
        "inputs": [str(s.path) for s in sources],
        "n_shards": n_shards,
        "rows_per_group": rows_per_group,
        "seed": seed,
        "n_events": result.n_events,
        "shards": [{"file": p.name, "n_events": sum(c.values()),
                    "class_counts": {str(k): v for k, v in sorted(c.items())}}
                   for p, c in zip(result.paths, result.class_counts, strict=True)],
        "read_report": result.report.summary(),
    }
