"""An in-memory sample as padded numpy arrays: :class:`EventTensors` and its builders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import awkward as ak
import numpy as np
import torch

from flavortag.batching.batch import EventItem, Layout, PaddedBatch, RaggedBatch, check_layout
from flavortag.batching.padding import flat_values, padding_plan
from flavortag.detector import DetectorModel
from flavortag.features import (
    EVENT_FEATURES,
    TRACK_FEATURES,
    VECTOR_FIELDS,
    compute_features,
)
from flavortag.features.particle_flow import uses_neutral_tokens, with_neutral_tokens
from flavortag.ragged import DEFAULT_SORT_BY, offsets_from_counts


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
        check_layout(layout)
        offsets = offsets_from_counts(counts)
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
    sort_by: str | None = DEFAULT_SORT_BY,
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
    if uses_neutral_tokens(track_feature_names):  # neutrals become tokens; event features stay charged
        tokens = with_neutral_tokens(events)
        columns, offsets, _ = compute_features(tokens, track_feature_names, None, detector)
        event_matrix = None if event_names is None else compute_features(events, (), event_names, detector)[2]
        events = ak.with_field(events, tokens["tracks"], "tracks")
    else:
        columns, offsets, event_matrix = compute_features(events, track_feature_names, event_names, detector)
    tracks = events["tracks"]
    key = None
    if sort_by is not None:
        if sort_by in tracks.fields:
            key = flat_values(tracks[sort_by], np.float64)
        elif sort_by in track_feature_names:
            key = columns[:, track_feature_names.index(sort_by)]
        else:
            raise ValueError(f"sort_by={sort_by!r} is neither a track field {tracks.fields} "
                             f"nor a requested feature")
    plan = padding_plan(offsets, max_tracks, key, descending)
    vectors = None
    if with_vectors:
        vectors = plan.apply(np.stack([flat_values(tracks[f]) for f in VECTOR_FIELDS], axis=1))
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
