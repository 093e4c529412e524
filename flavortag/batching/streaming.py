"""Streaming over files: the only part of :mod:`flavortag.batching` that reads files.

:class:`StreamingEventDataset` reads files chunk by chunk through
``flavortag.io.iter_events``, computes features per chunk, shuffles inside a
buffer and yields batches; chunks are dealt out across DataLoader workers and
DDP ranks so that no event is seen twice in an epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import numpy as np
from torch.utils.data import (
    DataLoader,
    IterableDataset,
    get_worker_info,
)

from flavortag.batching.batch import Layout, PaddedBatch, RaggedBatch, check_layout
from flavortag.batching.loader import identity_collate
from flavortag.batching.tensors import EventTensors, build_event_tensors, concat_event_tensors
from flavortag.detector import DetectorModel
from flavortag.features import (
    EVENT_FEATURES,
    TRACK_FEATURES,
)
from flavortag.ragged import DEFAULT_SORT_BY

# ---- streaming over files --------------------------------------------------------------------
ChunkReader = Callable[..., Iterator[ak.Array]]


def _default_reader() -> ChunkReader:
    from flavortag.io import iter_events

    return iter_events


class StreamingEventDataset(IterableDataset):
    """Batches streamed from event files with bounded memory (use with ``batch_size=None``).

    Each file is read in chunks of ``step_size`` (events, or a size such as "16 MB") through
    ``flavortag.io.iter_events`` (``io_options`` such as ``label``,
    ``label_rules``, ``format``, ``tree``, ``on_error`` are passed on). Chunks
    are numbered in a file order that is shuffled per epoch (same for every
    process) and dealt round-robin to the ``world_size * num_workers`` shards
    (``shard_by="chunk"``), or whole files are dealt (``shard_by="file"``: less
    reading, coarser balance); every shard still reads the files it needs, so
    no event is seen twice in an epoch. Features are computed per chunk; with
    ``shuffle`` the events are shuffled inside a buffer of ``buffer_size``
    events before being cut into batches of ``batch_size``.

    Under DDP the shards may hold different numbers of batches; the trainer has
    to cope (e.g. ``torch.distributed.algorithms.Join``).
    """

    def __init__(
        self,
        paths: str | Path | Sequence[str | Path],
        batch_size: int,
        track_feature_names: Sequence[str] = TRACK_FEATURES,
        event_feature_names: Sequence[str] | None = EVENT_FEATURES,
        max_tracks: int = 64,
        layout: Layout = "padded",
        *,
        detector: DetectorModel | None = None,
        sort_by: str | None = DEFAULT_SORT_BY,
        with_vectors: bool = True,
        step_size: int | str = 50_000,
        shuffle: bool = True,
        buffer_size: int = 100_000,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shard_by: Literal["chunk", "file"] = "chunk",
        drop_last: bool = False,
        trim: bool = True,
        io_options: Mapping[str, Any] | None = None,
        reader: ChunkReader | None = None,
        records: Callable[[ak.Array], ak.Array] | None = None,
    ) -> None:
        super().__init__()
        #: applied to every chunk read, before its features (a jet scheme's labels: ``dataset.to_scheme``)
        self.records = records
        self.paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        if not self.paths:
            raise ValueError("no input files")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world_size {world_size}")
        if shard_by not in ("chunk", "file"):
            raise ValueError(f"unknown shard_by {shard_by!r}; use 'chunk' or 'file'")
        check_layout(layout)
        self.batch_size = batch_size
        self.track_feature_names = tuple(track_feature_names)
        self.event_feature_names = tuple(event_feature_names) if event_feature_names else None
        self.max_tracks = max_tracks
        self.layout: Layout = layout
        self.detector = detector
        self.sort_by = sort_by
        self.with_vectors = with_vectors
        self.step_size = step_size
        self.shuffle = shuffle
        self.buffer_size = max(buffer_size, batch_size)
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shard_by = shard_by
        self.drop_last = drop_last
        self.trim = trim
        self.io_options = dict(io_options or {})
        self.reader = reader
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (file order and buffer shuffling depend on it)."""
        self.epoch = epoch

    def _shard(self) -> tuple[int, int]:
        info = get_worker_info()
        n_workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        return self.rank * n_workers + worker, self.world_size * n_workers

    def _chunks(self, shard: int, n_shards: int) -> Iterator[ak.Array]:
        reader = self.reader if self.reader is not None else _default_reader()
        paths = list(self.paths)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(paths))
            paths = [paths[i] for i in order]
        chunk_number = 0
        for file_number, path in enumerate(paths):
            if self.shard_by == "file" and file_number % n_shards != shard:
                continue
            for chunk in reader(path, step_size=self.step_size, **self.io_options):
                mine = self.shard_by == "file" or chunk_number % n_shards == shard
                chunk_number += 1
                if mine and self.records is not None:
                    chunk = self.records(chunk)
                if mine and len(chunk):
                    yield chunk

    def _tensors(self, chunk: ak.Array) -> EventTensors:
        return build_event_tensors(
            chunk, self.track_feature_names, self.event_feature_names, self.max_tracks,
            detector=self.detector, sort_by=self.sort_by, with_vectors=self.with_vectors,
        )

    def __iter__(self) -> Iterator[PaddedBatch | RaggedBatch]:
        """Yield the batches of this worker / rank for the current epoch."""
        shard, n_shards = self._shard()
        rng = np.random.default_rng([self.seed, self.epoch, shard])
        buffer: list[EventTensors] = []
        n_buffered = 0
        for chunk in self._chunks(shard, n_shards):
            buffer.append(self._tensors(chunk))
            n_buffered += len(buffer[-1])
            if n_buffered >= self.buffer_size:
                pool = concat_event_tensors(buffer)
                n_emit = (len(pool) // self.batch_size) * self.batch_size
                order = rng.permutation(len(pool)) if self.shuffle else np.arange(len(pool))
                yield from self._batches(pool, order[:n_emit])
                rest = pool.subset(np.sort(order[n_emit:]))
                buffer, n_buffered = ([rest], len(rest)) if len(rest) else ([], 0)
        if buffer:
            pool = concat_event_tensors(buffer)
            order = rng.permutation(len(pool)) if self.shuffle else np.arange(len(pool))
            if self.drop_last:
                order = order[: (len(pool) // self.batch_size) * self.batch_size]
            yield from self._batches(pool, order)

    def _batches(
        self, pool: EventTensors, order: np.ndarray
    ) -> Iterator[PaddedBatch | RaggedBatch]:
        for start in range(0, len(order), self.batch_size):
            yield pool.batch(order[start:start + self.batch_size], self.layout, self.trim)


def make_streaming_loader(
    dataset: StreamingEventDataset, num_workers: int = 0, pin_memory: bool = False,
    prefetch_factor: int | None = None,
) -> DataLoader:
    """A DataLoader over a ``StreamingEventDataset`` (batches come ready-made)."""
    kwargs: dict[str, Any] = {}
    if num_workers > 0 and prefetch_factor is not None:
        kwargs["prefetch_factor"] = prefetch_factor
    return DataLoader(dataset, batch_size=None, collate_fn=identity_collate, num_workers=num_workers,
                      pin_memory=pin_memory, **kwargs)
