"""Training with detector augmentation: each event re-made as a randomly different detector saw it.

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

Beyond the overall scale, each kind of detector difference can be switched on
(each event draws its own amount; all off by default):

* momentum dependence (``shape_spread``): the constant and the
  multiple-scattering terms of ``a (+) b / (p sin^{3/2} theta)`` are scaled by
  ``s r_a`` and ``s r_b``, ``r`` uniform in ``[1, 1 + shape_spread]`` each;
* tails (``tail_fraction_max``, ``tail_scale``): a fraction uniform in
  ``[0, tail_fraction_max]`` of the event's tracks is smeared ``tail_scale``
  times wider in d0 and z0;
* misalignment (``bias_um_max``): d0 and z0 of every track of the event shifted
  by a bias uniform in ``[-bias_um_max, bias_um_max]`` micrometres;
* efficiency (``drop_max``): each track lost with a probability uniform in
  ``[0, drop_max]``;
* fakes (``fakes_per_event_max``): Poisson fake tracks with a mean uniform in
  ``[0, fakes_per_event_max]``, drawn as the generator draws them
  (:func:`flavortag.generate.detector_sim.fake_tracks`).

Numpy and awkward only; seeded, so an augmented sample depends only on
``(events, settings, seed)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import awkward as ak
import numpy as np

from flavortag.detector import PION_MASS_GEV, DetectorModel
from flavortag.features.track import D0_SCALE_FIELD, Z0_SCALE_FIELD, TrackQuantities
from flavortag.schema import defaults
from flavortag.schema.groups import AugmentSchema

#: the defaults of every setting: the ``augment`` schema's (one source)
_D: dict[str, Any] = defaults(AugmentSchema)


@dataclass(frozen=True)
class ResolutionAugmentation:
    """Settings of the detector augmentation (Hydra group ``augment``; see the module doc)."""

    enabled: bool = _D["enabled"]
    scale_min: float = _D["scale_min"]
    scale_max: float = _D["scale_max"]
    fraction: float = _D["fraction"]
    known_scale: bool = _D["known_scale"]
    seed: int = _D["seed"]
    shape_spread: float = _D["shape_spread"]
    tail_fraction_max: float = _D["tail_fraction_max"]
    tail_scale: float = _D["tail_scale"]
    bias_um_max: float = _D["bias_um_max"]
    drop_max: float = _D["drop_max"]
    fakes_per_event_max: float = _D["fakes_per_event_max"]
    #: also a re-smeared copy of the validation split (every event, these ranges), scored each
    #: epoch as ``val_shifted/loss``; the validation split itself then stays as simulated
    shifted_validation: bool = _D["shifted_validation"]

    def __post_init__(self) -> None:
        """Refuse settings that cannot be smeared, in words."""
        if self.shifted_validation and not self.enabled:
            raise ValueError("augment.shifted_validation re-smears the validation split with the ranges of "
                             "an augmentation: choose one (augment=detector; augment.fraction=0 keeps the "
                             "training events as simulated)")
        for name in ("shape_spread", "tail_fraction_max", "bias_um_max", "drop_max", "fakes_per_event_max"):
            if not float(getattr(self, name)) >= 0.0:
                raise ValueError(f"augment.{name} must be >= 0, got {getattr(self, name)}")
        if not self.tail_fraction_max < 1.0 or not self.drop_max < 1.0:
            raise ValueError("augment.tail_fraction_max and augment.drop_max must be below 1, got "
                             f"{self.tail_fraction_max}, {self.drop_max}")
        if not self.tail_scale >= 1.0:
            raise ValueError(f"augment.tail_scale must be >= 1, got {self.tail_scale}")
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
    return _draw_chosen(n_events, settings, rng)[0]


def _draw_chosen(n_events: int, settings: ResolutionAugmentation,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-event scales and which events are augmented (``fraction`` of them)."""
    scales = rng.uniform(settings.scale_min, settings.scale_max, n_events)
    chosen = rng.random(n_events) < settings.fraction
    scales[~chosen] = 1.0
    return scales, chosen


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
    term_scales: np.ndarray | None = None,
    tail_fractions: np.ndarray | None = None,
    tail_scale: float = 4.0,
    bias_mm: np.ndarray | None = None,
) -> ak.Array:
    """Re-smear d0 and z0 of every track so that event ``k`` is resolved ``scales[k]`` times worse.

    ``scales`` ``[n_events]`` (>= 1). Optional, per event: ``term_scales``
    ``[n_events, 2]`` (>= 1) multiply the constant and the momentum term of the
    resolution separately (on top of ``scales``); ``tail_fractions`` the
    fraction of tracks smeared ``tail_scale`` times wider; ``bias_mm`` a shift
    of every d0 and z0. Returns a new event array (the input is not changed);
    with ``known_scale`` it carries the scales as ``d0_resolution_scale`` /
    ``z0_resolution_scale``.
    """
    detector = detector if detector is not None else DetectorModel()
    rng = rng if rng is not None else np.random.default_rng(0)
    scales = np.asarray(scales, dtype=np.float64).reshape(-1)
    if len(scales) != len(events):
        raise ValueError(f"{len(scales)} scales for {len(events)} events")
    if np.any(scales < 1.0):
        raise ValueError("resolution scales below 1 cannot be reached by re-smearing")
    q = TrackQuantities(events, detector)
    event = q.event_index
    gauss = rng.standard_normal((2, q.n_tracks_total))
    x = np.maximum(q.p * np.maximum(q.sin_theta, 1e-6) ** 1.5, 1e-6)
    terms = np.ones((len(events), 2)) if term_scales is None else np.asarray(term_scales, dtype=np.float64)
    tails = np.ones(q.n_tracks_total)
    if tail_fractions is not None:
        tails[rng.random(q.n_tracks_total) < np.asarray(tail_fractions)[event]] = tail_scale
    deltas = []
    for k, (a_mm, b_mm) in enumerate(((detector.d0_a_mm, detector.d0_b_mm_gev),
                                      (detector.z0_a_mm, detector.z0_b_mm_gev))):
        nominal = np.hypot(a_mm, b_mm / x)
        target = scales[event] * tails * np.hypot(terms[event, 0] * a_mm, terms[event, 1] * b_mm / x)
        deltas.append(gauss[k] * np.sqrt(np.maximum(target**2 - nominal**2, 0.0)))
    delta_d0, delta_z0 = deltas
    if bias_mm is not None:
        delta_d0 = delta_d0 + np.asarray(bias_mm)[event]
        delta_z0 = delta_z0 + np.asarray(bias_mm)[event]
    out = shift_impact_parameters(events, q, delta_d0, delta_z0)
    if known_scale:
        out = ak.with_field(out, scales.astype(np.float32), D0_SCALE_FIELD)
        out = ak.with_field(out, scales.astype(np.float32), Z0_SCALE_FIELD)
    return out


def shift_impact_parameters(events: ak.Array, q: TrackQuantities, delta_d0_mm: np.ndarray,
                            delta_z0_mm: np.ndarray) -> ak.Array:
    """``events`` with ``delta_d0_mm`` / ``delta_z0_mm`` (flat, per track) added to each track's d0 / z0.

    ``q``: the :class:`TrackQuantities` of ``events``. The reference point
    moves, the momentum stays: d0 = (x py - y px) / pT, so moving (x, y) by
    delta * (py, -px) / pT adds delta to d0 and leaves x px + y py (z0's
    transverse term) unchanged; z0 moves with z.
    """
    pt = np.maximum(q.pt, 1e-12)
    new = {
        "x": q.field("x") + delta_d0_mm * q.field("py") / pt,
        "y": q.field("y") - delta_d0_mm * q.field("px") / pt,
        "z": q.field("z") + delta_z0_mm,
    }
    return _replace_track_fields(events, new)


def drop_tracks(events: ak.Array, loss: np.ndarray, rng: np.random.Generator) -> ak.Array:
    """``events`` with each track of event ``k`` lost with probability ``loss[k]``."""
    counts = np.asarray(ak.num(events["tracks"], axis=1))
    keep = rng.random(int(counts.sum())) >= np.repeat(np.asarray(loss, dtype=np.float64), counts)
    return ak.with_field(events, events["tracks"][ak.unflatten(keep, counts)], "tracks")


def add_fake_tracks(events: ak.Array, mean_per_event: np.ndarray, rng: np.random.Generator,
                    detector: DetectorModel | None = None) -> ak.Array:
    """``events`` with Poisson(``mean_per_event[k]``) fake tracks appended to event ``k``.

    Drawn as the generator draws them (``DetectorModel``'s fake-track
    settings); fields the fakes lack are 0 (``origin`` -1 where present).
    """
    from dataclasses import replace

    from flavortag.generate.detector_sim import FAKE_ORIGIN, fake_tracks

    detector = detector if detector is not None else DetectorModel()
    mean = np.asarray(mean_per_event, dtype=np.float64)
    top = float(mean.max()) if len(mean) else 0.0
    if top <= 0.0:
        return events
    fakes, fake_event = fake_tracks(len(events), replace(detector, fake_tracks_per_event=top), rng)
    keep = rng.random(len(fake_event)) < mean[fake_event] / top  # thinned: Poisson(mean[k])
    fakes, fake_event = {k: v[keep] for k, v in fakes.items()}, fake_event[keep]
    fakes["E"] = np.sqrt(fakes["p"] ** 2 + PION_MASS_GEV**2)
    tracks = events["tracks"]
    counts = np.bincount(fake_event, minlength=len(events))
    columns = {}
    for name in tracks.fields:
        dtype = ak.to_numpy(ak.flatten(tracks[name], axis=1)).dtype
        default = FAKE_ORIGIN if name == "origin" else 0
        values = fakes.get(name, np.full(len(fake_event), default))
        columns[name] = ak.unflatten(np.asarray(values).astype(dtype), counts)
    merged = ak.concatenate([tracks, ak.zip(columns)], axis=1)
    return ak.with_field(events, merged, "tracks")


def augment_events(
    events: ak.Array, settings: ResolutionAugmentation, detector: DetectorModel | None = None,
    seed_offset: int = 0,
) -> ak.Array:
    """``events`` augmented as ``settings`` say (unchanged if not enabled; see the module doc).

    The random numbers come from ``(settings.seed, seed_offset)``: the same
    events and settings give the same result (``seed_offset`` separates splits).
    """
    if not settings.enabled:
        return events
    rng = np.random.default_rng([settings.seed, seed_offset, 41])
    scales, chosen = _draw_chosen(len(events), settings, rng)
    n = len(events)

    def amount(top: float) -> np.ndarray | None:
        return np.where(chosen, rng.uniform(0.0, top, n), 0.0) if top > 0.0 else None

    terms = None
    if settings.shape_spread > 0.0:
        terms = np.where(chosen[:, None], rng.uniform(1.0, 1.0 + settings.shape_spread, (n, 2)), 1.0)
    tails, drop, fakes = amount(settings.tail_fraction_max), amount(settings.drop_max), \
        amount(settings.fakes_per_event_max)
    bias = None
    if settings.bias_um_max > 0.0:
        bias = np.where(chosen, rng.uniform(-1.0, 1.0, n) * settings.bias_um_max * 1e-3, 0.0)
    out = smear_impact_parameters(events, scales, detector, rng, known_scale=settings.known_scale,
                                  term_scales=terms, tail_fractions=tails, tail_scale=settings.tail_scale,
                                  bias_mm=bias)
    if drop is not None:
        out = drop_tracks(out, drop, rng)
    if fakes is not None:
        out = add_fake_tracks(out, fakes, rng, detector)
    return out
