"""The per-track feature registry, and ``TrackQuantities``: the flat numpy face of the physics.

The physics itself (axis-relative kinematics, impact parameters, lifetime signs,
significances) lives once in :class:`flavortag.features.padded.PaddedTracks`,
for numpy and torch alike; the conventions are written down there and in
docs/FEATURES.md. ``TrackQuantities`` holds every track of an awkward event
array, pads the events chunk by chunk (``CHUNK_EVENTS`` at a time) into
``PaddedTracks`` and hands back any per-track quantity as a flat float64 numpy
array over all tracks (all events concatenated, ``offsets`` marking the
events; the chunks take the events in order of track count, so that they
carry little padding), each computed at most once: selecting a few features computes only
what those need. ``track_features`` turns a list of names into an awkward
array with the jagged structure of ``events.tracks``.

Optional inputs read from the events:

* per-event ``d0_resolution_scale`` / ``z0_resolution_scale`` (set by a
  resolution calibration, ``flavortag.calibration``, or by the training
  augmentation, ``flavortag.augment``; absent = 1), and per-track fields of
  the same names (the ``function`` calibration: a scale per track); both
  given: their product;
* per-track ``sigma_d0`` / ``sigma_z0`` (mm; the track fit's own uncertainties,
  e.g. from EDM4hep covariances): where present (and > 0) the significances
  divide by them instead of the detector model's parametric resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property, partial

import awkward as ak
import numpy as np

from flavortag.array_ops import Array, ops_for
from flavortag.detector import DetectorModel
from flavortag.features import particle_flow as pf
from flavortag.features.padded import PARTICLE_FIELDS, PaddedTracks, compressed, particle_fill
from flavortag.ragged import event_index, offsets_from_counts

_TINY = 1e-12

#: Optional per-event fields that scale the resolutions used for the significances.
D0_SCALE_FIELD: str = "d0_resolution_scale"
Z0_SCALE_FIELD: str = "z0_resolution_scale"
#: Optional per-track fields: the track fit's own sigma(d0), sigma(z0) in mm.
SIGMA_FIELDS: tuple[str, str] = ("sigma_d0", "sigma_z0")
#: Events padded at a time by ``TrackQuantities`` (bounds the memory of the padded arrays).
CHUNK_EVENTS: int = 1024

#: The raw per-track 4-momentum and reference point, kept apart from the features (pair features).
VECTOR_FIELDS: tuple[str, ...] = ("E", "px", "py", "pz", "x", "y", "z")


@dataclass(frozen=True)
class FeatureSpec:
    """One named feature: its group (for ablations), unit and definition."""

    name: str
    group: str
    unit: str
    definition: str


def event_axes(events: ak.Array) -> np.ndarray:
    """The events' ``axis`` as a float64 ``[n, 3]`` array, as stored (not normalised)."""
    axis = events["axis"]
    try:
        arr = ak.to_numpy(axis)
    except (ValueError, TypeError):
        arr = ak.to_numpy(ak.to_regular(axis, axis=1))
    return np.asarray(arr, dtype=np.float64).reshape(len(events), 3)


class TrackQuantities:
    """Flat per-track quantities of an event array, computed lazily in float64.

    Any quantity of :class:`~flavortag.features.padded.PaddedTracks` (``d0``,
    ``signed_d0_sig``, ``p``, ...) is an attribute here, flat over all tracks
    (length ``n_tracks_total``, events in order); ``event_index`` gives each
    track's event, ``chunks`` the padded blocks they come from.
    """

    def __init__(self, events: ak.Array, detector: DetectorModel | None = None,
                 chunk_events: int = CHUNK_EVENTS, with_particle: bool = False) -> None:
        self.events = events
        self.detector = detector if detector is not None else DetectorModel()
        self.tracks = events["tracks"]
        self.counts = np.asarray(ak.to_numpy(ak.num(self.tracks, axis=1)), dtype=np.int64)
        self.n_events = len(self.counts)
        self.offsets = offsets_from_counts(self.counts)
        self.chunk_events = max(int(chunk_events), 1)
        #: pad the particle-flow fields too (the features of the ``particle_type`` and ``pid`` groups)
        self.with_particle = with_particle
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

    @cached_property
    def event_index(self) -> np.ndarray:
        """Event of each track."""
        return event_index(self.counts)

    def event_scale(self, name: str) -> np.ndarray:
        """Per-event value ``[n_events]`` of the optional field ``name`` (1 where the events have none)."""
        if name not in ak.fields(self.events):
            return np.ones(self.n_events)
        return np.asarray(ak.to_numpy(self.events[name]), dtype=np.float64).reshape(-1)

    @property
    def has_measured_sigma(self) -> bool:
        """True when the tracks carry their own ``sigma_d0`` and ``sigma_z0``."""
        return all(f in self.tracks.fields for f in SIGMA_FIELDS)

    @cached_property
    def chunks(self) -> list[PaddedTracks]:
        """The events as :class:`PaddedTracks`, ``chunk_events`` at a time (at least one slot each).

        Events go into chunks in order of track count (little padding);
        ``chunk_rows`` says where each chunk's events and real tracks sit.
        """
        return [c for c, _, _ in self._chunked]

    @property
    def chunk_rows(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per chunk: the indices of its events ``[B]`` and of its real tracks (``valid`` order)."""
        return [(events, tracks) for _, events, tracks in self._chunked]

    @cached_property
    def _chunked(self) -> list[tuple[PaddedTracks, np.ndarray, np.ndarray]]:
        vectors = np.stack([self.field(f) for f in VECTOR_FIELDS], axis=1)
        axes = event_axes(self.events)
        scale = None
        if any(f in ak.fields(self.events) for f in (D0_SCALE_FIELD, Z0_SCALE_FIELD)):
            scale = np.stack([self.event_scale(D0_SCALE_FIELD), self.event_scale(Z0_SCALE_FIELD)], axis=1)
        track_scale = None
        if any(f in self.tracks.fields for f in (D0_SCALE_FIELD, Z0_SCALE_FIELD)):
            track_scale = np.stack([self.field(f) if f in self.tracks.fields else np.ones(self.n_tracks_total)
                                    for f in (D0_SCALE_FIELD, Z0_SCALE_FIELD)], axis=1)
            if scale is not None:
                track_scale = track_scale * scale[self.event_index]
        sigma = None
        if self.has_measured_sigma:
            sigma = np.stack([self.field(f) for f in SIGMA_FIELDS], axis=1)
        particle = None
        if self.with_particle:
            particle = np.stack([self.field(f) if f in self.tracks.fields
                                 else np.full(self.n_tracks_total, particle_fill(f)) for f in PARTICLE_FIELDS],
                                axis=1)
        order = np.argsort(self.counts, kind="stable")
        out = []
        for i0 in range(0, self.n_events, self.chunk_events):
            rows = order[i0:i0 + self.chunk_events]
            counts = self.counts[rows]
            n_slots = max(int(counts.max()), 1)
            slot = np.arange(n_slots)
            valid = slot[None, :] < counts[:, None]
            tracks = (self.offsets[rows][:, None] + slot[None, :])[valid]
            padded = np.zeros((len(rows), n_slots, len(VECTOR_FIELDS)))
            padded[valid] = vectors[tracks]
            padded_sigma = None
            if sigma is not None:
                padded_sigma = np.zeros((len(rows), n_slots, 2))
                padded_sigma[valid] = sigma[tracks]
            chunk_scale = None if scale is None else scale[rows]
            if track_scale is not None:  # [B, N, 2], 1 in the padded slots
                chunk_scale = np.ones((len(rows), n_slots, 2))
                chunk_scale[valid] = track_scale[tracks]
            padded_particle = None
            if particle is not None:
                padded_particle = np.zeros((len(rows), n_slots, len(PARTICLE_FIELDS)))
                padded_particle[valid] = particle[tracks]
            chunk = PaddedTracks(padded, valid, axes[rows], self.detector, chunk_scale, padded_sigma,
                                 padded_particle)
            out.append((chunk, rows, tracks))
        return out

    def flat(self, name: str) -> np.ndarray:
        """The per-track quantity ``name`` of :class:`PaddedTracks`, flat over all tracks (event order)."""
        out = np.zeros(self.n_tracks_total)
        for chunk, _, tracks in self._chunked:
            out[tracks] = np.asarray(getattr(chunk, name), dtype=np.float64)[chunk.valid]
        return out

    def __getattr__(self, name: str) -> np.ndarray:
        """Per-track quantities of :class:`PaddedTracks` by name, flat (cached)."""
        if name.startswith("_") or not isinstance(PaddedTracks.__dict__.get(name), cached_property):
            raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}")
        value = self.flat(name)
        self.__dict__[name] = value
        return value


def _log(values: Array) -> Array:
    ops = ops_for(values)
    return ops.log(ops.clip_min(values, _TINY))


def _log1p_um(signed_mm: Array) -> Array:
    ops = ops_for(signed_mm)
    return ops.sign(signed_mm) * ops.log1p(ops.abs(signed_mm) * 1000.0)


_TRACK_REGISTRY: dict[str, tuple[FeatureSpec, Callable[[PaddedTracks], Array]]] = {}


def _register(name: str, group: str, unit: str, definition: str,
              fn: Callable[[PaddedTracks], Array]) -> None:
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
          "track's sigma_d0 where given, else DetectorModel.sigma_d0_mm(|p|, sin theta); "
          "times the event's d0 resolution scale",
          lambda q: q.sigma_d0)
_register("sigma_z0_mm", "impact_parameters", "mm",
          "track's sigma_z0 where given, else DetectorModel.sigma_z0_mm(|p|, sin theta); "
          "times the event's z0 resolution scale",
          lambda q: q.sigma_z0)
# the resolution the significances were formed with (resolution-aware taggers)
_register("log_d0_resolution_scale", "resolution", "ln 1",
          "ln of the event's d0 resolution scale (calibrated or augmented; 0 when nominal)",
          lambda q: q.ops.log(q.d0_resolution_scale))
_register("log_z0_resolution_scale", "resolution", "ln 1",
          "ln of the event's z0 resolution scale (calibrated or augmented; 0 when nominal)",
          lambda q: q.ops.log(q.z0_resolution_scale))
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

# particle flow (issue 25; flavortag/features/particle_flow.py): the token's type and the PID
_register("is_charged", "particle_type", "1", "1 for a track, 0 for a neutral token (no IP features)",
          lambda q: pf.particle_type_flag(q, pf.CHARGED))
_register("is_photon", "particle_type", "1", "1 for a photon token", lambda q: pf.particle_type_flag(q, pf.PHOTON))
_register("is_neutral_hadron", "particle_type", "1", "1 for a neutral-hadron token",
          lambda q: pf.particle_type_flag(q, pf.NEUTRAL_HADRON))
_register("has_pid", "pid", "1", "1 for a track with a dN/dx measurement", pf.has_pid)
for _h, _m in pf.HYPOTHESES.items():
    _register(f"dndx_pull_{_h}", "pid", "1", f"(dndx / N_{_h}(p) - 1) / dndx_resolution, clipped to +-20; 0: none",
              partial(pf.dndx_pull, mass_gev=_m))
    _register(f"tof_pull_{_h}", "pid", "1", f"(tof - L / (beta_{_h} c)) / sigma_t, clipped to +-20; 0: none",
              partial(pf.tof_pull, mass_gev=_m))
_register("mass2_tof_gev2", "pid", "GeV^2", "p^2 (c^2 t^2 / L^2 - 1), clipped to [-1, 4]; 0: none", pf.mass2_tof)
#: Features that read the particle-flow fields (``TrackQuantities(with_particle=True)``).
PARTICLE_FLOW_FEATURES: tuple[str, ...] = tuple(
    n for n, (spec, _) in _TRACK_REGISTRY.items() if spec.group in ("particle_type", "pid"))

#: Every per-track feature that can be asked for, with its group, unit and definition.
TRACK_FEATURE_SPECS: dict[str, FeatureSpec] = {k: v[0] for k, v in _TRACK_REGISTRY.items()}

#: Default per-track inputs for the set models (16 features, heavy tails log-compressed).
TRACK_FEATURES: tuple[str, ...] = (
    "log_e_gev", "log_p_gev", "log_pt_gev", "cos_theta", "log_e_frac_hemi", "log_p_frac_hemi",
    "angle_axis_rad", "hemisphere", "ptrel_gev", "dphi_axis_rad", "dtheta_axis_rad",
    "signed_d0_log1p_um", "signed_z0_log1p_um",
    "signed_d0_sig_log", "signed_z0_sig_log", "signed_ip3d_sig_log",
)


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


def padded_track_features(q: PaddedTracks, names: Sequence[str]) -> Array:
    """``[B, N, len(names)]`` float64 features of padded tracks (numpy or torch; the one
    implementation behind :func:`track_feature_columns` and the raw-input ONNX graph)."""
    names = check_track_feature_names(names)
    return q.ops.stack([q.ops.float64(_TRACK_REGISTRY[n][1](q)) for n in names], -1)


def track_feature_columns(q: TrackQuantities, names: Sequence[str]) -> np.ndarray:
    """Flat ``[n_tracks_total, len(names)]`` float32 matrix of the named features
    (the registry's functions on each padded chunk, real tracks put back in event order)."""
    names = check_track_feature_names(names)
    out = np.empty((q.n_tracks_total, len(names)), dtype=np.float32)
    for chunk, (_, tracks) in zip(q.chunks, q.chunk_rows):
        for j, name in enumerate(names):
            out[tracks, j] = _TRACK_REGISTRY[name][1](chunk)[chunk.valid]
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
    q = TrackQuantities(events, detector, with_particle=any(n in PARTICLE_FLOW_FEATURES for n in names))
    return jagged_records(track_feature_columns(q, names), names, q.offsets)
