"""The impact-parameter resolution function of a sample, fitted without labels, and its use per track.

Model (for d0 and for z0 separately; ``x = p sin^{3/2} theta`` in GeV): a
prompt track's impact parameter is drawn from a Gaussian core of width

    sigma(x) = a (+) b / x        (mm; ``(+)``: in quadrature, as ``DetectorModel``)

plus, with probability ``tail_fraction``, a wider Gaussian of ``tail_scale``
times that width (in the spirit of LCFIPlus's resolution function, whose core
is followed by wider tails). Tracks that carry their own measured uncertainty
(``sigma_d0`` / ``sigma_z0``, EDM4hep) are described relative to it: their
width is ``sigma_measured * sigma(x) / sigma_nominal(x)`` (``sigma_nominal`` the
detector model's function), so ``a`` and ``b`` are always the effective
constants of the sample.

Fit: the lifetime tracks (``|d0| < 2 mm``, ``|z0| < 10 mm``) with a negative
lifetime-signed significance (made by resolution alone, up to mis-signed decay
tracks, which the tail absorbs); the unbinned maximum likelihood of ``|d0|``
(``|z0|``) under the model, truncated at ``|S| < MAX_SIGNIFICANCE`` (in units of
the track's reference width) so that the few V0 daughters do not pull the tail,
gives ``a, b, tail_fraction, tail_scale`` and their errors (the inverse of the
numerical Hessian). Labels are never read.

Per track (:func:`track_scales`): the significance ``S`` of each track under
the data's function is turned into the significance it would have under a
*reference* function (the one fitted on the tagger's own training sample) with
the same prompt-probability: ``R_ref(S') = R_data(S)``, ``R`` the two-sided
tail probability of the core + tail model. Without tails this is the ratio of
widths ``sigma_data(x) / sigma_ref(x)``; the tail part maps a sample with more
tails onto the tails the tagger was trained with (``calibration=auto`` does that
only where the data have *more* tails than the reference, and no wider ones:
:func:`choose_mapping`).
The result is handed to the
features as a per-track resolution scale ``S / S'`` (``flavortag.features``
divide the resolution by it), so every significance and every prompt
probability uses it. On the training sample itself the scale is 1.

numpy + scipy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

#: |S| (in units of each track's reference width) above which negative-side tracks are not fitted.
MAX_SIGNIFICANCE: float = 30.0
#: Free parameters of one resolution function (a, b, tail fraction, tail scale).
N_PARAMETERS: int = 4
#: Negative-side tracks needed per free parameter of a fit.
MIN_TRACKS_PER_PARAMETER: int = 500
#: Plausible range of a fitted core width relative to the reference (training or nominal).
PLAUSIBLE_RATIO: tuple[float, float] = (1.0 / 3.0, 4.0)
#: Values of ``x = p sin^{3/2} theta`` (GeV) where the plausibility is checked.
CHECK_X_GEV: tuple[float, ...] = (0.5, 2.0, 10.0)
#: An impact parameter below this fraction of its reference width counts as exact (unsmeared) ...
EXACT_FRACTION_OF_WIDTH: float = 0.01
#: ... and more than this fraction of exact ones is refused (a Gaussian core gives 0.008).
MAX_EXACT_FRACTION: float = 0.2
#: Bounds of the fit: tail fraction, tail scale.
TAIL_FRACTION_MAX: float = 0.5
TAIL_SCALE_RANGE: tuple[float, float] = (1.5, 30.0)
#: Bounds of a and b in mm (0.1 um to 1 mm).
AB_RANGE_MM: tuple[float, float] = (1e-4, 1.0)
#: ``calibration=auto`` maps a sample's tails onto the reference's only where its tail fraction
#: exceeds the reference's by more than this many standard errors (see :func:`choose_mapping`).
TAIL_EXCESS_SIGMAS: float = 3.0


class ResolutionFitError(ValueError):
    """A resolution function that cannot be fitted or is implausible, with the numbers."""


@dataclass(frozen=True)
class ResolutionFunction:
    """Core width ``a (+) b / x`` (mm) plus a wider Gaussian (fraction, scale) of one impact parameter."""

    a_mm: float
    b_mm_gev: float
    tail_fraction: float = 0.0
    tail_scale: float = 3.0
    a_mm_error: float = math.nan
    b_mm_gev_error: float = math.nan
    tail_fraction_error: float = math.nan
    tail_scale_error: float = math.nan
    n_tracks: int = 0
    #: what a calibration maps onto the reference: "function" (core and tails) or "core" (the core only)
    mapping: str = "function"
    #: (tail fraction - the reference's) / its standard error, where ``choose_mapping`` chose
    tail_excess_sigmas: float = math.nan

    def sigma_mm(self, x_gev: np.ndarray) -> np.ndarray:
        """Core width (mm) at ``x = p sin^{3/2} theta``."""
        x = np.maximum(np.asarray(x_gev, dtype=np.float64), 1e-6)
        return np.hypot(self.a_mm, self.b_mm_gev / x)

    def log_tail_probability(self, u: np.ndarray) -> np.ndarray:
        """ln P(|pull| >= u) for a prompt track, ``u`` in units of the core width."""
        from scipy.special import log_ndtr

        u = np.abs(np.asarray(u, dtype=np.float64))
        core = math.log(2.0) + log_ndtr(-u)
        if self.tail_fraction <= 0.0:
            return np.asarray(core)
        tail = math.log(2.0) + log_ndtr(-u / self.tail_scale)
        return np.logaddexp(math.log1p(-self.tail_fraction) + core, math.log(self.tail_fraction) + tail)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON, checkpoints)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResolutionFunction:
        """Inverse of ``to_dict`` (None -> nan)."""
        values: dict[str, Any] = {k: (math.nan if v is None else v) for k, v in dict(data).items()}
        return cls(**values)


def nominal_function(a_mm: float, b_mm_gev: float) -> ResolutionFunction:
    """A pure Gaussian resolution function (no tail): the detector model's."""
    return ResolutionFunction(a_mm=a_mm, b_mm_gev=b_mm_gev, tail_fraction=0.0)


def _negative_log_likelihood(params: np.ndarray, abs_ip: np.ndarray, ref_over_nominal: np.ndarray,
                             inv_x2: np.ndarray, s_max_width: np.ndarray) -> float:
    """-ln L of |ip| (mm) under the truncated core + tail model (``params``: a, b in um, fraction, scale).

    Per track: ``ref_over_nominal`` (reference width over the nominal function),
    ``inv_x2`` (1 / x^2), ``s_max_width`` (the truncation in mm: ``MAX_SIGNIFICANCE`` x reference width).
    """
    from scipy.special import erf

    a, b, frac, tail = params
    width = ref_over_nominal * np.sqrt((a * 1e-3) ** 2 + (b * 1e-3) ** 2 * inv_x2)  # mm
    z = abs_ip / width
    z2 = z * z
    core = np.exp(-0.5 * z2)
    tail_pdf = np.exp(-0.5 * z2 / (tail * tail)) / tail
    pdf = (1.0 - frac) * core + frac * tail_pdf
    z_max = s_max_width / width * _INV_SQRT2
    norm = (1.0 - frac) * erf(z_max) + frac * erf(z_max / tail)
    return float(-np.sum(np.log(np.maximum(pdf, 1e-300)) - np.log(width) - np.log(np.maximum(norm, 1e-300))))


_INV_SQRT2 = 1.0 / math.sqrt(2.0)


def fit_resolution_function(
    abs_ip_mm: np.ndarray, reference_mm: np.ndarray, x_gev: np.ndarray, nominal: ResolutionFunction,
    min_tracks: int = N_PARAMETERS * MIN_TRACKS_PER_PARAMETER, what: str = "d0",
) -> ResolutionFunction:
    """Fit ``a, b, tail_fraction, tail_scale`` to the negative-side |d0| (or |z0|) of prompt-like tracks.

    ``abs_ip_mm``: |impact parameter| of the negative-side tracks (mm);
    ``reference_mm``: each track's reference width (measured sigma where the
    track has one, else ``nominal.sigma_mm(x)``); ``x_gev``: ``p sin^{3/2}
    theta``; ``nominal``: the detector model's function (``a``, ``b`` of the
    reference). Raises :class:`ResolutionFitError` for fewer than
    ``min_tracks`` tracks, naming the numbers.
    """
    from scipy.optimize import minimize

    abs_ip = np.abs(np.asarray(abs_ip_mm, dtype=np.float64))
    ref = np.asarray(reference_mm, dtype=np.float64)
    x = np.asarray(x_gev, dtype=np.float64)
    keep = np.isfinite(abs_ip) & np.isfinite(ref) & (ref > 0) & np.isfinite(x) & (abs_ip < MAX_SIGNIFICANCE * ref)
    abs_ip, ref, x = abs_ip[keep], ref[keep], x[keep]
    if len(abs_ip) < min_tracks:
        raise ResolutionFitError(
            f"too few tracks to fit the {what} resolution function: {len(abs_ip)} negative-side lifetime "
            f"tracks; its {N_PARAMETERS} parameters (a, b, tail fraction, tail scale) need at least "
            f"{min_tracks} ({min_tracks // N_PARAMETERS} per parameter)")
    # start: the nominal constants scaled by the median pull, a 5% tail three times wider
    pull = abs_ip / ref
    start_scale = max(float(np.median(pull)) / 0.6744897501960817, 1e-3)
    lo, hi = AB_RANGE_MM[0] * 1e3, AB_RANGE_MM[1] * 1e3
    start = np.array([np.clip(nominal.a_mm * 1e3 * start_scale, lo, hi),
                      np.clip(nominal.b_mm_gev * 1e3 * start_scale, lo, hi), 0.05, 3.0])
    bounds = [(lo, hi), (lo, hi), (0.0, TAIL_FRACTION_MAX), TAIL_SCALE_RANGE]

    ref_over_nominal = ref / nominal.sigma_mm(x)
    inv_x2 = 1.0 / np.maximum(x, 1e-6) ** 2
    s_max_width = MAX_SIGNIFICANCE * ref

    def nll(p: np.ndarray) -> float:
        return _negative_log_likelihood(p, abs_ip, ref_over_nominal, inv_x2, s_max_width)

    best = minimize(nll, start, method="L-BFGS-B", bounds=bounds)
    params = np.asarray(best.x, dtype=np.float64)
    errors = _hessian_errors(nll, params, bounds)
    return ResolutionFunction(
        a_mm=float(params[0]) * 1e-3, b_mm_gev=float(params[1]) * 1e-3,
        tail_fraction=float(params[2]), tail_scale=float(params[3]),
        a_mm_error=errors[0] * 1e-3, b_mm_gev_error=errors[1] * 1e-3,
        tail_fraction_error=errors[2], tail_scale_error=errors[3], n_tracks=int(len(abs_ip)))


def _hessian_errors(nll: Any, params: np.ndarray, bounds: list[tuple[float, float]]) -> list[float]:
    """Standard errors from the inverse numerical Hessian of ``nll`` at ``params`` (nan if singular)."""
    n = len(params)
    step = np.maximum(np.abs(params) * 1e-3, 1e-6)
    centre = params.copy()
    for i, (lo, hi) in enumerate(bounds):  # keep the stencil inside the bounds
        centre[i] = min(max(centre[i], lo + 2 * step[i]), hi - 2 * step[i])
    hess = np.zeros((n, n))
    f0 = nll(centre)
    for i in range(n):
        for j in range(i, n):
            ei, ej = np.eye(n)[i] * step[i], np.eye(n)[j] * step[j]
            if i == j:
                value = (nll(centre + ei) - 2 * f0 + nll(centre - ei)) / step[i] ** 2
            else:
                value = (nll(centre + ei + ej) - nll(centre + ei - ej) - nll(centre - ei + ej)
                         + nll(centre - ei - ej)) / (4 * step[i] * step[j])
            hess[i, j] = hess[j, i] = value
    try:
        cov = np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        return [math.nan] * n
    diag = np.diag(cov)
    return [float(math.sqrt(v)) if v > 0 else math.nan for v in diag]


def check_smeared(abs_ip_mm: np.ndarray, reference_mm: np.ndarray, what: str = "d0") -> None:
    """Refuse an unsmeared (generator-level) sample: its prompt tracks start exactly at the vertex.

    ``abs_ip_mm`` / ``reference_mm``: all lifetime tracks (either sign: an
    exact 0 counts as positive). A Gaussian puts 0.8% of the tracks below 1%
    of its width; more than ``MAX_EXACT_FRACTION`` is refused.
    """
    abs_ip = np.abs(np.asarray(abs_ip_mm, dtype=np.float64))
    if len(abs_ip) == 0:
        return
    exact = float(np.mean(abs_ip < EXACT_FRACTION_OF_WIDTH * np.asarray(reference_mm, dtype=np.float64)))
    if exact > MAX_EXACT_FRACTION:
        raise ResolutionFitError(
            f"calibration refused: {100 * exact:.0f}% of the {len(abs_ip)} {what} values are below "
            f"{EXACT_FRACTION_OF_WIDTH:g} of the resolution (a Gaussian has 0.8%): a generator-level "
            "(unsmeared) sample? score it with calibration=none")


def check_plausible(data: ResolutionFunction, reference: ResolutionFunction, what: str = "d0") -> None:
    """Refuse a fitted function whose core width is far from the reference's (see ``PLAUSIBLE_RATIO``)."""
    x = np.asarray(CHECK_X_GEV)
    ratio = data.sigma_mm(x) / reference.sigma_mm(x)
    lo, hi = PLAUSIBLE_RATIO
    bad = np.flatnonzero(~((ratio >= lo) & (ratio <= hi)))
    if len(bad):
        k = int(bad[0])
        hint = ("; a generator-level (unsmeared) sample? score it with calibration=none"
                if ratio[k] < lo else "")
        raise ResolutionFitError(
            f"calibration refused: the fitted {what} resolution is {ratio[k]:.3g} times the reference's at "
            f"p sin^3/2 theta = {x[k]:g} GeV, outside the plausible [{lo:.2f}, {hi:.2f}]{hint}")


def choose_mapping(data: ResolutionFunction, reference: ResolutionFunction,
                   x_gev: float = 2.0) -> ResolutionFunction:
    """``data`` marked to map its tails onto ``reference``'s only where it has significantly more detector tails.

    The negative side's tail is mostly physics: heavy-flavour and V0 decay
    tracks given the wrong sign, displaced by the same millimetres whatever
    the resolution. Where the resolution alone changes, that tail keeps its
    fraction (it narrows in units of a wider core) and mapping it tail onto
    tail would inflate the significance of every moderately displaced track
    (measured: the BDT on a 1.5x resolution keeps 0.46 of its uds rejection at
    50% c with the tails mapped, 0.69 with the core only). Tails the detector
    adds (non-Gaussian hits, pattern recognition) raise the fraction: mapped
    there, the same BDT keeps 0.21 on a 10% x4 tail sample, against 0.08 with
    the core only. Those detector tails are a few core widths wide, inside the
    physics tail (about 12 core widths at the Z pole), so they make the fitted
    tail narrower in millimetres. Tracks beyond it, fake tracks or more heavy
    flavour than in training, raise the fraction too but make the tail wider:
    they are not resolution, and mapping them would shrink every displaced
    track (measured: the augmented tuned transformer on 0.5 fakes per event
    keeps c rejection 114 at 80% b with the tails mapped, 233 with the core
    only). So: ``mapping="function"`` where ``(f_data - f_ref) / sigma >
    TAIL_EXCESS_SIGMAS`` and the tail is not wider in millimetres than the
    reference's at ``x_gev`` (``p sin^{3/2} theta``, the sample's median), else ``"core"``.
    """
    excess = data.tail_fraction - reference.tail_fraction
    error = math.hypot(*(e if math.isfinite(e) else 0.0
                         for e in (data.tail_fraction_error, reference.tail_fraction_error)))
    sigmas = excess / error if error > 0 else (math.inf if excess > 0 else 0.0)
    x = np.asarray([x_gev])
    wider = data.tail_scale * data.sigma_mm(x)[0] > reference.tail_scale * reference.sigma_mm(x)[0]
    mapping = "function" if sigmas > TAIL_EXCESS_SIGMAS and not wider else "core"
    return replace(data, mapping=mapping, tail_excess_sigmas=float(sigmas))


def _inverse_log_tail(fn: ResolutionFunction, log_p: np.ndarray) -> np.ndarray:
    """The pull ``u >= 0`` with ``ln P(|pull| >= u) = log_p`` under ``fn`` (monotone table, interpolated)."""
    if fn.tail_fraction <= 0.0:
        from scipy.special import ndtri_exp

        # 2 Phi(-u) = p  ->  u = -Phi^{-1}(p / 2)
        return np.maximum(-ndtri_exp(np.asarray(log_p) - math.log(2.0)), 0.0)
    grid = np.concatenate([[0.0], np.geomspace(1e-6, 1e8, 6000)])  # steps of 0.5%
    log_r = fn.log_tail_probability(grid)  # decreasing
    return np.interp(-np.asarray(log_p), -log_r, grid)


def map_pulls(s: np.ndarray, g_data: np.ndarray, g_ref: np.ndarray,
              data: ResolutionFunction, reference: ResolutionFunction) -> np.ndarray:
    """Per-track scale ``S / S'`` that turns significances ``s`` under the data into the reference's.

    ``s``: |significance| in units of each track's reference width (measured or
    nominal); ``g_data`` / ``g_ref``: the core widths of the data's and of the
    reference function relative to that width, per track. ``S'`` has under the
    reference the prompt-probability that ``S`` has under the data.
    """
    u_data = np.maximum(np.abs(s) / g_data, 1e-6)
    same_tails = (data.tail_fraction, data.tail_scale) == (reference.tail_fraction, reference.tail_scale)
    if same_tails or (data.tail_fraction <= 0.0 and reference.tail_fraction <= 0.0):
        return np.asarray(g_data / g_ref)
    u_ref = _inverse_log_tail(reference, data.log_tail_probability(u_data))
    u_ref = np.maximum(u_ref, 1e-12)
    return np.asarray((u_data * g_data) / (u_ref * g_ref))
