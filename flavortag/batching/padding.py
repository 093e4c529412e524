"""Padding jagged per-track records to ``[B, max_tracks, F]`` plus a ``valid`` mask (numpy)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import awkward as ak
import numpy as np

from flavortag.ragged import (
    DEFAULT_SORT_BY,
    argsort_within_events,
    event_index,
    offsets_of,
    ragged_to_padded,
)


# ---- padding ------------------------------------------------------------------------------
def flat_values(array: ak.Array, dtype: type = np.float32) -> np.ndarray:
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
    event = event_index(counts)
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
    sort_by: str | None = DEFAULT_SORT_BY,
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
    offsets = offsets_of(tracks)
    if names:
        columns = np.stack([flat_values(tracks[n]) for n in names], axis=1)
    else:
        columns = np.zeros((int(offsets[-1]), 0), np.float32)
    key = None
    if sort_values is not None:
        key = sort_values if isinstance(sort_values, np.ndarray) else flat_values(sort_values, np.float64)
    return pad_flat(columns, offsets, max_tracks, key, descending)


def raw_inputs(events: ak.Array, n_slots: int | None = None, particle_flow: bool = False) -> dict[str, np.ndarray]:
    """The inputs of a raw-input ONNX tagger (docs/ONNX.md) for ``events``, numpy float32 / bool.

    ``axis [n, 3]``, ``tracks [n, N, 7]`` (E, px, py, pz, x, y, z in stored
    order), ``valid [n, N]`` and ``track_sigma [n, N, 2]`` (the tracks'
    ``sigma_d0``, ``sigma_z0`` where the records carry them, else 0: the
    detector model's resolution); ``N`` is ``n_slots`` or the longest event
    (at least 1). Padded slots hold zeros. With ``particle_flow`` (a graph with a
    ``particle`` input) the records' ``neutrals`` follow the tracks as slots of their
    own (:func:`~flavortag.features.particle_flow.with_neutral_tokens`) and
    ``particle [n, N, 5]`` holds every slot's particle-flow fields (type, charge,
    dndx, tof_ns, track_length_mm; NaN where not measured).
    """
    from flavortag.features.padded import PARTICLE_FIELDS, particle_fill
    from flavortag.features.particle_flow import with_neutral_tokens
    from flavortag.features.track import SIGMA_FIELDS, VECTOR_FIELDS, event_axes

    tracks = (with_neutral_tokens(events) if particle_flow else events)["tracks"]
    offsets = offsets_of(tracks)
    longest = int(np.diff(offsets).max()) if len(offsets) > 1 else 0
    n = max(longest, 1) if n_slots is None else int(n_slots)
    if n < longest:
        raise ValueError(f"n_slots={n} is smaller than the longest event ({longest} tracks)")

    def padded(fields: Sequence[str], fill: Sequence[float] | None = None) -> np.ndarray:
        fill = fill or [0.0] * len(fields)
        flat = [flat_values(tracks[f]) if f in tracks.fields else np.full(int(offsets[-1]), v, np.float32)
                for f, v in zip(fields, fill)]
        return ragged_to_padded(np.stack(flat, axis=1), offsets, n)[0].astype(np.float32)

    valid = np.arange(n)[None, :] < np.diff(offsets)[:, None]
    inputs = {"axis": event_axes(events).astype(np.float32), "tracks": padded(VECTOR_FIELDS), "valid": valid,
              "track_sigma": padded(SIGMA_FIELDS) if all(f in tracks.fields for f in SIGMA_FIELDS)
              else np.zeros(valid.shape + (2,), dtype=np.float32)}
    if particle_flow:
        inputs["particle"] = padded(PARTICLE_FIELDS, [particle_fill(f) for f in PARTICLE_FIELDS])
    return inputs
