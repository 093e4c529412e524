"""Toy events for I/O tests and benchmarks: realistic shapes and magnitudes, no physics.

Vectorised numpy (no Pythia): about ``mean_tracks`` charged tracks per event,
momenta falling exponentially (mean 2.2 GeV) in two jets around a random unit
axis, E from the pion mass, and reference points that are prompt (10 um),
displaced like heavy-flavour decays (1 mm scale) or like K0S/Lambda decays
(5 cm scale). Values are rounded to 7 significant digits, as in ``%e`` text,
so a text file made from them looks like the files in the wild.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from flavortag.detector import PION_MASS_GEV
from flavortag.io.columns import TRACK_FIELDS, EventColumns, offsets_from_counts
from flavortag.ragged import event_index


def _round_significant(values: np.ndarray, digits: int = 7) -> np.ndarray:
    values = np.asarray(values, np.float64)
    with np.errstate(divide="ignore"):
        exponent = np.floor(np.log10(np.abs(values)))
    exponent[~np.isfinite(exponent)] = 0
    scale = 10.0 ** (digits - 1 - exponent)
    return (np.round(values * scale) / scale).astype(np.float32)


def synthetic_columns(
    n_events: int, seed: int = 0, mean_tracks: float = 20.0, label: int = 2
) -> EventColumns:
    """``n_events`` toy events as :class:`~flavortag.io.columns.EventColumns`."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(mean_tracks, n_events)
    offsets = offsets_from_counts(counts)
    n_tracks = int(offsets[-1])
    axis = rng.normal(size=(n_events, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    event_of_track = event_index(counts)
    hemisphere = rng.choice([-1.0, 1.0], n_tracks)[:, None]
    direction = axis[event_of_track] * hemisphere + rng.normal(scale=0.35, size=(n_tracks, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    p_gev = rng.exponential(2.2, n_tracks) + 0.1
    momentum = _round_significant(direction * p_gev[:, None])
    p2 = (momentum.astype(np.float64) ** 2).sum(axis=1)
    energy = _round_significant(np.sqrt(p2 + PION_MASS_GEV**2))
    kind = rng.random(n_tracks)
    flight_mm = np.where(
        kind < 0.75, 0.0, np.where(kind < 0.97, rng.exponential(1.0, n_tracks), rng.exponential(50.0, n_tracks))
    )
    position = direction * flight_mm[:, None] + rng.normal(scale=0.01, size=(n_tracks, 3))
    position = _round_significant(position)
    values = [energy, *momentum.T, *position.T]
    return EventColumns(
        axis=_round_significant(axis).reshape(n_events, 3),
        offsets=offsets,
        tracks={name: np.ascontiguousarray(v) for name, v in zip(TRACK_FIELDS, values)},
        label=np.full(n_events, label, np.int32),
    )


def synthetic_events(n_events: int, seed: int = 0, mean_tracks: float = 20.0, label: int = 2) -> ak.Array:
    """``n_events`` toy events as an event Array (see :func:`synthetic_columns`)."""
    return synthetic_columns(n_events, seed, mean_tracks, label).to_awkward()
