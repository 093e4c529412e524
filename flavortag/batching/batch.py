"""The two batch layouts every model takes: padded (tensor + mask) and ragged (values + offsets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

Layout = Literal["padded", "ragged"]
Device = torch.device | str | int


def check_layout(layout: str) -> Layout:
    """``layout`` as a :data:`Layout`; ``ValueError`` unless it is "padded" or "ragged"."""
    if layout not in ("padded", "ragged"):
        raise ValueError(f"unknown layout {layout!r}; use 'padded' or 'ragged'")
    return "padded" if layout == "padded" else "ragged"


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
        return segment_ids(self.offsets, self.values.shape[0])


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


def segment_ids(offsets: torch.Tensor, n_values: int | None = None) -> torch.Tensor:
    """Return the event index of each of the ``T`` values described by ``offsets [B+1]``."""
    counts = offsets[1:] - offsets[:-1]
    ids = torch.arange(counts.numel(), device=offsets.device)
    total = int(offsets[-1]) if n_values is None else n_values
    return torch.repeat_interleave(ids, counts, output_size=total)


def pad_ragged_tensor(
    values: torch.Tensor, offsets: torch.Tensor, max_tracks: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scatter ragged ``values [T, ...]`` into ``padded [B, N, ...]`` (zeros) and ``valid [B, N]``.

    ``N`` is ``max_tracks`` or, by default, the longest event; longer events
    keep their first ``N`` rows.
    """
    counts = offsets[1:] - offsets[:-1]
    n_events = counts.numel()
    n_slots = (int(counts.max()) if n_events else 0) if max_tracks is None else int(max_tracks)
    event = segment_ids(offsets, values.shape[0])
    position = torch.arange(values.shape[0], device=values.device) - offsets[event]
    keep = position < n_slots
    padded = values.new_zeros((n_events, n_slots, *values.shape[1:]))
    padded[event[keep], position[keep]] = values[keep]
    valid = torch.arange(n_slots, device=counts.device)[None, :] < counts[:, None]
    return padded, valid


def ragged_to_padded(batch: RaggedBatch, max_tracks: int | None = None) -> PaddedBatch:
    """Pad to ``max_tracks`` (default: the longest event); longer events keep their first rows."""
    features, valid = pad_ragged_tensor(batch.values, batch.offsets, max_tracks)
    vectors = None
    if batch.vectors is not None:
        vectors, _ = pad_ragged_tensor(batch.vectors, batch.offsets, valid.shape[1])
    return PaddedBatch(
        features=features,
        valid=valid,
        labels=batch.labels,
        event_features=batch.event_features,
        vectors=vectors,
    )


@dataclass
class EventItem:
    """One event: ``features`` [n_i, F], ``label``, ``event_features`` [G] or None, ``vectors`` [n_i, 7] or None."""

    features: np.ndarray
    label: int
    event_features: np.ndarray | None = None
    vectors: np.ndarray | None = None
