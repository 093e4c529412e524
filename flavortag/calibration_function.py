"""The ``function`` calibration: a sample's resolution functions, fitted without labels, applied per track.

:func:`fit_function_calibration` fits the d0 and z0 resolution functions
(:mod:`flavortag.resolution_function`: core ``a (+) b / x`` plus a tail) on
the negative side of the lifetime-signed significances of a sample; the
``label`` field is dropped first. A :class:`FunctionCalibration` made
:meth:`~FunctionCalibration.relative_to` a reference (the function fitted on
the tagger's training sample, stored with the model as ``training_resolution``;
none: the detector model's Gaussian with the data's own tails, i.e. only the
core is corrected) is applied by :func:`apply_function_calibration`: every
track gets a ``d0_resolution_scale`` / ``z0_resolution_scale`` of its own
(``flavortag.features.track`` divides its resolutions by them), which maps its
significance onto the reference's with the same prompt probability.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from flavortag.detector import DetectorModel
from flavortag.features.track import D0_SCALE_FIELD, Z0_SCALE_FIELD, TrackQuantities
from flavortag.resolution_function import (
    MIN_TRACKS_PER_PARAMETER,
    N_PARAMETERS,
    TAIL_EXCESS_SIGMAS,
    ResolutionFitError,
    ResolutionFunction,
    check_plausible,
    check_smeared,
    choose_mapping,
    fit_resolution_function,
    map_pulls,
    nominal_function,
)

log = logging.getLogger(__name__)

#: Lifetime tracks (as the event features and the scale calibration use them).
LIFETIME_D0_MAX_MM: float = 2.0
LIFETIME_Z0_MAX_MM: float = 10.0
#: Fewest negative-side tracks per impact parameter a function fit accepts.
MIN_FUNCTION_TRACKS: int = N_PARAMETERS * MIN_TRACKS_PER_PARAMETER
#: At most this many negative-side tracks enter one fit (a seeded subsample beyond).
MAX_FIT_TRACKS: int = 50_000
#: At most this many training events are fitted for a model's ``training_resolution``.
TRAINING_FIT_EVENTS: int = 30_000
IMPACT_PARAMETERS: tuple[str, str] = ("d0", "z0")


@dataclass(frozen=True)
class FunctionCalibration:
    """Fitted d0 / z0 resolution functions of a sample, and the reference they are applied against."""

    d0: ResolutionFunction
    z0: ResolutionFunction
    n_events: int
    detector: str = "ild"
    median_x_gev: float = 2.0
    inputs: list[str] = field(default_factory=list)
    reference_d0: ResolutionFunction | None = None
    reference_z0: ResolutionFunction | None = None
    mode: str = "function"

    # --- figures for logs and tables: core width ratio data / reference at the median x --------
    def _ratio(self, name: str) -> float:
        data: ResolutionFunction = getattr(self, name)
        ref = getattr(self, f"reference_{name}")
        if ref is None:
            return math.nan
        x = np.asarray([self.median_x_gev])
        return float(data.sigma_mm(x)[0] / ref.sigma_mm(x)[0])

    @property
    def d0_scale(self) -> float:
        """Core width of d0, data over reference, at the median ``p sin^{3/2} theta`` (nan: no reference)."""
        return self._ratio("d0")

    @property
    def z0_scale(self) -> float:
        """Core width of z0, data over reference, at the median ``p sin^{3/2} theta``."""
        return self._ratio("z0")

    @property
    def d0_scale_error(self) -> float:
        """Statistical error of ``d0_scale`` from the data's a and b errors (uncorrelated)."""
        return _ratio_error(self.d0, self.median_x_gev) * self.d0_scale

    @property
    def z0_scale_error(self) -> float:
        """Statistical error of ``z0_scale``."""
        return _ratio_error(self.z0, self.median_x_gev) * self.z0_scale

    def relative_to(self, reference: FunctionCalibration | None, detector: DetectorModel,
                    mapping: str = "as fitted") -> FunctionCalibration:
        """This calibration applied against ``reference`` (a training sample's fit; None: the nominal
        core with the data's own tails); refuses an implausible fit (:func:`check_plausible`).
        ``mapping`` sets what each function maps onto the reference (``ResolutionFunction.mapping``):
        ``"core"`` (``calibration=core``) the core only; ``"auto"`` (``calibration=auto``) the tails
        too only where the data have more than the reference
        (:func:`~flavortag.resolution_function.choose_mapping`); ``"as fitted"``: as each function says."""
        refs: dict[str, Any] = {}
        for name in IMPACT_PARAMETERS:
            data: ResolutionFunction = getattr(self, name)
            if reference is not None:
                ref = getattr(reference, name)
            else:
                a, b = (detector.d0_a_mm, detector.d0_b_mm_gev) if name == "d0" else \
                    (detector.z0_a_mm, detector.z0_b_mm_gev)
                ref = ResolutionFunction(a, b, data.tail_fraction, data.tail_scale)
            check_plausible(data, ref, name)
            refs[f"reference_{name}"] = ref
            if mapping == "auto" and reference is not None:
                refs[name] = choose_mapping(data, ref, self.median_x_gev)
            elif mapping == "core":
                refs[name] = replace(data, mapping="core")
        return replace(self, **refs)

    def fitted_only(self) -> FunctionCalibration:
        """The fit without a reference (what a model stores as its ``training_resolution``)."""
        return replace(self, reference_d0=None, reference_z0=None, inputs=[])

    def summary(self) -> str:
        """The fitted constants in words (the ``calibrate`` app prints it)."""
        lines = []
        for name in IMPACT_PARAMETERS:
            fn: ResolutionFunction = getattr(self, name)
            lines.append(f"{name}: a = {fn.a_mm * 1e3:.2f} ± {fn.a_mm_error * 1e3:.2f} um, b = "
                         f"{fn.b_mm_gev * 1e3:.2f} ± {fn.b_mm_gev_error * 1e3:.2f} um GeV, tail "
                         f"{fn.tail_fraction:.3f} ± {fn.tail_fraction_error:.3f} of width x{fn.tail_scale:.1f} "
                         f"({fn.n_tracks} tracks)" + _mapping_words(fn))
        return "\n".join(lines) + f"\n({self.n_events} events; detector {self.detector}; applied relative " \
            "to the tagger's training sample)"

    def save(self, path: str | Path) -> Path:
        """Write the calibration as JSON (atomically); returns the path."""
        from flavortag.io.atomic import write_json

        return write_json(path, self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON file, checkpoints, tagger.json)."""
        out: dict[str, Any] = {"mode": self.mode, "n_events": self.n_events, "detector": self.detector,
                               "median_x_gev": self.median_x_gev, "inputs": list(self.inputs)}
        for name in IMPACT_PARAMETERS:
            out[name] = getattr(self, name).to_dict()
            ref = getattr(self, f"reference_{name}")
            out[f"reference_{name}"] = None if ref is None else ref.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FunctionCalibration:
        """Inverse of ``to_dict`` (also of the dicts written before the mapping was per function, whose
        ``map_tails: false`` said "the core only")."""
        values = dict(data)
        core_only = values.pop("map_tails", True) is False
        for name in IMPACT_PARAMETERS:
            values[name] = ResolutionFunction.from_dict(values[name])
            if core_only:
                values[name] = replace(values[name], mapping="core")
            ref = values.get(f"reference_{name}")
            values[f"reference_{name}"] = None if ref is None else ResolutionFunction.from_dict(ref)
        return cls(**values)


def _mapping_words(fn: ResolutionFunction) -> str:
    """What of ``fn`` ``calibration=auto`` maps, for the summary (nothing where it did not choose)."""
    if not math.isfinite(fn.tail_excess_sigmas):
        return ""
    what = "core and tails" if fn.mapping == "function" else "core only"
    why = ", but wider than training's tail: fakes or heavy flavour, not resolution" \
        if fn.mapping == "core" and fn.tail_excess_sigmas > TAIL_EXCESS_SIGMAS else ""
    return f"; {what} mapped (tail fraction {fn.tail_excess_sigmas:+.1f} sigma from training's{why})"


def _ratio_error(fn: ResolutionFunction, x_gev: float) -> float:
    """Relative error of the core width at ``x`` from the errors of a and b."""
    sigma2 = fn.a_mm**2 + (fn.b_mm_gev / x_gev) ** 2
    da = fn.a_mm * fn.a_mm_error / sigma2
    db = (fn.b_mm_gev / x_gev) ** 2 * fn.b_mm_gev_error / max(fn.b_mm_gev, 1e-300) / sigma2
    return float(math.hypot(da, db)) if math.isfinite(da) and math.isfinite(db) else math.nan


def _nominal_events(events: ak.Array) -> ak.Array:
    """``events`` reduced to tracks and axis, without resolution scales (the nominal resolutions)."""
    tracks = events["tracks"]
    keep = [f for f in tracks.fields if f not in (D0_SCALE_FIELD, Z0_SCALE_FIELD)]
    return ak.zip({"tracks": tracks[keep], "axis": events["axis"]}, depth_limit=1)


def _nominal_functions(detector: DetectorModel) -> dict[str, ResolutionFunction]:
    return {"d0": nominal_function(detector.d0_a_mm, detector.d0_b_mm_gev),
            "z0": nominal_function(detector.z0_a_mm, detector.z0_b_mm_gev)}


def fit_function_calibration(
    events: ak.Array, detector: DetectorModel | None = None, min_tracks: int = MIN_FUNCTION_TRACKS,
    inputs: Sequence[str] = (), seed: int = 0,
) -> FunctionCalibration:
    """Fit the d0 and z0 resolution functions of ``events`` (labels never read; see the module doc).

    Raises :class:`~flavortag.resolution_function.ResolutionFitError` naming
    the tracks the fit needs when a side has fewer than ``min_tracks``
    negative-side lifetime tracks (about ``events`` it would take, too).
    """
    detector = detector if detector is not None else DetectorModel()
    q = TrackQuantities(_nominal_events(events), detector)
    lifetime = (np.abs(q.d0) < LIFETIME_D0_MAX_MM) & (np.abs(q.z0) < LIFETIME_Z0_MAX_MM)
    x = q.p * q.sin_theta**1.5
    nominal = _nominal_functions(detector)
    rng = np.random.default_rng([seed, 7])
    fitted: dict[str, ResolutionFunction] = {}
    medians = []
    for name in IMPACT_PARAMETERS:
        check_smeared(getattr(q, name)[lifetime], getattr(q, f"sigma_{name}")[lifetime], name)
        neg = np.flatnonzero(lifetime & (getattr(q, f"signed_{name}_sig") < 0.0))
        if len(neg) > MAX_FIT_TRACKS:
            neg = np.sort(rng.choice(neg, MAX_FIT_TRACKS, replace=False))
        if len(neg) < min_tracks:
            per_event = len(neg) / max(q.n_events, 1)
            more = f" (about {math.ceil(min_tracks / per_event)} events of this kind)" if per_event else ""
            raise ResolutionFitError(
                f"too few tracks to fit the {name} resolution function: {len(neg)} negative-side lifetime "
                f"tracks in {q.n_events} events; its {N_PARAMETERS} parameters (a, b, tail fraction, tail "
                f"scale) need at least {min_tracks}{more}")
        fitted[name] = fit_resolution_function(
            np.abs(getattr(q, name)[neg]), getattr(q, f"sigma_{name}")[neg], x[neg], nominal[name],
            min_tracks=min_tracks, what=name)
        medians.append(float(np.median(x[neg])))
    return FunctionCalibration(d0=fitted["d0"], z0=fitted["z0"], n_events=q.n_events,
                               detector=detector.name, median_x_gev=float(np.mean(medians)),
                               inputs=[str(p) for p in inputs])


def track_scales(events: ak.Array, calibration: FunctionCalibration,
                 detector: DetectorModel | None = None, q: TrackQuantities | None = None) -> dict[str, np.ndarray]:
    """Per-track resolution scales ``{d0_resolution_scale, z0_resolution_scale}`` (flat, track order)."""
    detector = detector if detector is not None else DetectorModel()
    if calibration.reference_d0 is None or calibration.reference_z0 is None:
        calibration = calibration.relative_to(None, detector)
    q = q if q is not None else TrackQuantities(_nominal_events(events), detector)
    x = q.p * q.sin_theta**1.5
    nominal = _nominal_functions(detector)
    out = {}
    for name, field_name in (("d0", D0_SCALE_FIELD), ("z0", Z0_SCALE_FIELD)):
        data: ResolutionFunction = getattr(calibration, name)
        ref: ResolutionFunction = getattr(calibration, f"reference_{name}")
        base = nominal[name].sigma_mm(x)
        if data.mapping == "core":  # the reference's core with the data's own tails: core ratio only
            ref = replace(ref, tail_fraction=data.tail_fraction, tail_scale=data.tail_scale)
        sigma = getattr(q, f"sigma_{name}")
        abs_ip = np.abs(getattr(q, name))
        g_data, g_ref = data.sigma_mm(x) / base, ref.sigma_mm(x) / base
        scale = map_pulls(abs_ip / sigma, g_data, g_ref, data, ref)
        out[field_name] = cap_shifts(scale, abs_ip, sigma * max_shift_widths(g_data, g_ref, data, ref))
    return out


#: A calibration moves a track's impact parameter by at most this many times the difference of the
#: data's and the reference's widths: 99.7% of prompt tracks (pulls within 3) are mapped exactly. A
#: track further out owes most of its impact parameter to a decay, which no resolution changes:
#: scaling it with the pulls shrank b and c decay lengths (in d0 and z0 unequally where only one
#: resolution differs, so that displaced tracks no longer met). Measured on 10k events per class
#: (scripts/robustness_checkpoint.py): with d0 alone 1.5x worse, the robust preset's c rejection at
#: 80% b went from 109 uncapped to 714 (uncalibrated 833); 2 and 5 widths did about as well as 3.
MAX_SHIFT_SIGMAS: float = 3.0


def max_shift_widths(g_data: np.ndarray, g_ref: np.ndarray, data: ResolutionFunction,
                     reference: ResolutionFunction) -> np.ndarray:
    """The most a track may move, in units of its reference width: ``MAX_SHIFT_SIGMAS`` times the
    difference of the cores' widths, or of the tails' where the tails are mapped."""
    widest = np.abs(g_data - g_ref)
    if data.mapping != "core" and (data.tail_fraction > 0.0 or reference.tail_fraction > 0.0):
        widest = np.maximum(widest, np.abs(data.tail_scale * g_data - reference.tail_scale * g_ref))
    return MAX_SHIFT_SIGMAS * widest


def cap_shifts(scale: np.ndarray, abs_ip_mm: np.ndarray, max_shift_mm: np.ndarray) -> np.ndarray:
    """Per-track scales ``|ip| / |ip'|`` with ``| |ip'| - |ip| |`` held to ``max_shift_mm``."""
    target = abs_ip_mm / scale
    moved = abs_ip_mm + np.clip(target - abs_ip_mm, -max_shift_mm, max_shift_mm)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(moved > 0.0, abs_ip_mm / moved, scale)


#: How a function calibration is applied: "positions" moves each track's reference point so that
#: its d0 / z0 become those the training detector would have measured with the same prompt
#: probability (every feature, lengths included, sees a training-like sample); "significances"
#: only divides the resolutions by the per-track scales (lengths stay as measured).
APPLY_MODES: tuple[str, ...] = ("positions", "significances")
DEFAULT_APPLY: str = "positions"


def apply_function_calibration(events: ak.Array, calibration: FunctionCalibration,
                               detector: DetectorModel | None = None, apply: str | None = None) -> ak.Array:
    """``events`` calibrated by ``calibration`` (see ``APPLY_MODES``; None: ``DEFAULT_APPLY``)."""
    apply = apply or DEFAULT_APPLY
    if apply not in APPLY_MODES:
        raise ValueError(f"a function calibration is applied to {' or '.join(APPLY_MODES)}, not {apply!r}")
    if apply == "positions":
        from flavortag.augment import shift_impact_parameters

        q = TrackQuantities(_nominal_events(events), detector)
        scales = track_scales(events, calibration, detector, q)
        # d0' = d0 / s: the significance under the nominal resolution becomes the mapped one
        return shift_impact_parameters(events, q, q.d0 * (1.0 / scales[D0_SCALE_FIELD] - 1.0),
                                       q.z0 * (1.0 / scales[Z0_SCALE_FIELD] - 1.0))
    scales = track_scales(events, calibration, detector)
    tracks = events["tracks"]
    counts = ak.num(tracks, axis=1)
    for name, flat in scales.items():
        tracks = ak.with_field(tracks, ak.unflatten(flat.astype(np.float32), counts), name)
    return ak.with_field(events, tracks, "tracks")


def fit_training_resolution(events: ak.Array, detector: DetectorModel) -> dict[str, Any] | None:
    """The resolution functions of a training sample (at most ``TRAINING_FIT_EVENTS`` events), as a
    plain dict for the model to carry; None (logged) when the sample is too small to fit."""
    if len(events) > TRAINING_FIT_EVENTS:
        pick = np.random.default_rng(11).choice(len(events), TRAINING_FIT_EVENTS, replace=False)
        events = events[np.sort(pick)]
    try:
        fit = fit_function_calibration(events, detector)
    except ResolutionFitError as err:
        log.warning("no training resolution function stored with the model: %s", err)
        return None
    log.info("training resolution: d0 a %.2f um b %.2f um GeV tail %.3f x%.1f; z0 a %.2f um b %.2f um GeV "
             "tail %.3f x%.1f", fit.d0.a_mm * 1e3, fit.d0.b_mm_gev * 1e3, fit.d0.tail_fraction,
             fit.d0.tail_scale, fit.z0.a_mm * 1e3, fit.z0.b_mm_gev * 1e3, fit.z0.tail_fraction,
             fit.z0.tail_scale)
    return fit.fitted_only().to_dict()


def training_resolution(model: Any) -> FunctionCalibration | None:
    """The resolution function stored with a tagger (None for taggers trained before it was stored)."""
    stored = getattr(model, "training_resolution", None)
    if not stored:
        return None
    return FunctionCalibration.from_dict(stored)
