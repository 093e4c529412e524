"""Batches for the models: padded (tensor + mask) or ragged (values + offsets), and data loaders.

* ``PaddedBatch`` / ``RaggedBatch``: the two batch layouts every model takes,
  with converters ``padded_to_ragged`` / ``ragged_to_padded``.
* ``pad_tracks``: jagged per-track records -> ``[B, max_tracks, F]`` float32 plus
  a ``valid`` mask, tracks ordered by a key (energy by default) before
  truncation; vectorised (flat numpy scatter, or awkward pad/fill for comparison).
* ``EventTensors`` / ``build_event_tensors``: an in-memory sample as padded numpy
  arrays (features, mask, labels, event features, raw vectors).
* ``EventDataset`` + ``make_loader``: map-style dataset whose loader draws whole
  index batches (one gather per batch, no per-event collate); works with a
  ``DistributedSampler`` for DDP; padded batches are trimmed to their longest
  event by default.
* ``collate_padded`` / ``collate_ragged``: per-event items -> a batch.
* ``StreamingEventDataset``: reads files chunk by chunk through
  ``flavortag.io.iter_events``, computes features per chunk, shuffles inside a
  buffer and yields batches; chunks are dealt out across DataLoader workers and
  DDP ranks so that no event is seen twice in an epoch.

Padded positions (``valid`` False) hold zeros. Tracks are always stored as a
prefix: the valid tracks of an event are its first ``n`` positions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
    get_worker_info,
)

from flavortag.detector import DetectorModel
from flavortag.features import (
    EVENT_FEATURES,
    TRACK_FEATURES,
    VECTOR_FIELDS,
    compute_features,
)
from flavortag.features.track import argsort_within_events

Layout = Literal["padded", "ragged"]
Device = torch.device | str | int


def _move(value: torch.Tensor | None, device: Device, non_blocking: bool) -> torch.Tensor | None:
    return None if value is None else value.to(device, non_blocking=non_blocking)


def _pin(value: torch.Tensor | None) -> torch.Tensor | None:
    return None if value is None else value.pin_memory()


@dataclass
class PaddedBatch:
    """A batch of events as padded tensors.

    ``features`` [B, N, F] float32; ``valid`` [B, N] bool (True = real track);
    ``labels`` [B] int64 (-1 when unknown); ``event_features`` [B, G] float32 or
    None; ``vectors`` [B, N, 7] float32 raw (E, px, py, pz, x, y, z) in GeV / mm or None.
    """

    features: torch.Tensor
    valid: torch.Tensor
    labels: torch.Tensor
    event_features: torch.Tensor | None = None
    vectors: torch.Tensor | None = None

    def __len__(self) -> int:
        """Number of events B."""
        return int(self.labels.shape[0])

    def to(self, device: Device, non_blocking: bool = False) -> PaddedBatch:
        """A copy with every tensor on ``device``."""
        return PaddedBatch(
            self.features.to(device, non_blocking=non_blocking),
            self.valid.to(device, non_blocking=non_blocking),
            self.labels.to(device, non_blocking=non_blocking),
            _move(self.event_features, device, non_blocking),
            _move(self.vectors, device, non_blocking),
        )

    def pin_memory(self) -> PaddedBatch:
        """A copy in page-locked memory (called by ``DataLoader(pin_memory=True)``)."""
        return PaddedBatch(self.features.pin_memory(), self.valid.pin_memory(),
                           self.labels.pin_memory(), _pin(self.event_features), _pin(self.vectors))

    @property
    def n_tracks(self) -> torch.Tensor:
        """Number of real tracks per event, [B] int64."""
        return self.valid.sum(dim=1)


@dataclass
class RaggedBatch:
    """A batch of events as concatenated tracks plus offsets.

    ``values`` [T, F] float32; ``offsets`` [B + 1] int64 (event b owns rows
    ``offsets[b]:offsets[b+1]``); ``labels`` [B] int64; ``event_features``
    [B, G] or None; ``vectors`` [T, 7] or None.
    """

    values: torch.Tensor
    offsets: torch.Tensor
    labels: torch.Tensor
    event_features: torch.Tensor | None = None
    vectors: torch.Tensor | None = None

    def __len__(self) -> int:
        """Number of events B."""
        return int(self.labels.shape[0])

    def to(self, device: Device, non_blocking: bool = False) -> RaggedBatch:
        """A copy with every tensor on ``device``."""
        return RaggedBatch(
            self.values.to(device, non_blocking=non_blocking),
            self.offsets.to(device, non_blocking=non_blocking),
            self.labels.to(device, non_blocking=non_blocking),
            _move(self.event_features, device, non_blocking),
            _move(self.vectors, device, non_blocking),
        )

    def pin_memory(self) -> RaggedBatch:
        """A copy in page-locked memory (called by ``DataLoader(pin_memory=True)``)."""
        return RaggedBatch(self.values.pin_memory(), self.offsets.pin_memory(),
                           self.labels.pin_memory(), _pin(self.event_features), _pin(self.vectors))

    @property
    def n_tracks(self) -> torch.Tensor:
        """Number of tracks per event, [B] int64."""
        return self.offsets[1:] - self.offsets[:-1]

    def event_index(self) -> torch.Tensor:
        """Event of each row of ``values``, [T] int64 (for segment reductions)."""
        return torch.repeat_interleave(
            torch.arange(len(self), device=self.offsets.device), self.n_tracks
        )


def padded_to_ragged(batch: PaddedBatch) -> RaggedBatch:
    """Drop the padding: rows of ``features`` where ``valid``, in event order."""
    counts = batch.valid.sum(dim=1).to(torch.int64)
    offsets = torch.zeros(len(batch) + 1, dtype=torch.int64, device=counts.device)
    torch.cumsum(counts, dim=0, out=offsets[1:])
    return RaggedBatch(
        values=batch.features[batch.valid],
        offsets=offsets,
        labels=batch.labels,
        event_features=batch.event_features,
        vectors=None if batch.vectors is None else batch.vectors[batch.valid],
    )


def ragged_to_padded(batch: RaggedBatch, max_tracks: int | None = None) -> PaddedBatch:
    """Pad to ``max_tracks`` (default: the longest event); longer events keep their first rows."""
    counts = batch.n_tracks
    n_events = len(batch)
    if max_tracks is None:
        max_tracks = int(counts.max()) if n_events else 0
    event = batch.event_index()
    position = torch.arange(batch.values.shape[0], device=event.device) - batch.offsets[event]
    keep = position < max_tracks
    event, position = event[keep], position[keep]

    def scatter(values: torch.Tensor) -> torch.Tensor:
        out = values.new_zeros((n_events, max_tracks) + tuple(values.shape[1:]))
        out[event, position] = values[keep]
        return out

    valid = torch.arange(max_tracks, device=counts.device)[None, :] < counts[:, None]
    return PaddedBatch(
        features=scatter(batch.values),
        valid=valid,
        labels=batch.labels,
        event_features=batch.event_features,
        vectors=None if batch.vectors is None else scatter(batch.vectors),
    )


# ---- padding ------------------------------------------------------------------------------
def _offsets_of(array: ak.Array) -> np.ndarray:
    counts = np.asarray(ak.to_numpy(ak.num(array, axis=1)), dtype=np.int64)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def _flat(array: ak.Array, dtype: type = np.float32) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.flatten(array, axis=1)), dtype=dtype)


@dataclass(frozen=True)
class PaddingPlan:
    """Where each kept track goes: ``values[event, rank] = columns[source]``.

    Built once per sample by ``padding_plan`` and applied to any number of
    column blocks (features, vectors) with ``apply``, so they share one order.
    """

    n_events: int
    max_tracks: int
    event: np.ndarray
    rank: np.ndarray
    source: np.ndarray
    counts: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        """[n, max_tracks] bool, a prefix of True per event."""
        return np.arange(self.max_tracks)[None, :] < np.minimum(self.counts, self.max_tracks)[:, None]

    @property
    def n_truncated(self) -> int:
        """Tracks dropped in all events."""
        return int(np.maximum(self.counts - self.max_tracks, 0).sum())

    def apply(self, columns: np.ndarray) -> np.ndarray:
        """Scatter flat ``columns`` [T, F] into zero-padded float32 [n, max_tracks, F]."""
        columns = np.asarray(columns)
        if columns.ndim == 1:
            columns = columns[:, None]
        if columns.shape[0] != int(self.counts.sum()):
            raise ValueError(f"columns have {columns.shape[0]} rows but the events hold "
                             f"{int(self.counts.sum())} tracks")
        values = np.zeros((self.n_events, self.max_tracks, columns.shape[1]), dtype=np.float32)
        values[self.event, self.rank] = columns[self.source]
        return values


def padding_plan(
    offsets: np.ndarray,
    max_tracks: int,
    sort_values: np.ndarray | None = None,
    descending: bool = True,
) -> PaddingPlan:
    """Plan the padding of flat per-track arrays delimited by event ``offsets`` [n + 1].

    Tracks of each event are ordered by ``sort_values`` [T] (if given; stable)
    and the first ``max_tracks`` kept.
    """
    if max_tracks < 0:
        raise ValueError(f"max_tracks must be >= 0, got {max_tracks}")
    offsets = np.asarray(offsets, dtype=np.int64)
    n_events = len(offsets) - 1
    counts = np.diff(offsets)
    n_total = int(offsets[-1])
    event = np.repeat(np.arange(n_events, dtype=np.int64), counts)
    rank = np.arange(n_total, dtype=np.int64) - offsets[event]
    keep = np.flatnonzero(rank < max_tracks)
    if sort_values is None:
        source = keep
    else:
        sort_values = np.asarray(sort_values)
        if sort_values.shape != (n_total,):
            raise ValueError(f"sort_values has shape {sort_values.shape}, expected ({n_total},)")
        source = argsort_within_events(sort_values, offsets, descending=descending)[keep]
    return PaddingPlan(n_events, max_tracks, event[keep], rank[keep], source, counts)


def pad_flat(
    columns: np.ndarray,
    offsets: np.ndarray,
    max_tracks: int,
    sort_values: np.ndarray | None = None,
    descending: bool = True,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Pad flat per-track ``columns`` [T, F] delimited by event ``offsets`` [n + 1].

    Tracks of each event are ordered by ``sort_values`` [T] (if given) and the
    first ``max_tracks`` kept. Returns ``(values [n, max_tracks, F] float32,
    valid [n, max_tracks] bool, n_truncated)`` where ``n_truncated`` counts the
    tracks dropped in all events.
    """
    plan = padding_plan(offsets, max_tracks, sort_values, descending)
    return plan.apply(columns), plan.valid, plan.n_truncated


def _pad_awkward(
    tracks: ak.Array, names: Sequence[str], max_tracks: int,
    sort_values: ak.Array | None, descending: bool,
) -> tuple[np.ndarray, np.ndarray, int]:
    counts = np.asarray(ak.to_numpy(ak.num(tracks, axis=1)), dtype=np.int64)
    if sort_values is not None:
        tracks = tracks[ak.argsort(sort_values, axis=1, ascending=not descending, stable=True)]
    padded = ak.pad_none(tracks[:, :max_tracks], max_tracks, axis=1, clip=True)
    valid = ~np.asarray(ak.to_numpy(ak.is_none(padded, axis=1)))
    cols = [np.asarray(ak.to_numpy(ak.fill_none(padded[n], 0.0)), dtype=np.float32) for n in names]
    values = np.stack(cols, axis=-1) if cols else np.zeros((len(counts), max_tracks, 0), np.float32)
    return values, valid.reshape(len(counts), max_tracks), int(np.maximum(counts - max_tracks, 0).sum())


def pad_tracks(
    tracks: ak.Array,
    names: Sequence[str],
    max_tracks: int,
    sort_by: str | None = "E",
    descending: bool = True,
    sort_values: ak.Array | np.ndarray | None = None,
    method: Literal["flat", "awkward"] = "flat",
) -> tuple[np.ndarray, np.ndarray, int]:
    """Pad jagged track records to ``[B, max_tracks, len(names)]`` float32.

    ``tracks``: ``var * record`` holding the fields ``names``. Tracks are
    ordered per event by ``sort_values`` (jagged like ``tracks``, or flat over
    all tracks) if given, else by the field ``sort_by`` of ``tracks`` (None: keep
    the stored order), descending by default, then truncated to ``max_tracks``.
    Returns ``(values, valid [B, max_tracks] bool, n_truncated)``. ``method``
    "flat" scatters flat numpy arrays (fast); "awkward" uses argsort /
    pad_none / fill_none (same result, kept for the benchmark).
    """
    names = list(names)
    missing = [n for n in names if n not in tracks.fields]
    if missing:
        raise ValueError(f"tracks have no fields {missing}; fields: {tracks.fields}")
    if sort_values is None and sort_by is not None:
        if sort_by not in tracks.fields:
            raise ValueError(f"sort_by={sort_by!r} is not a track field ({tracks.fields}); "
                             "pass sort_values=... for a key kept elsewhere")
        sort_values = tracks[sort_by]
    if method == "awkward":
        if isinstance(sort_values, np.ndarray):
            sort_values = ak.unflatten(sort_values, ak.num(tracks, axis=1))
        return _pad_awkward(tracks, names, max_tracks, sort_values, descending)
    if method != "flat":
        raise ValueError(f"unknown method {method!r}; use 'flat' or 'awkward'")
    offsets = _offsets_of(tracks)
    if names:
        columns = np.stack([_flat(tracks[n]) for n in names], axis=1)
    else:
        columns = np.zeros((int(offsets[-1]), 0), np.float32)
    key = None
    if sort_values is not None:
        key = sort_values if isinstance(sort_values, np.ndarray) else _flat(sort_values, np.float64)
    return pad_flat(columns, offsets, max_tracks, key, descending)


# ---- in-memory samples ----------------------------------------------------------------------
@dataclass
class EventTensors:
    """An in-memory sample as padded numpy arrays (one row per event).

    ``features`` [n, N, F] float32, ``valid`` [n, N] bool (prefix of real
    tracks), ``labels`` [n] int64 (-1: unknown), ``n_tracks`` [n] int64 (tracks
    before truncation), ``event_features`` [n, G] float32 or None, ``vectors``
    [n, N, 7] float32 or None; ``track_feature_names`` / ``event_feature_names``
    name the columns.
    """

    features: np.ndarray
    valid: np.ndarray
    labels: np.ndarray
    n_tracks: np.ndarray
    track_feature_names: tuple[str, ...]
    event_feature_names: tuple[str, ...] = ()
    event_features: np.ndarray | None = None
    vectors: np.ndarray | None = None

    def __len__(self) -> int:
        """Number of events."""
        return int(self.labels.shape[0])

    @property
    def max_tracks(self) -> int:
        """Padded length N."""
        return int(self.features.shape[1])

    @property
    def n_valid(self) -> np.ndarray:
        """Tracks kept per event (after truncation), [n] int64."""
        return np.minimum(self.n_tracks, self.max_tracks)

    @property
    def n_truncated(self) -> int:
        """Tracks dropped by truncation to ``max_tracks``, over all events."""
        return int(np.maximum(self.n_tracks - self.max_tracks, 0).sum())

    def subset(self, indices: np.ndarray | Sequence[int] | slice) -> EventTensors:
        """The events at ``indices`` (a copy for index arrays, a view for slices)."""
        if not isinstance(indices, slice):
            indices = np.asarray(indices, dtype=np.int64)
        return EventTensors(
            features=self.features[indices],
            valid=self.valid[indices],
            labels=self.labels[indices],
            n_tracks=self.n_tracks[indices],
            track_feature_names=self.track_feature_names,
            event_feature_names=self.event_feature_names,
            event_features=None if self.event_features is None else self.event_features[indices],
            vectors=None if self.vectors is None else self.vectors[indices],
        )

    def valid_track_features(self) -> np.ndarray:
        """Features of the real tracks only, [n_valid_tracks, F] (e.g. for fitting normalisation)."""
        return self.features[self.valid]

    def batch(
        self, indices: np.ndarray | Sequence[int], layout: Layout = "padded", trim: bool = True
    ) -> PaddedBatch | RaggedBatch:
        """Gather the events at ``indices`` into one batch (one fancy index per array).

        With ``trim`` the padded length is cut to the longest event of the batch
        (at least 1).
        """
        idx = np.asarray(indices, dtype=np.int64)
        counts = np.minimum(self.n_tracks[idx], self.max_tracks)
        n_keep = self.max_tracks
        if trim or layout == "ragged":
            longest = int(counts.max()) if len(idx) else 0
            n_keep = min(self.max_tracks, max(longest, 1))
        cut = slice(0, n_keep)
        features = self.features[idx, cut]
        valid = self.valid[idx, cut]
        vectors = None if self.vectors is None else self.vectors[idx, cut]
        labels = torch.from_numpy(self.labels[idx])
        event_features = (None if self.event_features is None
                          else torch.from_numpy(self.event_features[idx]))
        if layout == "padded":
            return PaddedBatch(
                features=torch.from_numpy(features),
                valid=torch.from_numpy(valid),
                labels=labels,
                event_features=event_features,
                vectors=None if vectors is None else torch.from_numpy(vectors),
            )
        if layout != "ragged":
            raise ValueError(f"unknown layout {layout!r}; use 'padded' or 'ragged'")
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return RaggedBatch(
            values=torch.from_numpy(features[valid]),
            offsets=torch.from_numpy(offsets),
            labels=labels,
            event_features=event_features,
            vectors=None if vectors is None else torch.from_numpy(vectors[valid]),
        )

    def item(self, index: int) -> EventItem:
        """One event with its real tracks only."""
        n = int(self.n_valid[index])
        return EventItem(
            features=self.features[index, :n],
            label=int(self.labels[index]),
            event_features=None if self.event_features is None else self.event_features[index],
            vectors=None if self.vectors is None else self.vectors[index, :n],
        )


def concat_event_tensors(parts: Sequence[EventTensors]) -> EventTensors:
    """Concatenate samples with the same feature names and ``max_tracks``."""
    if not parts:
        raise ValueError("nothing to concatenate")
    first = parts[0]
    for p in parts[1:]:
        if (p.track_feature_names, p.event_feature_names, p.max_tracks) != (
                first.track_feature_names, first.event_feature_names, first.max_tracks):
            raise ValueError("EventTensors differ in feature names or max_tracks")

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts])

    return EventTensors(
        features=cat("features"), valid=cat("valid"), labels=cat("labels"),
        n_tracks=cat("n_tracks"), track_feature_names=first.track_feature_names,
        event_feature_names=first.event_feature_names,
        event_features=None if first.event_features is None else cat("event_features"),
        vectors=None if first.vectors is None else cat("vectors"),
    )


def build_event_tensors(
    events: ak.Array,
    track_feature_names: Sequence[str] = TRACK_FEATURES,
    event_feature_names: Sequence[str] | None = EVENT_FEATURES,
    max_tracks: int = 64,
    detector: DetectorModel | None = None,
    sort_by: str | None = "E",
    descending: bool = True,
    with_vectors: bool = True,
) -> EventTensors:
    """Features of ``events`` as padded arrays, tracks ordered by ``sort_by`` then truncated.

    ``sort_by`` names a raw track field (``E``, ``px``, ...) or one of the track
    features; None keeps the stored order. ``event_feature_names`` None (or
    empty) gives ``event_features=None``; ``with_vectors`` adds the raw
    (E, px, py, pz, x, y, z). Events without a ``label`` field get label -1.
    """
    track_feature_names = tuple(track_feature_names)
    event_names = tuple(event_feature_names) if event_feature_names else None
    columns, offsets, event_matrix = compute_features(
        events, track_feature_names, event_names, detector
    )
    tracks = events["tracks"]
    key = None
    if sort_by is not None:
        if sort_by in tracks.fields:
            key = _flat(tracks[sort_by], np.float64)
        elif sort_by in track_feature_names:
            key = columns[:, track_feature_names.index(sort_by)]
        else:
            raise ValueError(f"sort_by={sort_by!r} is neither a track field {tracks.fields} "
                             f"nor a requested feature")
    plan = padding_plan(offsets, max_tracks, key, descending)
    vectors = None
    if with_vectors:
        vectors = plan.apply(np.stack([_flat(tracks[f]) for f in VECTOR_FIELDS], axis=1))
    if "label" in events.fields:
        labels = np.asarray(ak.to_numpy(events["label"]), dtype=np.int64)
    else:
        labels = np.full(len(events), -1, dtype=np.int64)
    return EventTensors(
        features=plan.apply(columns),
        valid=plan.valid,
        labels=labels,
        n_tracks=plan.counts,
        track_feature_names=track_feature_names,
        event_feature_names=event_names or (),
        event_features=event_matrix,
        vectors=vectors,
    )


# ---- per-event items and collate functions ---------------------------------------------------
@dataclass
class EventItem:
    """One event: ``features`` [n_i, F], ``label``, ``event_features`` [G] or None, ``vectors`` [n_i, 7] or None."""

    features: np.ndarray
    label: int
    event_features: np.ndarray | None = None
    vectors: np.ndarray | None = None


def _stack_optional(items: Sequence[EventItem], name: str) -> torch.Tensor | None:
    values = [getattr(it, name) for it in items]
    if any(v is None for v in values):
        return None
    return torch.from_numpy(np.stack(values).astype(np.float32, copy=False))


def collate_ragged(items: Sequence[EventItem]) -> RaggedBatch:
    """Concatenate per-event items into a ``RaggedBatch``."""
    counts = np.array([len(it.features) for it in items], dtype=np.int64)
    offsets = np.zeros(len(items) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
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
        if layout not in ("padded", "ragged"):
            raise ValueError(f"unknown layout {layout!r}; use 'padded' or 'ragged'")
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


def _identity(batch: Any) -> Any:  # noqa: ANN401 - the batch passes through unchanged
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
) -> DataLoader:
    """A DataLoader yielding ``PaddedBatch`` / ``RaggedBatch``, one index gather per batch.

    ``sampler`` (e.g. ``DistributedSampler(tensors, num_replicas, rank, shuffle=True,
    seed=seed)`` for DDP; call its ``set_epoch`` each epoch) orders the events; it
    excludes ``shuffle`` as in ``DataLoader``. Without it, ``shuffle`` draws a
    new permutation each epoch from a generator seeded with ``seed``
    (reproducible). ``trim`` cuts padded batches to their longest event.
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
    return DataLoader(
        dataset,
        sampler=BatchSampler(sampler, batch_size=batch_size, drop_last=drop_last),
        batch_size=None,
        collate_fn=_identity,
        pin_memory=pin_memory,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )


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
        sort_by: str | None = "E",
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
    ) -> None:
        super().__init__()
        self.paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        if not self.paths:
            raise ValueError("no input files")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world_size {world_size}")
        if shard_by not in ("chunk", "file"):
            raise ValueError(f"unknown shard_by {shard_by!r}; use 'chunk' or 'file'")
        if layout not in ("padded", "ragged"):
            raise ValueError(f"unknown layout {layout!r}; use 'padded' or 'ragged'")
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
    return DataLoader(dataset, batch_size=None, collate_fn=_identity, num_workers=num_workers,
                      pin_memory=pin_memory, **kwargs)


def n_batches(n_events: int, batch_size: int, drop_last: bool = False) -> int:
    """Number of batches of ``batch_size`` from ``n_events`` events."""
    return n_events // batch_size if drop_last else math.ceil(n_events / batch_size)
