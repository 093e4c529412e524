"""Per-event hand-crafted features in the spirit of LCFIPlus (for the MLP baseline).

Built on :class:`~flavortag.features.padded.PaddedTracks` (numpy or torch, one implementation
for training and the raw-input ONNX graph): multiplicities of displaced tracks, the leading
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

import math
from collections.abc import Callable, Sequence
from functools import cached_property

import awkward as ak
import numpy as np

from flavortag.array_ops import Array
from flavortag.detector import DetectorModel
from flavortag.features import particle_flow as pf
from flavortag.features.padded import PaddedTracks, compressed
from flavortag.features.probability import log10_joint_probability_padded, log_prompt_probability
from flavortag.features.track import FeatureSpec, TrackQuantities

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
    """Per-event ``[B]`` and per-hemisphere ``[B, 2]`` quantities of :class:`PaddedTracks` (lazy, float64).

    numpy or torch, like the tracks: the one implementation behind
    :func:`event_feature_matrix` and the raw-input ONNX graph of the MLP.
    Hemisphere pairs are ordered (+, -) until :meth:`ordered` puts them as (hem1, hem2).
    """

    def __init__(self, tracks: PaddedTracks) -> None:
        self.q = tracks
        self.ops = tracks.ops

    def per_event(self, values: Array, mask: Array | None = None) -> Array:
        """Sum of per-track ``values`` over each event's real tracks (and ``mask``), ``[B]``."""
        take = self.q.valid if mask is None else self.q.valid & mask
        return self.ops.sum(self.ops.where(take, values, 0.0), 1)

    def count(self, mask: Array | None = None) -> Array:
        """Number of real tracks (where ``mask``) of each event, float64 ``[B]``."""
        take = self.q.valid if mask is None else self.q.valid & mask
        return self.ops.sum(self.ops.float64(take), 1)

    def per_hemisphere(self, values: Array, mask: Array | None = None) -> Array:
        """Sum of per-track ``values`` (where ``mask``) over each hemisphere, ``[B, 2]`` (+, -)."""
        return self.q.hemisphere_sums(values, mask)

    def count_hemisphere(self, mask: Array | None = None) -> Array:
        """Number of real tracks (where ``mask``) in each hemisphere, ``[B, 2]`` (+, -)."""
        return self.q.hemisphere_sums(self.ops.full_like(self.q.p, 1.0), mask)

    @cached_property
    def lifetime(self) -> Array:
        """Real lifetime tracks: |d0| < LIFETIME_D0_MAX_MM and |z0| < LIFETIME_Z0_MAX_MM."""
        q = self.q
        return q.valid & (self.ops.abs(q.d0) < LIFETIME_D0_MAX_MM) & (self.ops.abs(q.z0) < LIFETIME_Z0_MAX_MM)

    @cached_property
    def far(self) -> Array:
        """Real tracks failing the lifetime selection."""
        return self.q.valid & ~self.lifetime

    def lifetime_only(self, values: Array) -> Array:
        """``values`` for lifetime tracks, -inf for the others (so they pass no threshold)."""
        return self.ops.where(self.lifetime, values, -math.inf)

    @cached_property
    def d0_sig(self) -> Array:
        """Lifetime-signed d0 significance of lifetime tracks, -inf for the others."""
        return self.lifetime_only(self.q.signed_d0_sig)

    @cached_property
    def z0_sig(self) -> Array:
        """Lifetime-signed z0 significance of lifetime tracks, -inf for the others."""
        return self.lifetime_only(self.q.signed_z0_sig)

    @cached_property
    def ip3d_sig(self) -> Array:
        """Signed 3D significance of lifetime tracks, -inf for the others."""
        return self.lifetime_only(self.q.signed_ip3d_sig)

    @cached_property
    def leading_sig(self) -> Array:
        """``[B, 2, N_LEADING]`` signed d0 significances sorted descending per hemisphere (-inf: none)."""
        ops, q = self.ops, self.q
        # N_LEADING slots of -inf after the tracks: a hemisphere with fewer tracks reads -inf
        missing = [ops.full_like(self.d0_sig[:, :1], -math.inf)] * N_LEADING
        lead = [ops.top_k(ops.concat([ops.where(side, self.d0_sig, -math.inf), *missing], 1), N_LEADING)
                for side in (q.plus, q.minus)]
        return ops.stack(lead, 1)

    @cached_property
    def hemisphere_energy(self) -> Array:
        """Sum of pion-hypothesis energies per hemisphere, ``[B, 2]`` (GeV)."""
        return self.per_hemisphere(self.q.energy_pion)

    @cached_property
    def swap(self) -> Array:
        """True where the - hemisphere is the more b-like one (it becomes hem1)."""
        lead = self.leading_sig
        keys = [lead[:, :, k] for k in range(N_LEADING)] + [self.hemisphere_energy]
        swap = self.hemisphere_energy[:, 0] < -1.0  # all False (energies >= 0), in the keys' namespace
        undecided = ~swap
        for key in keys:
            plus, minus = key[:, 0], key[:, 1]
            swap = swap | (undecided & (minus > plus))
            undecided = undecided & (minus == plus)
        return swap

    def ordered(self, per_hemi: Array) -> Array:
        """Reorder ``[B, 2, ...]`` per-hemisphere values as (hem1, hem2)."""
        flipped = self.ops.stack([per_hemi[:, 1], per_hemi[:, 0]], 1)
        mask = self.swap.reshape((-1,) + (1,) * (per_hemi.ndim - 1))
        return self.ops.where(mask, flipped, per_hemi)

    @cached_property
    def leading_sig_ordered(self) -> Array:
        """``leading_sig`` in (hem1, hem2) order, missing entries set to MISSING_SIGNIFICANCE."""
        lead = self.ordered(self.leading_sig)
        return self.ops.where(lead > -math.inf, lead, MISSING_SIGNIFICANCE)

    @cached_property
    def displaced(self) -> Array:
        """Per-track mask: lifetime track with signed d0 significance > DISPLACED_SIG_MIN."""
        return self.d0_sig > DISPLACED_SIG_MIN

    @cached_property
    def displaced_sums(self) -> Array:
        """``[B, 2, 4]`` summed (E_pi, px, py, pz) of the displaced tracks per hemisphere."""
        q, m = self.q, self.displaced
        cols = [q.energy_pion, q.field("px"), q.field("py"), q.field("pz")]
        return self.ops.stack([self.per_hemisphere(c, m) for c in cols], 2)

    @cached_property
    def displaced_mass(self) -> Array:
        """``[B, 2]`` invariant mass of the displaced tracks (pion mass), GeV; 0 if none."""
        s = self.displaced_sums
        m2 = s[:, :, 0] * s[:, :, 0] - (s[:, :, 1] * s[:, :, 1] + s[:, :, 2] * s[:, :, 2] + s[:, :, 3] * s[:, :, 3])
        return self.ops.sqrt(self.ops.clip_min(m2, 0.0))

    @cached_property
    def displaced_ptrel(self) -> Array:
        """``[B, 2]`` momentum of the displaced tracks transverse to the event axis, GeV."""
        s = self.displaced_sums
        px, py, pz = s[:, :, 1], s[:, :, 2], s[:, :, 3]
        ax, ay, az = self.q.axis_components
        cx, cy, cz = py * az - pz * ay, pz * ax - px * az, px * ay - py * ax
        return self.ops.sqrt(cx * cx + cy * cy + cz * cz)

    @cached_property
    def displaced_mass_corr(self) -> Array:
        """``[B, 2]`` pT-corrected mass sqrt(M^2 + pT^2) + pT of the displaced tracks, GeV."""
        m, pt = self.displaced_mass, self.displaced_ptrel
        return self.ops.sqrt(m * m + pt * pt) + pt

    @cached_property
    def displaced_e_frac(self) -> Array:
        """``[B, 2]`` energy of the displaced tracks / energy of the hemisphere; 0 if empty."""
        total = self.hemisphere_energy
        return self.ops.where(total > 0.0, self.displaced_sums[:, :, 0] / self.ops.where(total > 0.0, total, 1.0), 0.0)

    def _jprob(self, sig: Array, per: str) -> Array:
        positive = sig > 0.0
        log_r = log_prompt_probability(self.ops.where(positive, sig, 0.0))
        if per == "hemisphere":
            q = self.q
            return self.ops.stack([log10_joint_probability_padded(log_r, positive & side)
                                   for side in (q.plus, q.minus)], 1)
        return log10_joint_probability_padded(log_r, positive)

    @cached_property
    def log10_jprob_d0_hemi(self) -> Array:
        """``[B, 2]`` log10 joint prompt probability from positive signed d0 significances."""
        return self._jprob(self.d0_sig, "hemisphere")

    @cached_property
    def log10_jprob_z0_hemi(self) -> Array:
        """``[B, 2]`` log10 joint prompt probability from positive signed z0 significances."""
        return self._jprob(self.z0_sig, "hemisphere")

    @cached_property
    def thrust(self) -> Array:
        """sum |p . axis| / sum |p| per event; 0 for an event without tracks."""
        num = self.per_event(self.q.p_parallel)
        den = self.per_event(self.q.p)
        return self.ops.where(den > 0.0, num / self.ops.where(den > 0.0, den, 1.0), 0.0)


_EVENT_REGISTRY: dict[str, tuple[FeatureSpec, Callable[[EventQuantities], Array]]] = {}


def _register(name: str, group: str, unit: str, definition: str,
              fn: Callable[[EventQuantities], Array]) -> None:
    _EVENT_REGISTRY[name] = (FeatureSpec(name, group, unit, definition), fn)


def _count_above(threshold: float, attr: str) -> Callable[[EventQuantities], Array]:
    return lambda e: e.count(getattr(e, attr) > threshold)


def _hem(values: Callable[[EventQuantities], Array], h: int) -> Callable[[EventQuantities], Array]:
    return lambda e: e.ordered(values(e))[:, h]


_register("n_tracks", "multiplicity", "count", "number of tracks",
          lambda e: e.count())
for _t in (2, 3, 5):
    _register(f"n_tracks_d0sig_gt{_t}", "multiplicity", "count",
              f"number of lifetime tracks with signed d0 significance > {_t}",
              _count_above(float(_t), "d0_sig"))
_register("n_tracks_ip3dsig_gt3", "multiplicity", "count",
          "number of lifetime tracks with signed 3D significance > 3",
          _count_above(3.0, "ip3d_sig"))
_register("n_tracks_far", "multiplicity", "count",
          "number of tracks failing the lifetime selection (|d0| >= 2 mm or |z0| >= 10 mm; V0-like)",
          lambda e: e.count(e.far))
_register("thrust", "event_shape", "1", "sum |p.axis| / sum |p| over all tracks (0 if none)",
          lambda e: e.thrust)
_register("e_visible_gev", "event_shape", "GeV", "sum of track energies E",
          lambda e: e.per_event(e.q.field("E")))

for _h in (0, 1):
    _p = f"hem{_h + 1}"
    _register(f"{_p}_n_tracks", "multiplicity", "count", "number of tracks in the hemisphere",
              _hem(lambda e: e.count_hemisphere(), _h))
    for _k in range(N_LEADING):
        _register(f"{_p}_d0sig{_k + 1}", "leading_significances", "1",
                  f"{_k + 1}. largest signed d0 significance of the hemisphere's lifetime tracks (-5 if none)",
                  (lambda k, h: lambda e: e.leading_sig_ordered[:, h, k])(_k, _h))
        _register(f"{_p}_d0sig{_k + 1}_log", "leading_significances", "1",
                  f"sign * ln(1 + |{_p}_d0sig{_k + 1}|)",
                  (lambda k, h: lambda e: compressed(e.leading_sig_ordered[:, h, k]))(_k, _h))
    _register(f"{_p}_n_displaced", "displaced_tracks", "count",
              "number of displaced tracks (lifetime tracks with signed d0 significance > 3)",
              _hem(lambda e: e.count_hemisphere(e.displaced), _h))
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
          "max over hemispheres of the displaced-track mass", lambda e: e.ops.max(e.displaced_mass, 1))
_register("max_displaced_mass_corr_gev", "displaced_tracks", "GeV",
          "max over hemispheres of the corrected displaced-track mass",
          lambda e: e.ops.max(e.displaced_mass_corr, 1))
_register("min_log10_jprob_d0", "joint_probability", "log10",
          "min over hemispheres of log10 jprob (d0)", lambda e: e.ops.min(e.log10_jprob_d0_hemi, 1))
_register("log10_jprob_d0", "joint_probability", "log10",
          "log10 joint prompt probability of all lifetime tracks of the event with signed d0 sig > 0",
          lambda e: e._jprob(e.d0_sig, "event"))

_register("event_log_d0_resolution_scale", "event_resolution", "ln 1",
          "ln of the event's d0 resolution scale (calibrated or augmented; 0 when nominal)",
          lambda e: e.ops.log(e.q.d0_resolution_scale[:, 0]))

# PID (issue 25; kaon candidates: flavortag.features.particle_flow.kaon_mask), as an LCFIPlus-era tagger
_register("n_kaons", "pid_event", "count", "number of kaon-identified tracks", lambda e: e.count(pf.kaon_mask(e.q)))
_register("n_displaced_kaons", "pid_event", "count",
          "kaon-identified lifetime tracks with signed d0 sig > 3", lambda e: e.count(pf.kaon_mask(e.q) & e.displaced))
_register("displaced_kaon_charge", "pid_event", "e", "|sum of the charges of the displaced kaons|",
          lambda e: e.ops.abs(e.per_event(e.ops.where(e.q.particle_field("charge") == e.q.particle_field("charge"),
                                                      e.q.particle_field("charge"), 0.0),
                                          pf.kaon_mask(e.q) & e.displaced)))
_register("leading_kaon_e_frac", "pid_event", "1", "largest E of a kaon-identified track / sum of track E (0: none)",
          lambda e: e.ops.max(e.ops.where(pf.kaon_mask(e.q), e.q.field("E"), 0.0), 1)
          / e.ops.clip_min(e.per_event(e.q.field("E")), 1e-9))
#: Event features that read the particle-flow fields.
PID_EVENT_FEATURES: tuple[str, ...] = ("n_kaons", "n_displaced_kaons", "displaced_kaon_charge", "leading_kaon_e_frac")

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


def padded_event_features(q: PaddedTracks, names: Sequence[str]) -> Array:
    """``[B, len(names)]`` float64 event features of padded tracks (numpy or torch; the one
    implementation behind :func:`event_feature_matrix` and the raw-input ONNX graph)."""
    names = check_event_feature_names(names)
    e = EventQuantities(q)
    return e.ops.stack([e.ops.float64(_EVENT_REGISTRY[n][1](e)) for n in names], 1)


def event_feature_matrix(q: TrackQuantities, names: Sequence[str]) -> np.ndarray:
    """``[n_events, len(names)]`` float32 matrix of the named event features (chunk by chunk)."""
    names = check_event_feature_names(names)
    out = np.empty((q.n_events, len(names)), dtype=np.float32)
    for chunk, (rows, _) in zip(q.chunks, q.chunk_rows):
        e = EventQuantities(chunk)
        for j, name in enumerate(names):
            out[rows, j] = _EVENT_REGISTRY[name][1](e)
    return out


def event_features(
    events: ak.Array, detector: DetectorModel | None = None, names: Sequence[str] = EVENT_FEATURES
) -> np.ndarray:
    """Per-event features of ``events`` as float32 ``[n_events, len(names)]`` (never NaN/inf).

    ``detector`` (default ``DetectorModel()``) gives the resolutions for the
    significances. Unknown names raise ``ValueError`` listing the known ones.
    """
    names = check_event_feature_names(names)
    with_particle = any(n in PID_EVENT_FEATURES for n in names)
    return event_feature_matrix(TrackQuantities(events, detector, with_particle=with_particle), names)
