"""Per-event hand-crafted features in the spirit of LCFIPlus (for the MLP baseline).

Built on ``TrackQuantities``: multiplicities of displaced tracks, the leading
lifetime-signed d0 significances per hemisphere, a vertex-mass proxy from the
displaced tracks, the joint probability that a hemisphere's tracks are prompt,
thrust. Significance-based features use only *lifetime tracks* (|d0| < 2 mm,
|z0| < 10 mm, as the LEP b-tags did): farther tracks are mostly K0S / Lambda
daughters, which would otherwise make nearly every light-quark event look
displaced; ``n_tracks_far`` counts them. Hemispheres are split by the sign of ``p . axis``; ``hem1`` is the more
b-like one (larger leading signed d0 significance; ties broken by the second
and third, then by the larger energy), ``hem2`` the other, so every feature is
unchanged when the axis is flipped.

Missing values are finite: a missing track in a hemisphere counts as a
significance of ``MISSING_SIGNIFICANCE`` (-5), masses and fractions of an empty
set are 0, the joint probability of an empty set is 1 (log10 = 0), and thrust
of an event with no tracks is 0. See docs/FEATURES.md for the table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property

import awkward as ak
import numpy as np

from flavortag.detector import DetectorModel
from flavortag.features.probability import log10_joint_probability, log_prompt_probability
from flavortag.features.track import (
    D0_SCALE_FIELD,
    FeatureSpec,
    TrackQuantities,
    compressed,
)
from flavortag.ragged import argsort_within_events

#: Value used for the k-th leading significance of a hemisphere with fewer than k tracks.
MISSING_SIGNIFICANCE: float = -5.0
#: A lifetime track is "displaced" when its lifetime-signed d0 significance exceeds this.
DISPLACED_SIG_MIN: float = 3.0
#: Number of leading significances kept per hemisphere.
N_LEADING: int = 3
#: Lifetime-track selection (as in the LEP b-tags): only tracks with |d0| and |z0| below
#: these enter the significance-based features; farther tracks are mostly K0S / Lambda
#: daughters and secondary interactions, which would fake b-hadron decays.
LIFETIME_D0_MAX_MM: float = 2.0
LIFETIME_Z0_MAX_MM: float = 10.0


class EventQuantities:
    """Per-event and per-hemisphere quantities on top of ``TrackQuantities`` (lazy, float64)."""

    def __init__(self, tracks: TrackQuantities) -> None:
        self.q = tracks
        self.n_events = tracks.n_events

    def per_event(self, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Sum of per-track ``values`` (where ``mask``) over each event, ``[n]``."""
        idx = self.q.event_index
        if mask is not None:
            idx, values = idx[mask], values[mask]
        return np.bincount(idx, weights=values, minlength=self.n_events)

    def per_hemisphere(self, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Sum of per-track ``values`` (where ``mask``) over each hemisphere, ``[n, 2]`` (+, -)."""
        idx = self.q.hemisphere_index
        if mask is not None:
            idx, values = idx[mask], values[mask]
        return np.bincount(idx, weights=values, minlength=2 * self.n_events).reshape(-1, 2)

    @cached_property
    def lifetime(self) -> np.ndarray:
        """Per-track mask of lifetime tracks: |d0| < LIFETIME_D0_MAX_MM and |z0| < LIFETIME_Z0_MAX_MM."""
        q = self.q
        return (np.abs(q.d0) < LIFETIME_D0_MAX_MM) & (np.abs(q.z0) < LIFETIME_Z0_MAX_MM)

    @cached_property
    def far(self) -> np.ndarray:
        """Per-track mask of the tracks failing the lifetime selection."""
        return ~self.lifetime

    def lifetime_only(self, values: np.ndarray) -> np.ndarray:
        """``values`` for lifetime tracks, -inf for the others (so they pass no threshold)."""
        return np.where(self.lifetime, values, -np.inf)

    @cached_property
    def d0_sig(self) -> np.ndarray:
        """Lifetime-signed d0 significance of lifetime tracks, -inf for the others."""
        return self.lifetime_only(self.q.signed_d0_sig)

    @cached_property
    def z0_sig(self) -> np.ndarray:
        """Lifetime-signed z0 significance of lifetime tracks, -inf for the others."""
        return self.lifetime_only(self.q.signed_z0_sig)

    @cached_property
    def ip3d_sig(self) -> np.ndarray:
        """Signed 3D significance of lifetime tracks, -inf for the others."""
        return self.lifetime_only(self.q.signed_ip3d_sig)

    @cached_property
    def leading_sig(self) -> np.ndarray:
        """``[n, 2, N_LEADING]`` signed d0 significances sorted descending per hemisphere (-inf: none)."""
        q = self.q
        sig = self.d0_sig
        order = argsort_within_events(sig, q.offsets, descending=True)
        minus = (q.hemisphere[order] < 0).astype(np.int64)
        # rank of each sorted track among the tracks of its own hemisphere
        rank = np.empty(len(order), dtype=np.int64)
        for flag in (0, 1):
            running = np.concatenate([[0], np.cumsum(minus == flag)])
            first = running[q.offsets[:-1]][q.event_index]
            rank = np.where(minus == flag, running[1:] - first - 1, rank)
        hemi_sorted = 2 * q.event_index + minus
        keep = rank < N_LEADING
        out = np.full((2 * self.n_events, N_LEADING), -np.inf)
        out[hemi_sorted[keep], rank[keep]] = sig[order][keep]
        return out.reshape(self.n_events, 2, N_LEADING)

    @cached_property
    def hemisphere_energy(self) -> np.ndarray:
        """Sum of pion-hypothesis energies per hemisphere, ``[n, 2]`` (GeV)."""
        return self.per_hemisphere(self.q.energy_pion)

    @cached_property
    def swap(self) -> np.ndarray:
        """True where the - hemisphere is the more b-like one (it becomes hem1)."""
        lead = self.leading_sig
        keys = [lead[:, :, k] for k in range(N_LEADING)] + [self.hemisphere_energy]
        swap = np.zeros(self.n_events, dtype=bool)
        undecided = np.ones(self.n_events, dtype=bool)
        for key in keys:
            plus, minus = key[:, 0], key[:, 1]
            swap |= undecided & (minus > plus)
            undecided &= minus == plus
        return swap

    def ordered(self, per_hemi: np.ndarray) -> np.ndarray:
        """Reorder ``[n, 2, ...]`` per-hemisphere values as (hem1, hem2)."""
        flipped = per_hemi[:, ::-1]
        mask = self.swap.reshape((-1,) + (1,) * (per_hemi.ndim - 1))
        return np.where(mask, flipped, per_hemi)

    @cached_property
    def leading_sig_ordered(self) -> np.ndarray:
        """``leading_sig`` in (hem1, hem2) order, missing entries set to MISSING_SIGNIFICANCE."""
        lead = self.ordered(self.leading_sig)
        return np.where(np.isfinite(lead), lead, MISSING_SIGNIFICANCE)

    @cached_property
    def displaced(self) -> np.ndarray:
        """Per-track mask: lifetime track with signed d0 significance > DISPLACED_SIG_MIN."""
        return self.d0_sig > DISPLACED_SIG_MIN

    @cached_property
    def displaced_sums(self) -> np.ndarray:
        """``[n, 2, 4]`` summed (E_pi, px, py, pz) of the displaced tracks per hemisphere."""
        q, m = self.q, self.displaced
        cols = [q.energy_pion, q.field("px"), q.field("py"), q.field("pz")]
        return np.stack([self.per_hemisphere(c, m) for c in cols], axis=2)

    @cached_property
    def displaced_mass(self) -> np.ndarray:
        """``[n, 2]`` invariant mass of the displaced tracks (pion mass), GeV; 0 if none."""
        s = self.displaced_sums
        m2 = s[:, :, 0] ** 2 - np.sum(s[:, :, 1:] ** 2, axis=2)
        return np.sqrt(np.maximum(m2, 0.0))

    @cached_property
    def displaced_ptrel(self) -> np.ndarray:
        """``[n, 2]`` momentum of the displaced tracks transverse to the event axis, GeV."""
        p = self.displaced_sums[:, :, 1:]
        axis = self.q.axis[:, None, :]
        return np.linalg.norm(np.cross(p, np.broadcast_to(axis, p.shape)), axis=2)

    @cached_property
    def displaced_mass_corr(self) -> np.ndarray:
        """``[n, 2]`` pT-corrected mass sqrt(M^2 + pT^2) + pT of the displaced tracks, GeV."""
        m, pt = self.displaced_mass, self.displaced_ptrel
        return np.sqrt(m**2 + pt**2) + pt

    @cached_property
    def displaced_e_frac(self) -> np.ndarray:
        """``[n, 2]`` energy of the displaced tracks / energy of the hemisphere; 0 if empty."""
        total = self.hemisphere_energy
        return np.where(total > 0, self.displaced_sums[:, :, 0] / np.where(total > 0, total, 1.0), 0.0)

    def _jprob(self, sig: np.ndarray, per: str) -> np.ndarray:
        positive = sig > 0.0
        log_r = log_prompt_probability(sig[positive])
        if per == "hemisphere":
            idx = self.q.hemisphere_index[positive]
            return log10_joint_probability(log_r, idx, 2 * self.n_events).reshape(-1, 2)
        return log10_joint_probability(log_r, self.q.event_index[positive], self.n_events)

    @cached_property
    def log10_jprob_d0_hemi(self) -> np.ndarray:
        """``[n, 2]`` log10 joint prompt probability from positive signed d0 significances."""
        return self._jprob(self.d0_sig, "hemisphere")

    @cached_property
    def log10_jprob_z0_hemi(self) -> np.ndarray:
        """``[n, 2]`` log10 joint prompt probability from positive signed z0 significances."""
        return self._jprob(self.z0_sig, "hemisphere")

    @cached_property
    def thrust(self) -> np.ndarray:
        """sum |p . axis| / sum |p| per event; 0 for an event without tracks."""
        num = self.per_event(self.q.p_parallel)
        den = self.per_event(self.q.p)
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


_EVENT_REGISTRY: dict[str, tuple[FeatureSpec, Callable[[EventQuantities], np.ndarray]]] = {}


def _register(name: str, group: str, unit: str, definition: str,
              fn: Callable[[EventQuantities], np.ndarray]) -> None:
    _EVENT_REGISTRY[name] = (FeatureSpec(name, group, unit, definition), fn)


def _count_above(threshold: float, attr: str) -> Callable[[EventQuantities], np.ndarray]:
    return lambda e: e.per_event(np.ones(e.q.n_tracks_total), getattr(e, attr) > threshold)


def _hem(values: Callable[[EventQuantities], np.ndarray], h: int) -> Callable[[EventQuantities], np.ndarray]:
    return lambda e: e.ordered(values(e))[:, h]


_register("n_tracks", "multiplicity", "count", "number of tracks",
          lambda e: e.q.counts.astype(np.float64))
for _t in (2, 3, 5):
    _register(f"n_tracks_d0sig_gt{_t}", "multiplicity", "count",
              f"number of lifetime tracks with signed d0 significance > {_t}",
              _count_above(float(_t), "d0_sig"))
_register("n_tracks_ip3dsig_gt3", "multiplicity", "count",
          "number of lifetime tracks with signed 3D significance > 3",
          _count_above(3.0, "ip3d_sig"))
_register("n_tracks_far", "multiplicity", "count",
          "number of tracks failing the lifetime selection (|d0| >= 2 mm or |z0| >= 10 mm; V0-like)",
          lambda e: e.per_event(np.ones(e.q.n_tracks_total), e.far))
_register("thrust", "event_shape", "1", "sum |p.axis| / sum |p| over all tracks (0 if none)",
          lambda e: e.thrust)
_register("e_visible_gev", "event_shape", "GeV", "sum of track energies E",
          lambda e: e.per_event(e.q.field("E")))

for _h in (0, 1):
    _p = f"hem{_h + 1}"
    _register(f"{_p}_n_tracks", "multiplicity", "count", "number of tracks in the hemisphere",
              _hem(lambda e: e.per_hemisphere(np.ones(e.q.n_tracks_total)), _h))
    for _k in range(N_LEADING):
        _register(f"{_p}_d0sig{_k + 1}", "leading_significances", "1",
                  f"{_k + 1}. largest signed d0 significance of the hemisphere's lifetime tracks (-5 if none)",
                  (lambda k, h: lambda e: e.leading_sig_ordered[:, h, k])(_k, _h))
        _register(f"{_p}_d0sig{_k + 1}_log", "leading_significances", "1",
                  f"sign * ln(1 + |{_p}_d0sig{_k + 1}|)",
                  (lambda k, h: lambda e: compressed(e.leading_sig_ordered[:, h, k]))(_k, _h))
    _register(f"{_p}_n_displaced", "displaced_tracks", "count",
              "number of displaced tracks (lifetime tracks with signed d0 significance > 3)",
              _hem(lambda e: e.per_hemisphere(np.ones(e.q.n_tracks_total), e.displaced), _h))
    _register(f"{_p}_displaced_mass_gev", "displaced_tracks", "GeV",
              "invariant mass of the displaced tracks, pion mass (0 if none)",
              _hem(lambda e: e.displaced_mass, _h))
    _register(f"{_p}_displaced_mass_corr_gev", "displaced_tracks", "GeV",
              "sqrt(M^2 + pT^2) + pT of the displaced tracks, pT to the axis (0 if none)",
              _hem(lambda e: e.displaced_mass_corr, _h))
    _register(f"{_p}_displaced_e_frac", "displaced_tracks", "1",
              "energy of the displaced tracks / hemisphere energy (pion mass; 0 if empty)",
              _hem(lambda e: e.displaced_e_frac, _h))
    _register(f"{_p}_log10_jprob_d0", "joint_probability", "log10",
              "log10 joint prompt probability of the lifetime tracks with signed d0 sig > 0 (0 if none)",
              _hem(lambda e: e.log10_jprob_d0_hemi, _h))
    _register(f"{_p}_log10_jprob_z0", "joint_probability", "log10",
              "log10 joint prompt probability of the lifetime tracks with signed z0 sig > 0 (0 if none)",
              _hem(lambda e: e.log10_jprob_z0_hemi, _h))

_register("max_displaced_mass_gev", "displaced_tracks", "GeV",
          "max over hemispheres of the displaced-track mass", lambda e: e.displaced_mass.max(axis=1))
_register("max_displaced_mass_corr_gev", "displaced_tracks", "GeV",
          "max over hemispheres of the corrected displaced-track mass",
          lambda e: e.displaced_mass_corr.max(axis=1))
_register("min_log10_jprob_d0", "joint_probability", "log10",
          "min over hemispheres of log10 jprob (d0)", lambda e: e.log10_jprob_d0_hemi.min(axis=1))
_register("log10_jprob_d0", "joint_probability", "log10",
          "log10 joint prompt probability of all lifetime tracks of the event with signed d0 sig > 0",
          lambda e: e._jprob(e.d0_sig, "event"))

_register("event_log_d0_resolution_scale", "event_resolution", "ln 1",
          "ln of the event's d0 resolution scale (calibrated or augmented; 0 when nominal)",
          lambda e: np.log(e.q.event_scale(D0_SCALE_FIELD)))

#: Every per-event feature that can be asked for, with its group, unit and definition.
EVENT_FEATURE_SPECS: dict[str, FeatureSpec] = {k: v[0] for k, v in _EVENT_REGISTRY.items()}

#: Default per-event inputs of the baseline (significances log-compressed).
EVENT_FEATURES: tuple[str, ...] = (
    "n_tracks", "n_tracks_d0sig_gt2", "n_tracks_d0sig_gt3", "n_tracks_d0sig_gt5", "n_tracks_far",
    "thrust", "e_visible_gev",
    "hem1_d0sig1_log", "hem1_d0sig2_log", "hem1_d0sig3_log",
    "hem2_d0sig1_log", "hem2_d0sig2_log", "hem2_d0sig3_log",
    "hem1_n_displaced", "hem2_n_displaced",
    "hem1_displaced_mass_gev", "hem2_displaced_mass_gev",
    "hem1_displaced_mass_corr_gev", "hem2_displaced_mass_corr_gev",
    "hem1_displaced_e_frac", "hem2_displaced_e_frac",
    "hem1_log10_jprob_d0", "hem2_log10_jprob_d0",
    "hem1_log10_jprob_z0", "hem2_log10_jprob_z0",
    "max_displaced_mass_gev", "log10_jprob_d0",
)


def check_event_feature_names(names: Sequence[str]) -> tuple[str, ...]:
    """Return ``names`` as a tuple; ``ValueError`` listing the known names if any is unknown."""
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    unknown = [n for n in names if n not in _EVENT_REGISTRY]
    if unknown:
        raise ValueError(f"unknown event features {unknown}; known: {sorted(_EVENT_REGISTRY)}")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate event feature names in {list(names)}")
    return names


def event_feature_matrix(q: TrackQuantities, names: Sequence[str]) -> np.ndarray:
    """``[n_events, len(names)]`` float32 matrix of the named event features."""
    names = check_event_feature_names(names)
    e = EventQuantities(q)
    out = np.empty((q.n_events, len(names)), dtype=np.float32)
    for j, name in enumerate(names):
        out[:, j] = _EVENT_REGISTRY[name][1](e)
    return out


def event_features(
    events: ak.Array, detector: DetectorModel | None = None, names: Sequence[str] = EVENT_FEATURES
) -> np.ndarray:
    """Per-event features of ``events`` as float32 ``[n_events, len(names)]`` (never NaN/inf).

    ``detector`` (default ``DetectorModel()``) gives the resolutions for the
    significances. Unknown names raise ``ValueError`` listing the known ones.
    """
    names = check_event_feature_names(names)
    return event_feature_matrix(TrackQuantities(events, detector), names)
