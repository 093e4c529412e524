"""Parallel sample production: chunks over worker processes, one file per class.

The work is a fixed list of chunks (class-major, ``chunk_size`` events each,
see :func:`flavortag.generate.events.plan_chunks`); each chunk's content
depends only on ``(seed, class, chunk index)`` and the settings, so the files
are the same bytes for any number of workers. Workers are separate processes
(``multiprocessing``, ``spawn`` start method by default: no state is inherited
from the parent, and Pythia objects live only in the workers); results come
back in order and the parent writes each class's file
(:func:`flavortag.io.api.write_columns`: atomic, temporary name then rename) chunk by
chunk as the chunks arrive (one Parquet row group per chunk, so the files stream a
chunk at a time; at most one chunk is held in memory).

Shards. ``shard=i, n_shards=N`` makes the i-th of N disjoint parts of the same
sample: of each class's chunk list (the same list as the unsharded run), the
i-th contiguous block of ``len // N`` (or one more) chunks. Each chunk's events
are fixed by ``(seed, class, chunk index)``, so the shards are reproducible
and, concatenated in shard order, equal the unsharded sample event for event.
Shard files are named ``<class>-<i>-of-<N>.<ext>`` (5 digits each), so a glob
``out/*.parquet`` reads all of them.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

import awkward as ak

from flavortag.classes import class_index
from flavortag.detector import DetectorModel
from flavortag.generate.detector_sim import KINEMATIC_FIELDS
from flavortag.generate.events import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_SQRT_S_GEV,
    ChunkColumns,
    ChunkGenerator,
    ChunkSpec,
    empty_events,
    events_from_chunks,
    plan_chunks,
)
from flavortag.generate.pythia_setup import flavour_name
from flavortag.io.columns import EventColumns
from flavortag.progress import progress_bar

#: File extension of each output format.
EXTENSIONS: dict[str, str] = {"text": "txt", "root": "root", "parquet": "parquet"}

_WORKER_GENERATOR: ChunkGenerator | None = None


def _worker_chunk(spec: ChunkSpec) -> ChunkColumns:
    global _WORKER_GENERATOR
    if _WORKER_GENERATOR is None:
        _WORKER_GENERATOR = ChunkGenerator()
    return _WORKER_GENERATOR.columns(spec)


@dataclass(frozen=True)
class ProductionResult:
    """What :func:`produce_samples` wrote: one path and event count per class."""

    paths: dict[str, Path]
    n_events: dict[str, int]
    n_tracks: dict[str, int]
    wall_s: float
    workers: int


def _kinematics_only(events: ak.Array) -> ak.Array:
    """What a text file holds; jets get their forced decay as label (a text file holds one class)."""
    tracks = events["tracks"]
    label = events["decay_class"] if "decay_class" in ak.fields(events) else events["label"]
    return ak.zip(
        {
            "axis": events["axis"],
            "tracks": ak.zip({f: tracks[f] for f in KINEMATIC_FIELDS}),
            "label": label,
        },
        depth_limit=1,
    )


def shard_name(shard: int, n_shards: int) -> str:
    """``""`` for an unsharded sample, else ``-<shard>-of-<n_shards>`` (5 digits each)."""
    return "" if n_shards == 1 else f"-{shard:05d}-of-{n_shards:05d}"


def check_shard(shard: int, n_shards: int) -> None:
    """``ValueError`` unless ``0 <= shard < n_shards``."""
    if n_shards < 1 or not 0 <= shard < n_shards:
        raise ValueError(f"shard={shard} n_shards={n_shards}: need n_shards >= 1 and 0 <= shard < n_shards")


def output_path(out_dir: str | Path, flavour: str, fmt: str, shard: int = 0, n_shards: int = 1) -> Path:
    """``out_dir/<flavour>.<ext>`` (``<flavour>-<shard>-of-<n_shards>.<ext>`` for a shard) of a format."""
    if fmt not in EXTENSIONS:
        raise ValueError(f"unknown format {fmt!r}; use one of {sorted(EXTENSIONS)}")
    check_shard(shard, n_shards)
    return Path(out_dir) / f"{flavour_name(flavour)}{shard_name(shard, n_shards)}.{EXTENSIONS[fmt]}"


def shard_chunks(chunks: Sequence[ChunkSpec], shard: int, n_shards: int) -> list[ChunkSpec]:
    """The chunks of shard ``shard`` of ``n_shards``: the shard-th contiguous block (disjoint, covering)."""
    check_shard(shard, n_shards)
    n = len(chunks)
    return list(chunks[shard * n // n_shards:(shard + 1) * n // n_shards])


def iter_chunks(
    chunks: Sequence[ChunkSpec], workers: int, start_method: str = "spawn"
) -> Generator[ChunkColumns, None, None]:
    """Yield the chunks' flat columns in order, made by ``workers`` processes (1: this process)."""
    if workers <= 1 or len(chunks) <= 1:
        make = ChunkGenerator()
        for spec in chunks:
            yield make.columns(spec)
        return
    context = multiprocessing.get_context(start_method)
    with context.Pool(processes=min(workers, len(chunks))) as pool:
        yield from pool.imap(_worker_chunk, chunks, chunksize=1)


def produce_samples(
    out_dir: str | Path,
    n_events: int,
    flavours: Sequence[str] = ("uds", "cc", "bb"),
    *,
    fmt: str = "parquet",
    seed: int = 1,
    sqrt_s_gev: float = DEFAULT_SQRT_S_GEV,
    detector: DetectorModel | None = None,
    workers: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    isr: bool = False,
    pythia_extra: Sequence[str] = (),
    progress: bool = True,
    start_method: str = "spawn",
    shard: int = 0,
    n_shards: int = 1,
    process: str = "qq",
    n_jets: int | None = None,
    particle_flow: bool = False,
) -> ProductionResult:
    """Generate ``n_events`` per class and write ``out_dir/<class>.<ext>``.

    ``process`` ``"qq"`` or ``"zh"`` (classes: the forced H decays bb, cc,
    gg, uds); with ``n_jets`` each file holds jets (``n_jets`` per event,
    :mod:`flavortag.generate.jets`), and the counts returned are jets;
    ``particle_flow`` adds the tracks' PID and the neutral particles
    (:mod:`flavortag.generate.particle_flow`; dropped by the text format).
    ``workers=None`` uses ``os.cpu_count()`` processes. ``shard`` / ``n_shards``:
    write only that shard of the sample (see the module doc), to
    ``out_dir/<class>-<shard>-of-<n_shards>.<ext>``. Returns the paths
    written, record and track counts, the wall time and the worker count.
    """
    import time

    from flavortag.generate.pythia_setup import check_process
    from flavortag.io.api import write_columns

    check_shard(shard, n_shards)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, not {seed}")
    names = [flavour_name(f) for f in flavours]
    for name in names:
        check_process(process, name)
    if len(set(names)) != len(names):
        raise ValueError(f"classes repeated in flavours={list(flavours)}")
    paths = {name: output_path(out_dir, name, fmt, shard, n_shards) for name in names}
    workers = int(workers or os.cpu_count() or 1)
    detector = detector or DetectorModel()
    plans = {
        name: shard_chunks(plan_chunks(
            name,
            n_events,
            chunk_size=chunk_size,
            seed=int(seed),
            sqrt_s_gev=float(sqrt_s_gev),
            isr=bool(isr),
            pythia_extra=tuple(pythia_extra),
            detector=detector,
            process=str(process),
            n_jets=None if n_jets is None else int(n_jets),
            particle_flow=bool(particle_flow),
        ), shard, n_shards)
        for name in names
    }
    n_total = sum(spec.n_events for plan in plans.values() for spec in plan)
    chunks = [spec for name in names for spec in plans[name]]
    Path(out_dir).mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    counts: dict[str, int] = {}
    tracks: dict[str, int] = {}
    results = iter_chunks(chunks, workers, start_method)
    try:
        with progress_bar(total=n_total, unit="ev", desc="generate", show=progress) as bar:
            for name in names:
                bar.set_postfix_str(name)
                counts[name] = tracks[name] = 0

                def class_chunks(name: str = name) -> Generator[EventColumns, None, None]:
                    specs: list[ChunkSpec | None] = [*plans[name]] or [None]  # None: an empty file
                    for spec in specs:
                        events = (events_from_chunks([next(results)]) if spec
                                  else empty_events(class_index(name), bool(particle_flow)))
                        if fmt == "text":  # the text format has no truth fields (docs/FORMAT.md)
                            events = _kinematics_only(events)
                        counts[name] += len(events)
                        tracks[name] += int(ak.sum(ak.num(events["tracks"], axis=1)))
                        bar.update(spec.n_events if spec else 0)  # events, also for jet files
                        yield EventColumns.from_awkward(events)

                write_columns(class_chunks(), paths[name], fmt)  # atomic; a row group per chunk
    finally:
        results.close()  # stops the worker pool
    return ProductionResult(
        paths=paths,
        n_events=counts,
        n_tracks=tracks,
        wall_s=time.perf_counter() - start,
        workers=workers,
    )
