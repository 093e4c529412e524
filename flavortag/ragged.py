"""Ragged (per-event variable-length) arrays as flat values plus event offsets, in numpy.

A ragged array of ``n`` events is a flat array of ``T`` values and int64
``offsets [n + 1]`` with ``offsets[0] == 0``: event ``i`` owns
``values[offsets[i]:offsets[i + 1]]``. These are the few operations every
layer needs on that layout (list lengths -> offsets, the event of each value,
the position of each value inside its event, a per-event sort, padding);
they need numpy and awkward only (no torch), so the readers can use them.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

__all__ = [
    "argsort_within_events",
    "counts_of",
    "event_index",
    "offsets_from_counts",
    "offsets_of",
    "positions_in_events",
    "ragged_to_padded",
]


#: Tracks are ordered by this field (descending) before the cut at ``max_tracks``, unless
#: told otherwise (``data.sort_by``); a model keeps the value it was trained with.
DEFAULT_SORT_BY: str = "E"
#: Tracks kept per event when a model does not say (models since 0.1 carry their own).
DEFAULT_MAX_TRACKS: int = 64

def offsets_from_counts(counts: np.ndarray) -> np.ndarray:
    """``[0, c0, c0 + c1, ...]`` as int64: list offsets from list lengths."""
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def counts_of(array: ak.Array) -> np.ndarray:
    """Length of each list of a jagged awkward array (``var * ...``), int64 ``[n]``."""
    return np.asarray(ak.to_numpy(ak.num(array, axis=1)), dtype=np.int64)


def offsets_of(array: ak.Array) -> np.ndarray:
    """Offsets ``[n + 1]`` (int64) of a jagged awkward array's lists."""
    return offsets_from_counts(counts_of(array))


def event_index(counts: np.ndarray) -> np.ndarray:
    """Event of each value, int64 ``[sum(counts)]``: ``[0]*c0 + [1]*c1 + ...``."""
    counts = np.asarray(counts, dtype=np.int64)
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts)


def positions_in_events(offsets: np.ndarray) -> np.ndarray:
    """Position of each value inside its event (0 for the first), int64 ``[T]``."""
    offsets = np.asarray(offsets, dtype=np.int64)
    counts = np.diff(offsets)
    return np.arange(int(offsets[-1]), dtype=np.int64) - np.repeat(offsets[:-1], counts)


def argsort_within_events(
    values: np.ndarray, offsets: np.ndarray, descending: bool = True
) -> np.ndarray:
    """Global permutation of flat ``values`` that sorts each event's slice, events kept in place.

    ``offsets`` ``[n + 1]`` delimit the events in ``values``. Stable (ties keep
    their order). Uses awkward's per-list sort, several times faster than a
    global ``np.lexsort`` on (event, value).
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    layout = ak.contents.ListOffsetArray(
        ak.index.Index64(offsets), ak.contents.NumpyArray(np.ascontiguousarray(values))
    )
    local = ak.argsort(ak.Array(layout), axis=1, ascending=not descending, stable=True)
    counts = np.diff(offsets)
    start = np.repeat(offsets[:-1], counts)
    return np.asarray(ak.to_numpy(ak.flatten(local, axis=1)), dtype=np.int64) + start


def ragged_to_padded(
    values: np.ndarray, offsets: np.ndarray, max_length: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Scatter ragged ``values [T, ...]`` into ``padded [n, N, ...]`` (zeros) and ``valid [n, N]``.

    ``N`` is ``max_length`` or, by default, the longest event; longer events
    keep their first ``N`` values. ``valid`` is True at a real value.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    counts = np.diff(offsets)
    n_events = len(counts)
    n_slots = (int(counts.max()) if n_events else 0) if max_length is None else int(max_length)
    event = event_index(counts)
    position = positions_in_events(offsets)
    keep = position < n_slots
    padded = np.zeros((n_events, n_slots, *values.shape[1:]), dtype=values.dtype)
    padded[event[keep], position[keep]] = values[keep]
    valid = np.arange(n_slots)[None, :] < counts[:, None]
    return padded, valid
