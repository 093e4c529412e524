"""Impact-parameter resolution calibrated from the data themselves, without labels.

Two modes (``calibration=auto`` is the first):

* ``function`` (:class:`FunctionCalibration`): the resolution function
  ``a (+) b / (p sin^{3/2} theta)`` with a Gaussian core and a wider tail,
  fitted for d0 and z0 (:mod:`flavortag.resolution_function`), applied per
  track *relative to the tagger's training sample* (the function fitted on it
  is stored with the model: ``training_resolution``), so that a sample like
  the training one is left unchanged. ``calibration=function`` maps core and
  tails; ``calibration=core`` the core only; ``calibration=auto`` the tails
  too only where the sample has significantly more of them than training, and
  no wider ones (:func:`flavortag.resolution_function.choose_mapping`).
* ``scale`` (:class:`ResolutionCalibration`, the first calibration, kept for
  comparison): one overall scale of each resolution, per event;
  ``calibration=scale``.

The rest of this doc describes the ``scale`` mode.

The negative side of the lifetime-signed impact-parameter significance is made
almost only by resolution: prompt tracks get either sign with equal
probability, while tracks from b / c decays downstream of the primary vertex
get the positive sign (LEP / SLD b-tagging, LCFIPlus's joint probability are
calibrated this way). The width of the Gaussian core of that side, in units of
the nominal resolution, is the resolution scale of the sample. The nominal
resolution is each track's own ``sigma_d0`` / ``sigma_z0`` where the records
carry them (a real track fit), else the detector model's parametric one.

Fit (for d0 and for z0 separately): the lifetime tracks (``|d0| < 2 mm``,
``|z0| < 10 mm``, as the event features use) with a negative lifetime-signed
significance ``S``; ``|S|`` is a half-Gaussian of width ``s`` in its core, plus
tails from mis-signed decay tracks. A truncated half-Gaussian maximum
likelihood on ``|S| < k s`` (``k = CORE_SIGMAS``), iterated from the median
estimate, gives ``s`` and its statistical uncertainty; the same fit in bins of
``p sin^{3/2} theta`` shows the momentum dependence.

The calibration never reads the labels: the ``label`` field is dropped before
anything is computed. ``apply_calibration`` sets the per-event fields that
``flavortag.features.track`` divides the resolutions by, so every significance
feature (track and event level) uses the calibrated resolution.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from flavortag.calibration_function import (
    FunctionCalibration,
    apply_function_calibration,
    fit_function_calibration,
)
from flavortag.detector import DetectorModel
from flavortag.features.track import D0_SCALE_FIELD, Z0_SCALE_FIELD, TrackQuantities
from flavortag.resolution_function import PLAUSIBLE_RATIO, ResolutionFitError

#: The core of the negative side fitted: |S| below this many fitted widths.
CORE_SIGMAS: float = 2.0
#: Fewest negative-side lifetime tracks a fit accepts (about 250 Z-pole events):
#: the scale is then known to about 2 %.
MIN_TRACKS: int = 2000
#: Edges of the ``p sin^{3/2} theta`` bins (GeV) of the momentum-dependence table.
MOMENTUM_BIN_EDGES_GEV: tuple[float, ...] = (0.0, 1.0, 2.0, 5.0, math.inf)
LIFETIME_D0_MAX_MM: float = 2.0
LIFETIME_Z0_MAX_MM: float = 10.0


#: A sample that cannot be calibrated (too few tracks, an implausible fit), with the numbers.
CalibrationError = ResolutionFitError
#: What ``calibration=`` takes besides a file: none, auto, function, core, scale.
CALIBRATION_SPECS: tuple[str, ...] = ("none", "auto", "function", "core", "scale")
#: The specs fitted on the events scored (all but none).
FITTED_SPECS: tuple[str, ...] = CALIBRATION_SPECS[1:]


def _half_normal_core_moment(k: float) -> float:
    """E[x^2 | 0 <= x < k] for a unit half-normal x."""
    mass = math.erf(k / math.sqrt(2.0))
    density = math.exp(-0.5 * k * k) / math.sqrt(2.0 * math.pi)
    return 1.0 - 2.0 * k * density / mass


def fit_core_width(abs_sig: np.ndarray, k: float = CORE_SIGMAS, max_iter: int = 100) -> tuple[float, float, int]:
    """Width of the Gaussian core of half-Gaussian values ``abs_sig`` >= 0.

    Returns ``(width, statistical uncertainty, tracks in the core)``. Starts
    from ``median / 0.6745`` and iterates the truncated second-moment equation
    ``<x^2>_{x < k w} = w^2 m2(k)`` (the maximum-likelihood condition of a
    truncated half-Gaussian) to convergence.
    """
    x = np.asarray(abs_sig, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        raise CalibrationError("no tracks to fit")
    m2 = _half_normal_core_moment(k)
    width = max(float(np.median(x)) / 0.6744897501960817, 1e-12)
    for _ in range(max_iter):
        core = x[x < k * width]
        new = math.sqrt(float(np.mean(core**2)) / m2) if len(core) else width
        if abs(new - width) < 1e-7 * width:
            width = new
            break
        width = new
    core = x[x < k * width]
    x2 = core**2
    # delta method on w = sqrt(<x^2> / m2): dw / w = d<x^2> / (2 <x^2>)
    rel = math.sqrt(float(np.var(x2)) / len(x2)) / (2.0 * float(np.mean(x2))) if len(x2) > 1 else math.inf
    return width, width * rel, int(len(core))


@dataclass(frozen=True)
class ResolutionCalibration:
    """Fitted impact-parameter resolution scales of a sample (relative to the detector model)."""

    d0_scale: float
    d0_scale_error: float
    z0_scale: float
    z0_scale_error: float
    n_events: int
    n_tracks_d0: int
    n_tracks_z0: int
    detector: str = "ild"
    inputs: list[str] = field(default_factory=list)
    momentum_bins_gev: list[float] = field(default_factory=list)
    d0_scale_per_bin: list[float] = field(default_factory=list)
    z0_scale_per_bin: list[float] = field(default_factory=list)
    method: str = (f"truncated half-Gaussian fit (|S| < {CORE_SIGMAS} widths) of the negative "
                   "lifetime-signed significances of lifetime tracks; labels not read")

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON file, MLflow)."""
        out = asdict(self)
        out["momentum_bins_gev"] = [v if math.isfinite(v) else "inf" for v in self.momentum_bins_gev]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResolutionCalibration:
        """Inverse of ``to_dict``."""
        values = dict(data)
        values["momentum_bins_gev"] = [float(v) for v in values.get("momentum_bins_gev", [])]
        return cls(**values)

    def save(self, path: str | Path) -> Path:
        """Write the calibration as JSON (atomically); returns the path."""
        from flavortag.io.atomic import write_json

        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> ResolutionCalibration:
        """Read a calibration file written by ``save`` (``flavortag calibrate``)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no calibration file at {path}: make one with "
                                    f"`flavortag calibrate inputs=[...] out={path}`")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"{path}: not a flavortag calibration file ({exc})") from exc


def _negative_side(sig: np.ndarray, lifetime: np.ndarray) -> np.ndarray:
    return -sig[lifetime & (sig < 0.0)]


def calibrate_resolution(
    events: ak.Array,
    detector: DetectorModel | None = None,
    min_tracks: int = MIN_TRACKS,
    inputs: Sequence[str] = (),
) -> ResolutionCalibration:
    """Fit the d0 and z0 resolution scales of ``events`` (see the module doc); labels never read.

    Raises ``CalibrationError`` naming how many tracks the fit needs when the
    sample has fewer than ``min_tracks`` negative-side lifetime tracks.
    """
    detector = detector if detector is not None else DetectorModel()
    keep = [f for f in ak.fields(events) if f in ("tracks", "axis")]
    events = events[keep]  # no label, no earlier calibration: the nominal resolutions
    q = TrackQuantities(events, detector)
    lifetime = (np.abs(q.d0) < LIFETIME_D0_MAX_MM) & (np.abs(q.z0) < LIFETIME_Z0_MAX_MM)
    neg_d0 = _negative_side(q.signed_d0_sig, lifetime)
    neg_z0 = _negative_side(q.signed_z0_sig, lifetime)
    n_have = min(len(neg_d0), len(neg_z0))
    if n_have < min_tracks:
        per_event = n_have / max(len(events), 1)
        need = math.ceil(min_tracks / per_event) if per_event > 0 else None
        more = f" (about {need} events of this kind)" if need else ""
        raise CalibrationError(
            f"too few tracks to calibrate the resolution: {n_have} lifetime tracks with a negative "
            f"lifetime-signed significance in {len(events)} events; the fit needs at least "
            f"{min_tracks}{more}")
    d0_scale, d0_err, n_d0 = fit_core_width(neg_d0)
    z0_scale, z0_err, n_z0 = fit_core_width(neg_z0)
    lo, hi = PLAUSIBLE_RATIO
    for name, value in (("d0", d0_scale), ("z0", z0_scale)):
        if not lo <= value <= hi:
            hint = "; a generator-level (unsmeared) sample? score it with calibration=none" if value < lo else ""
            raise CalibrationError(f"calibration refused: the fitted {name} resolution scale {value:.3g} is "
                                   f"outside the plausible [{lo:.2f}, {hi:.2f}]{hint}")

    x = q.p * q.sin_theta**1.5
    edges = np.asarray(MOMENTUM_BIN_EDGES_GEV)
    per_bin: dict[str, list[float]] = {"d0": [], "z0": []}
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = lifetime & (x >= lo) & (x < hi)
        for name, sig in (("d0", q.signed_d0_sig), ("z0", q.signed_z0_sig)):
            values = -sig[in_bin & (sig < 0.0)]
            per_bin[name].append(fit_core_width(values)[0] if len(values) >= min_tracks // 10
                                 else math.nan)
    return ResolutionCalibration(
        d0_scale=d0_scale, d0_scale_error=d0_err, z0_scale=z0_scale, z0_scale_error=z0_err,
        n_events=len(events), n_tracks_d0=n_d0, n_tracks_z0=n_z0, detector=detector.name,
        inputs=[str(p) for p in inputs], momentum_bins_gev=[float(v) for v in edges],
        d0_scale_per_bin=per_bin["d0"], z0_scale_per_bin=per_bin["z0"])


Calibration = ResolutionCalibration | FunctionCalibration


def apply_calibration(events: ak.Array, calibration: Calibration | None,
                      detector: DetectorModel | None = None) -> ak.Array:
    """``events`` with the calibrated resolution scales attached (unchanged for ``None``).

    ``scale`` mode: one scale per event; ``function`` mode: one per track
    (``detector``: the tagger's resolution model).
    """
    if calibration is None:
        return events
    if isinstance(calibration, FunctionCalibration):
        return apply_function_calibration(events, calibration, detector)
    n = len(events)
    events = ak.with_field(events, np.full(n, calibration.d0_scale, dtype=np.float32), D0_SCALE_FIELD)
    return ak.with_field(events, np.full(n, calibration.z0_scale, dtype=np.float32), Z0_SCALE_FIELD)


def load_calibration(path: str | Path) -> Calibration:
    """A calibration file written by ``flavortag calibrate`` (either mode)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no calibration file at {path}: make one with "
                                f"`flavortag calibrate inputs=[...] out={path}`")
    try:
        data = json.loads(path.read_text())
        if data.get("mode") == "function":
            return FunctionCalibration.from_dict(data)
        return ResolutionCalibration.from_dict(data)
    except (json.JSONDecodeError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{path}: not a flavortag calibration file ({exc})") from exc


def resolve_calibration(
    spec: str | Calibration | None, events: ak.Array,
    detector: DetectorModel | None = None, min_tracks: int = MIN_TRACKS,
    reference: FunctionCalibration | None = None,
) -> Calibration | None:
    """The calibration an app's ``calibration=`` option (or a caller) asks for.

    ``None`` / ``"none"``: no calibration (nominal resolutions); ``"function"``:
    the resolution functions fitted on ``events`` themselves (labels not read;
    at least ``min_tracks`` negative-side tracks for each impact parameter),
    applied relative to ``reference`` (the tagger's training fit,
    :func:`flavortag.calibration_function.training_resolution`); ``"auto"``:
    the same, mapping each function's tails only where they exceed the
    reference's and are no wider (its core alone otherwise);
    ``"core"``: the same, with only the core widths mapped (tails left as measured);
    ``"scale"``: the overall-scale fit; a calibration object: itself (a
    function calibration made relative to ``reference``); anything else: the
    path of a file written by ``flavortag calibrate``. A fit too far from the
    reference is refused (:class:`CalibrationError`).
    """
    detector = detector if detector is not None else DetectorModel()
    if spec is None or str(spec) in ("", "none", "null"):
        return None
    if isinstance(spec, (ResolutionCalibration, FunctionCalibration)):
        calib: Calibration = spec
    elif str(spec) in ("auto", "function", "core"):
        calib = fit_function_calibration(events, detector, min_tracks=min_tracks)
    elif str(spec) == "scale":
        return calibrate_resolution(events, detector, min_tracks=min_tracks)
    else:
        calib = load_calibration(str(spec))
    if isinstance(calib, FunctionCalibration):
        return calib.relative_to(reference, detector, mapping=str(spec) if str(spec) in ("auto", "core")
                                 else "as fitted")
    return calib
