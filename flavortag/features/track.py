"""Per-track quantities relative to the event axis, and the per-track feature registry.

``TrackQuantities`` holds every track of an event array as flat float64 numpy
arrays (all events concatenated, ``offsets`` marking the events) and computes
derived quantities lazily, each at most once: selecting a few features computes
only what those need. ``track_features`` turns a list of names into an awkward
array with the jagged structure of ``events.tracks``.

Conventions (see docs/FEATURES.md for the table of features):

* hemisphere ``h = +1`` if ``p . axis >= 0`` else ``-1``; the *oriented axis*
  of a track is ``h * axis`` (the axis pointing into the track's hemisphere);
* ``d0 = (x py - y px) / pT``, ``z0 = z - (x px + y py) pz / pT^2`` (mm; straight
  line from the track's reference point to the beam line, docs/FORMAT.md);
* lifetime sign of d0: sign of ``PCA_xy . oriented_axis_xy`` where
  ``PCA_xy = d0 (py, -px) / pT`` is the point of closest approach in xy;
  of z0: sign of ``z0 * oriented_axis_z`` (LCFIPlus / ATLAS convention; a zero
  dot product counts as +);
* significances divide by the detector's (unscaled) resolution functions
  ``DetectorModel.sigma_d0_mm(p, sin theta)`` and ``sigma_z0_mm``, times the
  event's resolution scale where the event array carries one: the optional
  per-event fields ``d0_resolution_scale`` / ``z0_resolution_scale`` (set by a
  resolution calibration, ``flavortag.calibration``, or by the training
  augmentation, ``flavortag.augment``; absent = 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import awkward as ak
import numpy as np

from flavortag.detector import PION_MASS_GEV, DetectorModel
from flavortag.ragged import event_index, offsets_from_counts

_TINY = 1e-12


#: Optional per-event fields that scale the resolutions used for the significances.
D0_SCALE_FIELD: str = "d0_resolution_scale"
Z0_SCALE_FIELD: str = "z0_resolution_scale"


@dataclass(frozen=True)
class FeatureSpec:
    """One named feature: its group (for ablations), unit and definition."""

    name: str
    group: str
    unit: str
    definition: str


def _event_axis(events: ak.Array) -> np.ndarray:
    """The event axes as a float64 ``[n, 3]`` array of unit vectors (a zero axis becomes +z)."""
    axis = events["axis"]
    try:
        arr = ak.to_numpy(axis)
    except (ValueError, TypeError):
        arr = ak.to_numpy(ak.to_regular(axis, axis=1))
    arr = np.asarray(arr, dtype=np.float64).reshape(len(events), 3)
    norm = np.linalg.norm(arr, axis=1, keepdims=True)
    unit = np.where(norm > 0, arr / np.where(norm > 0, norm, 1.0), np.array([0.0, 0.0, 1.0]))
    return unit


def compressed(value: np.ndarray) -> np.ndarray:
    """``sign(v) * ln(1 + |v|)``: keeps the sign, tames the tails of significances."""
    return np.sign(value) * np.log1p(np.abs(value))


class TrackQuantities:
    """Flat per-track quantities of an event array, computed lazily in float64.

    Attributes that are arrays over tracks have length ``n_tracks_total``;
    ``event_index`` gives each track's event, ``hemisphere_index`` its
    hemisphere (``2 * event + (0 if h = +1 else 1)``).
    """

    def __init__(self, events: ak.Array, detector: DetectorModel | None = None) -> None:
        self.events = events
        self.detector = detector if detector is not None else DetectorModel()
        self.tracks = events["tracks"]
        self.counts = np.asarray(ak.to_numpy(ak.num(self.tracks, axis=1)), dtype=np.int64)
        self.n_events = len(self.counts)
        self.offsets = offsets_from_counts(self.counts)
        self._fields: dict[str, np.ndarray] = {}

    def field(self, name: str) -> np.ndarray:
        """A raw per-track field (``E``, ``px``, ..., or an extra such as ``charge``), flat, float64."""
        if name not in self._fields:
            if name not in self.tracks.fields:
                raise KeyError(f"tracks have no field {name!r}; fields: {self.tracks.fields}")
            flat = ak.flatten(self.tracks[name], axis=1)
            self._fields[name] = np.asarray(ak.to_numpy(flat), dtype=np.float64)
        return self._fields[name]

    @property
    def n_tracks_total(self) -> int:
        """Number of tracks in all events."""
        return int(self.offsets[-1])

    # ---- raw kinematics -------------------------------------------------------------------
    @cached_property
    def event_index(self) -> np.ndarray:
        """Event of each track."""
        return event_index(self.counts)

    @cached_property
    def axis(self) -> np.ndarray:
        """Unit event axis of each event, ``[n_events, 3]``."""
        return _event_axis(self.events)

    @cached_property
    def momentum(self) -> np.ndarray:
        """``[T, 3]`` momentum (GeV)."""
        return np.stack([self.field("px"), self.field("py"), self.field("pz")], axis=1)

    @cached_property
    def p(self) -> np.ndarray:
        """|p| in GeV."""
        return np.linalg.norm(self.momentum, axis=1)

    @cached_property
    def pt(self) -> np.ndarray:
        """Transverse momentum to the beam in GeV."""
        return np.hypot(self.field("px"), self.field("py"))

    @cached_property
    def sin_theta(self) -> np.ndarray:
        """sin of the polar angle."""
        return self.pt / np.maximum(self.p, _TINY)

    @cached_property
    def cos_theta(self) -> np.ndarray:
        """cos of the polar angle."""
        return self.field("pz") / np.maximum(self.p, _TINY)

    @cached_property
    def energy_pion(self) -> np.ndarray:
        """Energy with the pion mass hypothesis, sqrt(p^2 + m_pi^2), GeV."""
        return np.sqrt(self.p**2 + PION_MASS_GEV**2)

    # ---- relative to the axis ------------------------------------------------------------
    @cached_property
    def track_axis(self) -> np.ndarray:
        """The event axis repeated for every track, ``[T, 3]``."""
        return self.axis[self.event_index]

    @cached_property
    def p_dot_axis(self) -> np.ndarray:
        """p . axis (GeV)."""
        return np.einsum("ij,ij->i", self.momentum, self.track_axis)

    @cached_property
    def hemisphere(self) -> np.ndarray:
        """+1 if p . axis >= 0 else -1 (float64)."""
        return np.where(self.p_dot_axis >= 0.0, 1.0, -1.0)

    @cached_property
    def hemisphere_index(self) -> np.ndarray:
        """``2 * event + (0 for the + hemisphere, 1 for the - one)``."""
        return 2 * self.event_index + (self.hemisphere < 0)

    @cached_property
    def oriented_axis(self) -> np.ndarray:
        """The axis pointing into the track's hemisphere, ``[T, 3]``."""
        return self.track_axis * self.hemisphere[:, None]

    @cached_property
    def p_parallel(self) -> np.ndarray:
        """|p . axis| (GeV), the momentum along the oriented axis."""
        return np.abs(self.p_dot_axis)

    @cached_property
    def ptrel(self) -> np.ndarray:
        """|p x axis| (GeV), momentum transverse to the axis."""
        return np.linalg.norm(np.cross(self.momentum, self.track_axis), axis=1)

    @cached_property
    def angle_axis(self) -> np.ndarray:
        """Angle between p and the oriented axis, in [0, pi/2] rad."""
        return np.arctan2(self.ptrel, self.p_parallel)

    @cached_property
    def dphi_axis(self) -> np.ndarray:
        """Azimuth of p minus azimuth of the oriented axis, wrapped to [-pi, pi)."""
        a = self.oriented_axis
        dphi = np.arctan2(self.field("py"), self.field("px")) - np.arctan2(a[:, 1], a[:, 0])
        return (dphi + math.pi) % (2.0 * math.pi) - math.pi

    @cached_property
    def dtheta_axis(self) -> np.ndarray:
        """Polar angle of p minus polar angle of the oriented axis (rad)."""
        a = self.oriented_axis
        theta_p = np.arctan2(self.pt, self.field("pz"))
        theta_a = np.arctan2(np.hypot(a[:, 0], a[:, 1]), a[:, 2])
        return theta_p - theta_a

    def hemisphere_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum of ``values`` over each hemisphere, ``[2 * n_events]``."""
        return np.bincount(self.hemisphere_index, weights=values, minlength=2 * self.n_events)

    @cached_property
    def e_frac_hemi(self) -> np.ndarray:
        """E / (sum of E over the track's hemisphere)."""
        e = self.field("E")
        total = self.hemisphere_sum(e)[self.hemisphere_index]
        return e / np.maximum(total, _TINY)

    @cached_property
    def p_frac_hemi(self) -> np.ndarray:
        """|p| / (sum of |p| over the track's hemisphere)."""
        total = self.hemisphere_sum(self.p)[self.hemisphere_index]
        return self.p / np.maximum(total, _TINY)

    # ---- impact parameters ---------------------------------------------------------------
    @cached_property
    def d0(self) -> np.ndarray:
        """Transverse impact parameter (mm), geometric sign ``(x py - y px) / pT``."""
        x, y = self.field("x"), self.field("y")
        px, py = self.field("px"), self.field("py")
        return (x * py - y * px) / np.maximum(self.pt, _TINY)

    @cached_property
    def z0(self) -> np.ndarray:
        """Longitudinal impact parameter (mm): z at the point of closest approach in xy."""
        x, y, z = self.field("x"), self.field("y"), self.field("z")
        px, py, pz = self.field("px"), self.field("py"), self.field("pz")
        return z - (x * px + y * py) * pz / np.maximum(self.pt**2, _TINY)

    @cached_property
    def d0_lifetime_sign(self) -> np.ndarray:
        """sign(PCA_xy . oriented_axis_xy), PCA_xy = d0 (py, -px) / pT; +1 on ties."""
        a = self.oriented_axis
        px, py = self.field("px"), self.field("py")
        dot = self.d0 * (py * a[:, 0] - px * a[:, 1])
        return np.where(dot >= 0.0, 1.0, -1.0)

    @cached_property
    def z0_lifetime_sign(self) -> np.ndarray:
        """sign(z0 * oriented_axis_z); +1 on ties."""
        return np.where(self.z0 * self.oriented_axis[:, 2] >= 0.0, 1.0, -1.0)

    def event_scale(self, name: str) -> np.ndarray:
        """Per-event value ``[n_events]`` of the optional field ``name`` (1 where the events have none)."""
        if name not in ak.fields(self.events):
            return np.ones(self.n_events)
        return np.asarray(ak.to_numpy(self.events[name]), dtype=np.float64).reshape(-1)

    def _event_scale(self, name: str) -> np.ndarray:
        """Per-track value of the optional per-event field ``name`` (1 where the events have none)."""
        return self.event_scale(name)[self.event_index]

    @cached_property
    def d0_resolution_scale(self) -> np.ndarray:
        """Scale of the d0 resolution of each track's event (``D0_SCALE_FIELD``, default 1)."""
        return self._event_scale(D0_SCALE_FIELD)

    @cached_property
    def z0_resolution_scale(self) -> np.ndarray:
        """Scale of the z0 resolution of each track's event (``Z0_SCALE_FIELD``, default 1)."""
        return self._event_scale(Z0_SCALE_FIELD)

    @cached_property
    def sigma_d0(self) -> np.ndarray:
        """d0 resolution (mm): the detector model's, times the event's resolution scale."""
        return self.detector.sigma_d0_mm(self.p, self.sin_theta) * self.d0_resolution_scale

    @cached_property
    def sigma_z0(self) -> np.ndarray:
        """z0 resolution (mm): the detector model's, times the event's resolution scale."""
        return self.detector.sigma_z0_mm(self.p, self.sin_theta) * self.z0_resolution_scale

    @cached_property
    def d0_sig(self) -> np.ndarray:
        """d0 / sigma_d0 (geometric sign)."""
        return self.d0 / self.sigma_d0

    @cached_property
    def z0_sig(self) -> np.ndarray:
        """z0 / sigma_z0 (geometric sign)."""
        return self.z0 / self.sigma_z0

    @cached_property
    def signed_d0(self) -> np.ndarray:
        """Lifetime-signed d0 (mm)."""
        return np.abs(self.d0) * self.d0_lifetime_sign

    @cached_property
    def signed_z0(self) -> np.ndarray:
        """Lifetime-signed z0 (mm)."""
        return np.abs(self.z0) * self.z0_lifetime_sign

    @cached_property
    def signed_d0_sig(self) -> np.ndarray:
        """Lifetime-signed d0 significance."""
        return np.abs(self.d0_sig) * self.d0_lifetime_sign

    @cached_property
    def signed_z0_sig(self) -> np.ndarray:
        """Lifetime-signed z0 significance."""
        return np.abs(self.z0_sig) * self.z0_lifetime_sign

    @cached_property
    def ip3d_sig(self) -> np.ndarray:
        """sqrt(S_d0^2 + S_z0^2), unsigned."""
        return np.hypot(self.d0_sig, self.z0_sig)

    @cached_property
    def signed_ip3d_sig(self) -> np.ndarray:
        """3D significance with the lifetime sign of d0."""
        return self.ip3d_sig * self.d0_lifetime_sign


def _log(values: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(values, _TINY))


def _log1p_um(signed_mm: np.ndarray) -> np.ndarray:
    return np.sign(signed_mm) * np.log1p(np.abs(signed_mm) * 1000.0)


_Q = TrackQuantities
_TRACK_REGISTRY: dict[str, tuple[FeatureSpec, Callable[[TrackQuantities], np.ndarray]]] = {}


def _register(name: str, group: str, unit: str, definition: str,
              fn: Callable[[TrackQuantities], np.ndarray]) -> None:
    _TRACK_REGISTRY[name] = (FeatureSpec(name, group, unit, definition), fn)


# kinematics
_register("log_e_gev", "kinematics", "ln GeV", "ln E", lambda q: _log(q.field("E")))
_register("log_p_gev", "kinematics", "ln GeV", "ln |p|", lambda q: _log(q.p))
_register("log_pt_gev", "kinematics", "ln GeV", "ln pT (transverse to the beam)", lambda q: _log(q.pt))
_register("cos_theta", "kinematics", "1", "pz / |p|", lambda q: q.cos_theta)
_register("log_e_frac_hemi", "kinematics", "ln 1",
          "ln(E / sum of E of the tracks in the same hemisphere)", lambda q: _log(q.e_frac_hemi))
_register("log_p_frac_hemi", "kinematics", "ln 1",
          "ln(|p| / sum of |p| of the tracks in the same hemisphere)", lambda q: _log(q.p_frac_hemi))
# relative to the axis
_register("angle_axis_rad", "axis_relative", "rad",
          "angle between p and the oriented axis, in [0, pi/2]", lambda q: q.angle_axis)
_register("hemisphere", "axis_relative", "1", "+1 if p.axis >= 0 else -1", lambda q: q.hemisphere)
_register("ptrel_gev", "axis_relative", "GeV", "|p x axis|, momentum transverse to the axis",
          lambda q: q.ptrel)
_register("log_ptrel_gev", "axis_relative", "ln GeV", "ln |p x axis|", lambda q: _log(q.ptrel))
_register("dphi_axis_rad", "axis_relative", "rad",
          "phi(p) - phi(oriented axis), wrapped to [-pi, pi)", lambda q: q.dphi_axis)
_register("dtheta_axis_rad", "axis_relative", "rad", "theta(p) - theta(oriented axis)",
          lambda q: q.dtheta_axis)
# impact parameters (lengths)
_register("d0_mm", "impact_parameters", "mm", "(x py - y px) / pT (geometric sign)", lambda q: q.d0)
_register("z0_mm", "impact_parameters", "mm", "z - (x px + y py) pz / pT^2", lambda q: q.z0)
_register("signed_d0_mm", "impact_parameters", "mm", "|d0| * lifetime sign of d0",
          lambda q: q.signed_d0)
_register("signed_z0_mm", "impact_parameters", "mm", "|z0| * lifetime sign of z0",
          lambda q: q.signed_z0)
_register("signed_d0_log1p_um", "impact_parameters", "ln(1+um)",
          "sign * ln(1 + |d0| / 1 um), lifetime sign", lambda q: _log1p_um(q.signed_d0))
_register("signed_z0_log1p_um", "impact_parameters", "ln(1+um)",
          "sign * ln(1 + |z0| / 1 um), lifetime sign", lambda q: _log1p_um(q.signed_z0))
_register("sigma_d0_mm", "impact_parameters", "mm",
          "DetectorModel.sigma_d0_mm(|p|, sin theta) * event's d0 resolution scale",
          lambda q: q.sigma_d0)
_register("sigma_z0_mm", "impact_parameters", "mm",
          "DetectorModel.sigma_z0_mm(|p|, sin theta) * event's z0 resolution scale",
          lambda q: q.sigma_z0)
# the resolution the significances were formed with (resolution-aware taggers)
_register("log_d0_resolution_scale", "resolution", "ln 1",
          "ln of the event's d0 resolution scale (calibrated or augmented; 0 when nominal)",
          lambda q: np.log(q.d0_resolution_scale))
_register("log_z0_resolution_scale", "resolution", "ln 1",
          "ln of the event's z0 resolution scale (calibrated or augmented; 0 when nominal)",
          lambda q: np.log(q.z0_resolution_scale))
# impact-parameter significances
_register("d0_sig", "ip_significances", "1", "d0 / sigma_d0 (geometric sign)", lambda q: q.d0_sig)
_register("z0_sig", "ip_significances", "1", "z0 / sigma_z0 (geometric sign)", lambda q: q.z0_sig)
_register("signed_d0_sig", "ip_significances", "1", "|d0| / sigma_d0 * lifetime sign of d0",
          lambda q: q.signed_d0_sig)
_register("signed_z0_sig", "ip_significances", "1", "|z0| / sigma_z0 * lifetime sign of z0",
          lambda q: q.signed_z0_sig)
_register("ip3d_sig", "ip_significances", "1", "sqrt(d0_sig^2 + z0_sig^2)", lambda q: q.ip3d_sig)
_register("signed_ip3d_sig", "ip_significances", "1", "ip3d_sig * lifetime sign of d0",
          lambda q: q.signed_ip3d_sig)
_register("signed_d0_sig_log", "ip_significances", "1", "sign * ln(1 + |signed_d0_sig|)",
          lambda q: compressed(q.signed_d0_sig))
_register("signed_z0_sig_log", "ip_significances", "1", "sign * ln(1 + |signed_z0_sig|)",
          lambda q: compressed(q.signed_z0_sig))
_register("signed_ip3d_sig_log", "ip_significances", "1", "sign * ln(1 + |signed_ip3d_sig|)",
          lambda q: compressed(q.signed_ip3d_sig))

#: Every per-track feature that can be asked for, with its group, unit and definition.
TRACK_FEATURE_SPECS: dict[str, FeatureSpec] = {k: v[0] for k, v in _TRACK_REGISTRY.items()}

#: Default per-track inputs for the set models (16 features, heavy tails log-compressed).
TRACK_FEATURES: tuple[str, ...] = (
    "log_e_gev", "log_p_gev", "log_pt_gev", "cos_theta", "log_e_frac_hemi", "log_p_frac_hemi",
    "angle_axis_rad", "hemisphere", "ptrel_gev", "dphi_axis_rad", "dtheta_axis_rad",
    "signed_d0_log1p_um", "signed_z0_log1p_um",
    "signed_d0_sig_log", "signed_z0_sig_log", "signed_ip3d_sig_log",
)

#: The raw per-track 4-momentum and reference point, kept apart from the features (pair features).
VECTOR_FIELDS: tuple[str, ...] = ("E", "px", "py", "pz", "x", "y", "z")


def check_track_feature_names(names: Sequence[str]) -> tuple[str, ...]:
    """Return ``names`` as a tuple; ``ValueError`` listing the known names if any is unknown."""
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    unknown = [n for n in names if n not in _TRACK_REGISTRY]
    if unknown:
        raise ValueError(f"unknown track features {unknown}; known: {sorted(_TRACK_REGISTRY)}")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate track feature names in {list(names)}")
    return names


def track_feature_columns(q: TrackQuantities, names: Sequence[str]) -> np.ndarray:
    """Flat ``[n_tracks_total, len(names)]`` float32 matrix of the named features."""
    names = check_track_feature_names(names)
    out = np.empty((q.n_tracks_total, len(names)), dtype=np.float32)
    for j, name in enumerate(names):
        out[:, j] = _TRACK_REGISTRY[name][1](q)
    return out


def jagged_records(columns: np.ndarray, names: Sequence[str], offsets: np.ndarray) -> ak.Array:
    """Wrap a flat ``[T, F]`` matrix as ``var * {name: float32}`` with the given event offsets."""
    contents = [ak.contents.NumpyArray(np.ascontiguousarray(columns[:, j])) for j in range(len(names))]
    record = ak.contents.RecordArray(contents, list(names), length=columns.shape[0])
    layout = ak.contents.ListOffsetArray(ak.index.Index64(offsets), record)
    return ak.Array(layout)


def track_features(
    events: ak.Array, detector: DetectorModel | None = None, names: Sequence[str] = TRACK_FEATURES
) -> ak.Array:
    """Per-track features of ``events``: ``var * {name: float32}``, one field per name.

    The jagged structure is that of ``events.tracks`` (same counts, same order).
    ``detector`` (default: ``DetectorModel()``, ILD) gives the resolutions for the
    significances. Unknown names raise ``ValueError`` listing the known ones.
    """
    names = check_track_feature_names(names)
    q = TrackQuantities(events, detector)
    return jagged_records(track_feature_columns(q, names), names, q.offsets)
