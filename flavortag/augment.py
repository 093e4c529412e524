"""Training with resolution augmentation: tracks re-smeared with a random extra resolution.

A tagger trained on one detector simulation learns the exact width of the
prompt-track impact-parameter distribution and collapses when data are
resolved worse. Re-smearing every training event with its own random
resolution scale ``s`` (uniform in ``[scale_min, scale_max]``, ``s >= 1``)
shows the network a range of resolutions, so it cannot lean on one.

For an event of scale ``s`` every track's d0 and z0 get an extra Gaussian shift
of width ``sqrt(s^2 - 1) * sigma(p, theta)`` (the detector model's nominal
resolution functions), so the total resolution is ``s * sigma``. The shift moves
the reference point: ``d0`` by moving (x, y) perpendicular to the track's
transverse momentum, ``z0`` by moving z; the momentum is unchanged.

With ``known_scale`` the events also carry ``d0_resolution_scale =
z0_resolution_scale = s`` (``flavortag.features.track``): the significances are
formed with the resolution of the event, as a calibrated sample's are
(``flavortag.calibration``), and the feature ``log_d0_resolution_scale`` tells a
resolution-aware tagger which resolution it sees. Without it the significances
stay nominal and the network must cope with their varying width.

Numpy and awkward only; seeded, so an augmented sample depends only on
``(events, settings, seed)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import awkward as ak
import numpy as np

from flavortag.detector import DetectorModel
from flavortag.features.track import D0_SCALE_FIELD, Z0_SCALE_FIELD, TrackQuantities


@dataclass(frozen=True)
class ResolutionAugmentation:
    """Settings of the resolution augmentation (Hydra group ``augment``)."""

    enabled: bool = False
    scale_min: float = 1.0
    scale_max: float = 2.0
    fraction: float = 1.0
    known_scale: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        """Refuse settings that cannot be smeared, in words."""
        if not 1.0 <= self.scale_min <= self.scale_max:
            raise ValueError("augment needs 1 <= scale_min <= scale_max (re-smearing can only make "
                             f"the resolution worse), got [{self.scale_min}, {self.scale_max}]")
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"augment.fraction must be in [0, 1], got {self.fraction}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> ResolutionAugmentation:
        """Build from a mapping (a Hydra ``augment`` node); unknown keys are an error."""
        if cfg is None:
            return cls()
        data = dict(cfg)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known - {"name", "description"}
        if unknown:
            raise ValueError(f"unknown augment settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for logging)."""
        return asdict(self)


def draw_scales(n_events: int, settings: ResolutionAugmentation, rng: np.random.Generator) -> np.ndarray:
    """Per-event resolution scales: ``fraction`` of the events uniform in the range, the rest 1."""
    scales = rng.uniform(settings.scale_min, settings.scale_max, n_events)
    nominal = rng.random(n_events) >= settings.fraction
    scales[nominal] = 1.0
    return scales


def _replace_track_fields(events: ak.Array, new: Mapping[str, np.ndarray]) -> ak.Array:
    """``events`` with the flat per-track columns in ``new`` replacing those fields (same counts)."""
    tracks = events["tracks"]
    counts = ak.num(tracks, axis=1)
    for name, flat in new.items():
        dtype = ak.to_numpy(ak.flatten(tracks[name], axis=1)).dtype
        tracks = ak.with_field(tracks, ak.unflatten(np.asarray(flat, dtype=dtype), counts), name)
    return ak.with_field(events, tracks, "tracks")


def smear_impact_parameters(
    events: ak.Array,
    scales: np.ndarray,
    detector: DetectorModel | None = None,
    rng: np.random.Generator | None = None,
    known_scale: bool = False,
) -> ak.Array:
    """Re-smear d0 and z0 of every track so that event ``k`` is resolved ``scales[k]`` times worse.

    ``scales`` ``[n_events]`` (>= 1). Returns a new event array (the input is
    not changed); with ``known_scale`` it carries the scales as
    ``d0_resolution_scale`` / ``z0_resolution_scale``.
    """
    detector = detector if detector is not None else DetectorModel()
    rng = rng if rng is not None else np.random.default_rng(0)
    scales = np.asarray(scales, dtype=np.float64).reshape(-1)
    if len(scales) != len(events):
        raise ValueError(f"{len(scales)} scales for {len(events)} events")
    if np.any(scales < 1.0):
        raise ValueError("resolution scales below 1 cannot be reached by re-smearing")
    q = TrackQuantities(events, detector)
    extra = np.sqrt(scales**2 - 1.0)[q.event_index]
    gauss = rng.standard_normal((2, q.n_tracks_total))
    delta_d0 = gauss[0] * extra * detector.sigma_d0_mm(q.p, q.sin_theta)
    delta_z0 = gauss[1] * extra * detector.sigma_z0_mm(q.p, q.sin_theta)
    pt = np.maximum(q.pt, 1e-12)
    # d0 = (x py - y px) / pT: moving (x, y) by delta * (py, -px) / pT adds delta to d0 and
    # leaves x px + y py, hence z0's transverse term, unchanged.
    new = {
        "x": q.field("x") + delta_d0 * q.field("py") / pt,
        "y": q.field("y") - delta_d0 * q.field("px") / pt,
        "z": q.field("z") + delta_z0,
    }
    out = _replace_track_fields(events, new)
    if known_scale:
        out = ak.with_field(out, scales.astype(np.float32), D0_SCALE_FIELD)
        out = ak.with_field(out, scales.astype(np.float32), Z0_SCALE_FIELD)
    return out


def augment_events(
    events: ak.Array, settings: ResolutionAugmentation, detector: DetectorModel | None = None,
    seed_offset: int = 0,
) -> ak.Array:
    """``events`` re-smeared as ``settings`` say (unchanged if not enabled).

    The random numbers come from ``(settings.seed, seed_offset)``: the same
    events and settings give the same result (``seed_offset`` separates splits).
    """
    if not settings.enabled:
        return events
    rng = np.random.default_rng([settings.seed, seed_offset, 41])
    scales = draw_scales(len(events), settings, rng)
    return smear_impact_parameters(events, scales, detector, rng, known_scale=settings.known_scale)
