"""Per-event items, collate functions, the map-style dataset and its loader."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

from flavortag.batching.batch import (
    EventItem,
    Layout,
    PaddedBatch,
    RaggedBatch,
    check_layout,
    ragged_to_padded,
)
from flavortag.batching.buckets import BucketBatchSampler
from flavortag.batching.tensors import EventTensors
from flavortag.ragged import offsets_from_counts


# ---- per-event items and collate functions ---------------------------------------------------
def _stack_optional(items: Sequence[EventItem], name: str) -> torch.Tensor | None:
    values = [getattr(it, name) for it in items]
    if any(v is None for v in values):
        return None
    return torch.from_numpy(np.stack(values).astype(np.float32, copy=False))


def collate_ragged(items: Sequence[EventItem]) -> RaggedBatch:
    """Concatenate per-event items into a ``RaggedBatch``."""
    counts = np.array([len(it.features) for it in items], dtype=np.int64)
    offsets = offsets_from_counts(counts)
    n_features = items[0].features.shape[1] if items else 0
    values = (np.concatenate([it.features for it in items]).astype(np.float32, copy=False)
              if items else np.zeros((0, n_features), np.float32))
    has_vectors = bool(items) and all(it.vectors is not None for it in items)
    return RaggedBatch(
        values=torch.from_numpy(values),
        offsets=torch.from_numpy(offsets),
        labels=torch.tensor([it.label for it in items], dtype=torch.int64),
        event_features=_stack_optional(items, "event_features") if items else None,
        vectors=(torch.from_numpy(np.concatenate([it.vectors for it in items]).astype(np.float32))
                 if has_vectors else None),
    )


def collate_padded(items: Sequence[EventItem], max_tracks: int | None = None) -> PaddedBatch:
    """Pad per-event items into a ``PaddedBatch`` (length: longest item, or ``max_tracks``)."""
    return ragged_to_padded(collate_ragged(items), max_tracks=max_tracks)


# ---- map-style dataset and loader ----------------------------------------------------------
class EventDataset(Dataset):
    """Map-style dataset over ``EventTensors``.

    ``dataset[i]`` (an int) is an ``EventItem``; ``dataset[indices]`` (a list or
    array) is a whole batch in ``layout`` -- what ``make_loader`` uses, so each
    batch costs one gather instead of B item look-ups and a collate.
    """

    def __init__(self, tensors: EventTensors, layout: Layout = "padded", trim: bool = True) -> None:
        check_layout(layout)
        self.tensors = tensors
        self.layout: Layout = layout
        self.trim = trim

    def __len__(self) -> int:
        """Number of events."""
        return len(self.tensors)

    def __getitem__(
        self, index: int | np.integer | Sequence[int] | np.ndarray | torch.Tensor
    ) -> EventItem | PaddedBatch | RaggedBatch:
        """One ``EventItem`` for an integer index, a batch for a sequence of indices."""
        if isinstance(index, (int, np.integer)):
            return self.tensors.item(int(index))
        if isinstance(index, torch.Tensor):
            index = index.numpy()
        return self.tensors.batch(np.asarray(index, dtype=np.int64), self.layout, self.trim)


def identity_collate(batch: Any) -> Any:  # noqa: ANN401 - the batch passes through unchanged
    return batch


def make_loader(
    tensors: EventTensors | EventDataset,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    layout: Layout = "padded",
    drop_last: bool = False,
    sampler: Sampler[int] | None = None,
    pin_memory: bool = False,
    num_workers: int = 0,
    trim: bool = True,
    bucketing: bool = False,
) -> DataLoader:
    """A DataLoader yielding ``PaddedBatch`` / ``RaggedBatch``, one index gather per batch.

    ``sampler`` (e.g. ``DistributedSampler(tensors, num_replicas, rank, shuffle=True,
    seed=seed)`` for DDP; call its ``set_epoch`` each epoch) orders the events; it
    excludes ``shuffle`` as in ``DataLoader``. Without it, ``shuffle`` draws a
    new permutation each epoch from a generator seeded with ``seed``
    (reproducible). ``trim`` cuts padded batches to their longest event.
    ``bucketing`` groups events of similar track counts into batches
    (:class:`~flavortag.batching.buckets.BucketBatchSampler`, seeded with
    ``seed``; with a DDP sampler, on each rank's share; the class mix of each
    batch kept): with ``trim``, far less padding.
    """
    dataset = tensors if isinstance(tensors, EventDataset) else EventDataset(tensors, layout, trim)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if sampler is not None and shuffle:
        raise ValueError("sampler and shuffle=True are mutually exclusive; shuffle in the sampler")
    if sampler is None:
        if shuffle:
            generator = torch.Generator()
            generator.manual_seed(seed)
            sampler = RandomSampler(dataset, generator=generator)
        else:
            sampler = SequentialSampler(dataset)
    batches: Sampler[list[int]] = (
        BucketBatchSampler(sampler, dataset.tensors.n_valid, batch_size, drop_last=drop_last, seed=seed,
                           labels=dataset.tensors.labels)
        if bucketing else BatchSampler(sampler, batch_size=batch_size, drop_last=drop_last)
    )
    return DataLoader(
        dataset,
        sampler=batches,
        batch_size=None,
        collate_fn=identity_collate,
        pin_memory=pin_memory,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )


def n_batches(n_events: int, batch_size: int, drop_last: bool = False) -> int:
    """Number of batches of ``batch_size`` from ``n_events`` events."""
    return n_events // batch_size if drop_last else math.ceil(n_events / batch_size)
