"""Thrust axis and thrust value of many events at once (numpy only).

The thrust of an event is ``T = max_n sum_i |p_i . n| / sum_i |p_i|`` over unit
vectors ``n``; the maximising ``n`` is the thrust axis. For a given ``n`` the
best sign pattern is ``s_i = sign(p_i . n)``, and for a given sign pattern the
best axis is ``n ~ sum_i s_i p_i``. Alternating the two steps never lowers
``T`` and stops at a local maximum after a few steps (the iteration used by
JETSET's PYTHRU and most LEP analyses). Starting from several seeds made of
the hardest tracks (``p_1 +- p_2 +- p_3 +- p_4``) and keeping the best result
finds the global maximum in practice (the tests compare against exact
enumeration of all sign patterns).

All events of a chunk are processed together (padded, in groups of similar
track counts), so the cost is a handful of numpy passes per iteration, not a
Python loop per event. The sign patterns are searched in float32 (about twice
as quick) and then confirmed, or refined, in float64 from where float32
stopped: the axis is a float64 fixed point of the iteration, as if float64 had
been used throughout, and the value of a fixed point is its axis's length
(``sum_i |p_i . n| = |sum_i s_i p_i|`` there). The tests compare the axis with
exact enumeration of all sign patterns (:func:`thrust_exact`) on generated
events and on a real FCC (EDM4hep) file: equal up to sign within 1e-9.

Conventions: the axis is a unit vector with ``axis_z >= 0`` (it is only
defined up to sign). An event with one track gets that track's direction and
``T = 1``; an event without tracks gets the beam axis ``(0, 0, 1)`` and ``T = 0``.
"""

from __future__ import annotations

import itertools

import numpy as np

from flavortag.ragged import offsets_from_counts, positions_in_events

#: Number of hardest tracks combined into seeds (2**(n-1) seeds per event).
N_SEED_TRACKS: int = 4
#: Upper bound on the alternating iterations (convergence takes 2-4 in practice).
MAX_ITERATIONS: int = 20


def thrust_axis(
    momenta: np.ndarray, offsets: np.ndarray, n_seed_tracks: int = N_SEED_TRACKS
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(axis [n_events, 3], thrust [n_events])`` for jagged momenta.

    ``momenta`` is ``[n_tracks, 3]`` (px, py, pz in any common unit) for all
    events back to back; event ``k`` owns rows ``offsets[k]:offsets[k+1]``.
    Both outputs are float64; the axis is a unit vector with ``axis_z >= 0``.
    Events are processed in groups of similar track counts (:data:`GROUP_TRACKS`),
    so that a few busy events do not pad all the others; each event's result
    does not depend on the others.
    """
    p = np.asarray(momenta, dtype=np.float64).reshape(-1, 3)
    offsets = np.asarray(offsets, dtype=np.int64)
    counts = np.diff(offsets)
    group = np.searchsorted(GROUP_TRACKS, counts)
    # The events group by group (in their order within a group), and their tracks in that order:
    # each group's events and tracks are then one block.
    order = np.argsort(group, kind="stable")
    block_counts = counts[order]
    block_offsets = offsets_from_counts(block_counts)
    starts = np.repeat(offsets[:-1][order] - block_offsets[:-1], block_counts)
    p = p[starts + np.arange(len(starts))]
    position = positions_in_events(block_offsets)
    edges = np.searchsorted(group[order], np.arange(len(GROUP_TRACKS) + 2))
    axis = np.empty((len(counts), 3))
    thrust = np.empty(len(counts))
    for first, last in zip(edges[:-1], edges[1:]):
        if last == first:
            continue
        events = order[first:last]
        tracks = slice(block_offsets[first], block_offsets[last])
        row = np.repeat(np.arange(last - first), block_counts[first:last])
        padded = _padded(p[tracks], block_counts[first:last], row, position[tracks])
        axis[events], thrust[events] = _thrust_axis(padded, n_seed_tracks)
    return axis, thrust


#: Upper track counts of the event groups of :func:`thrust_axis` (the last group takes the rest).
GROUP_TRACKS: tuple[int, ...] = (8, 16, 24, 32, 48, 64)


def _padded(p: np.ndarray, counts: np.ndarray, row: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Scatter tracks ``p [n, 3]`` (event ``row``, place ``position``) into ``[n_events, max_tracks, 3]``."""
    width = max(int(counts.max(initial=0)), 1)
    padded = np.zeros((len(counts), width, 3))
    padded.reshape(-1, 3)[row * width + position] = p
    return padded


def _thrust_axis(padded: np.ndarray, n_seed_tracks: int = N_SEED_TRACKS) -> tuple[np.ndarray, np.ndarray]:
    """:func:`thrust_axis` of one group of events (float64 momenta ``[E, N, 3]``, zero padded)."""
    n_events = len(padded)
    tracks_t = np.ascontiguousarray(padded.transpose(0, 2, 1))  # [E, 3, N]
    px, py, pz = tracks_t[:, 0], tracks_t[:, 1], tracks_t[:, 2]
    pabs = np.sqrt(px * px + py * py + pz * pz)  # [E, N] (as (p * p).sum(axis=2), bit for bit, ~2x quicker)
    sum_pabs = pabs.sum(axis=1)

    # Seeds: p1 + s2 p2 + s3 p3 + ... over all sign choices of the hardest tracks (in order of |p|,
    # ties in track order: the stable order of a full sort, from a partial one).
    k = min(n_seed_tracks, padded.shape[1])
    hardest = np.argpartition(-pabs, k - 1, axis=1)[:, :k] if k < padded.shape[1] else np.tile(
        np.arange(k), (n_events, 1))
    hardest = np.take_along_axis(hardest, np.lexsort((hardest, -np.take_along_axis(pabs, hardest, 1)), axis=1), 1)
    signs = np.array([(1.0, *s) for s in itertools.product((1.0, -1.0), repeat=k - 1)])
    axes = signs @ np.take_along_axis(padded, hardest[:, :, None], axis=1)  # [E, S, 3]

    # Alternate sign pattern <-> axis until the patterns stay (an unchanged pattern gives the very
    # same axis): in float32 first (quicker), then in float64 from the float32 patterns, where
    # mostly one step confirms them.
    total = padded.sum(axis=1)[:, None, :]  # [E, 1, 3]
    tracks_t32 = tracks_t.astype(np.float32)
    pattern = (axes.astype(np.float32) @ tracks_t32) >= 0.0  # [E, S, N]
    _climb(padded.astype(np.float32), tracks_t32, total.astype(np.float32), pattern, axes.astype(np.float32))
    active = _climb(padded, tracks_t, total, pattern, axes)

    # At a fixed point sum_i |p_i . n| = |sum_i s_i p_i|: the value is the axis's length
    # (events still changing after MAX_ITERATIONS get theirs from the projections).
    norm = np.linalg.norm(axes, axis=2)  # [E, S]
    value = norm.copy()
    if len(active):
        value[active] = np.abs(axes[active] @ tracks_t[active]).sum(axis=2) / np.where(
            norm[active] > 0.0, norm[active], 1.0)
    value[norm <= 0.0] = -1.0
    best = np.argmax(value, axis=1)
    rows = np.arange(n_events)
    axis = axes[rows, best]
    best_norm = norm[rows, best]
    with np.errstate(invalid="ignore", divide="ignore"):
        axis = np.where(best_norm[:, None] > 0.0, axis / best_norm[:, None], 0.0)
        thrust = np.where(sum_pabs > 0.0, value[rows, best] / sum_pabs, 0.0)

    # Degenerate events: no tracks (or only zero momenta) -> beam axis, T = 0.
    degenerate = best_norm <= 0.0
    axis[degenerate] = (0.0, 0.0, 1.0)
    thrust[degenerate] = 0.0
    axis[axis[:, 2] < 0.0] *= -1.0
    return axis, np.clip(thrust, 0.0, 1.0)


def _climb(padded: np.ndarray, tracks_t: np.ndarray, total: np.ndarray, pattern: np.ndarray,
           axes: np.ndarray) -> np.ndarray:
    """Alternate sign pattern ``[E, S, N]`` -> axis ``[E, S, 3]`` -> pattern, in place, until no pattern changes.

    ``padded [E, N, 3]`` and ``tracks_t [E, 3, N]`` are the tracks, ``total [E, 1, 3]`` their sum, all in
    the precision of the arithmetic. Every event takes at least one step. Returns the events still
    changing after :data:`MAX_ITERATIONS`.
    """
    active = np.arange(len(padded))
    # The active events' tracks, sums and patterns, copied down as events settle.
    sub, sub_t, sub_total, sub_pattern = padded, tracks_t, total, pattern
    for _ in range(MAX_ITERATIONS):
        # sum_i s_i p_i with s_i = +-1  ==  2 * sum_{s_i > 0} p_i - sum_i p_i
        new_axes = 2 * (sub_pattern.astype(padded.dtype) @ sub) - sub_total
        axes[active] = new_axes
        new_pattern = (new_axes @ sub_t) >= 0
        changed = np.any(new_pattern != sub_pattern, axis=(1, 2))
        pattern[active] = new_pattern
        if changed.all():
            sub_pattern = new_pattern
            continue
        active = active[changed]
        if len(active) == 0:
            break
        sub, sub_t, sub_total, sub_pattern = sub[changed], sub_t[changed], sub_total[changed], new_pattern[changed]
    return active


def thrust_exact(momenta: np.ndarray) -> tuple[np.ndarray, float]:
    """Exact thrust of one small event by enumerating all sign patterns (O(2^N)).

    For tests and checks only (N up to ~16). Returns ``(axis, thrust)`` with the
    same conventions as :func:`thrust_axis`.
    """
    p = np.asarray(momenta, dtype=np.float64).reshape(-1, 3)
    if len(p) == 0 or not np.any(p):
        return np.array([0.0, 0.0, 1.0]), 0.0
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(p) - 1)))
    signs = np.hstack([np.ones((len(signs), 1)), signs])
    sums = signs @ p
    lengths = np.linalg.norm(sums, axis=1)
    best = int(np.argmax(lengths))
    axis = sums[best] / lengths[best]
    if axis[2] < 0.0:
        axis = -axis
    return axis, float(lengths[best] / np.linalg.norm(p, axis=1).sum())
