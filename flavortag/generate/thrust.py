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

All events of a chunk are processed together on flat (jagged) arrays, so the
cost is a handful of numpy passes per iteration, not a Python loop per event.

Conventions: the axis is a unit vector with ``axis_z >= 0`` (it is only
defined up to sign). An event with one track gets that track's direction and
``T = 1``; an event without tracks gets the beam axis ``(0, 0, 1)`` and ``T = 0``.
"""

from __future__ import annotations

import itertools

import numpy as np

from flavortag.ragged import ragged_to_padded

#: Number of hardest tracks combined into seeds (2**(n-1) seeds per event).
N_SEED_TRACKS: int = 4
#: Upper bound on the alternating iterations (convergence takes 2-4 in practice).
MAX_ITERATIONS: int = 20


def _padded(p: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Scatter flat tracks into ``[n_events, max_tracks, 3]`` (zero padding)."""
    counts = np.diff(offsets)
    padded, _ = ragged_to_padded(np.asarray(p, dtype=np.float64), offsets,
                                 max(int(counts.max(initial=0)), 1))
    return padded


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
    if len(np.unique(group)) <= 1:
        return _thrust_axis(p, offsets, n_seed_tracks)
    from flavortag.ragged import offsets_from_counts

    axis = np.empty((len(counts), 3))
    thrust = np.empty(len(counts))
    for g in np.unique(group):
        events = np.flatnonzero(group == g)
        rows = np.repeat(offsets[events], counts[events]) + (
            np.arange(counts[events].sum()) - np.repeat(offsets_from_counts(counts[events])[:-1], counts[events]))
        axis[events], thrust[events] = _thrust_axis(p[rows], offsets_from_counts(counts[events]), n_seed_tracks)
    return axis, thrust


#: Upper track counts of the event groups of :func:`thrust_axis` (the last group takes the rest).
GROUP_TRACKS: tuple[int, ...] = (8, 16, 24, 32, 48, 64)


def _thrust_axis(
    p: np.ndarray, offsets: np.ndarray, n_seed_tracks: int = N_SEED_TRACKS
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`thrust_axis` of one group of events (float64 momenta ``[n, 3]``)."""
    n_events = len(offsets) - 1
    padded = _padded(p, offsets)  # [E, N, 3]
    pabs = np.linalg.norm(padded, axis=2)  # [E, N]
    sum_pabs = pabs.sum(axis=1)

    # Seeds: p1 + s2 p2 + s3 p3 + ... over all sign choices of the hardest tracks.
    k = min(n_seed_tracks, padded.shape[1])
    hardest = np.argsort(-pabs, axis=1, kind="stable")[:, :k]
    signs = np.array([(1.0, *s) for s in itertools.product((1.0, -1.0), repeat=k - 1)])
    seed_tracks = np.take_along_axis(padded, hardest[:, :, None], axis=1)  # [E, k, 3]
    axes = np.einsum("sk,ekc->esc", signs, seed_tracks)  # [E, S, 3]

    # Alternate sign pattern <-> axis; only events whose axes changed go on (an unchanged
    # sign pattern gives the very same axis, so comparing axes is comparing patterns).
    total = padded.sum(axis=1)  # [E, 3]
    active = np.arange(n_events)
    for _ in range(MAX_ITERATIONS):
        sub = padded[active]
        positive = (sub @ axes[active].transpose(0, 2, 1)) >= 0.0  # [A, N, S]
        # sum_i s_i p_i with s_i = +-1  ==  2 * sum_{s_i > 0} p_i - sum_i p_i
        new_axes = 2.0 * (positive.transpose(0, 2, 1).astype(np.float64) @ sub) - total[active][:, None, :]
        changed = np.any(new_axes != axes[active], axis=(1, 2))
        axes[active] = new_axes
        active = active[changed]
        if len(active) == 0:
            break

    proj = padded @ axes.transpose(0, 2, 1)
    norm = np.linalg.norm(axes, axis=2)  # [E, S]
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(norm > 0.0, np.abs(proj).sum(axis=1) / norm, -1.0)
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
