"""Cuts at fixed signal efficiency and background rejection with binomial errors.

See :mod:`flavortag.metrics` for the cut definition and the uncertainties.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from flavortag.metrics.inputs import validate_efficiencies

#: Signal efficiencies at which rejections are reported.
DEFAULT_EFFICIENCIES: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
#: Signal-efficiency grid of the rejection curves (0.005, 0.010, ..., 1.0).
DEFAULT_CURVE_EFFICIENCIES: np.ndarray = np.arange(1, 201) / 200.0


_LIMIT_CL = 0.95


def cut_at_efficiency(signal_scores: np.ndarray, efficiency: float | Iterable[float]) -> Any:
    """Cut on a score such that a fraction of at least ``efficiency`` of signal has ``score > cut``.

    The cut is the largest signal score value satisfying that (see the module
    docstring for ties). ``efficiency`` may be a scalar (returns a float) or
    an array (returns a float64 array of the same shape); values in (0, 1].
    Returns nan when there are no signal events.
    """
    e = validate_efficiencies(efficiency)
    s = np.sort(np.asarray(signal_scores, dtype=np.float64).ravel())
    if np.isnan(s).any():
        raise ValueError("signal scores contain nan")
    n = s.size
    if n == 0:
        cut = np.full(e.shape, np.nan)
    else:
        # events that must pass; round() absorbs float noise such as 0.7 * 10 = 7.000000000000001
        k = np.ceil(np.round(e * n, 9)).astype(np.int64)
        lowest_passing = s[n - k]
        first_tied = np.searchsorted(s, lowest_passing, side="left")
        cut = np.where(
            first_tied > 0,
            s[np.maximum(first_tied - 1, 0)],
            np.nextafter(lowest_passing, -np.inf),
        )
    return float(cut) if cut.ndim == 0 else cut


def binomial_rejection(n_pass: int, n_total: int) -> tuple[float, float]:
    """Rejection ``R = n_total / n_pass`` and its binomial error ``R**2 sqrt(eps (1 - eps) / n_total)``.

    Returns ``(inf, nan)`` when ``n_pass == 0`` and ``(nan, nan)`` when ``n_total == 0``.
    """
    if n_total <= 0:
        return math.nan, math.nan
    if n_pass <= 0:
        return math.inf, math.nan
    eps = n_pass / n_total
    sigma_eps = math.sqrt(eps * (1.0 - eps) / n_total)
    return 1.0 / eps, sigma_eps / eps**2


def _rejection_lower_limit(n_total: int, cl: float = _LIMIT_CL) -> float:
    """One-sided Clopper-Pearson lower limit on the rejection when 0 of n_total pass."""
    eps_upper = -math.expm1(math.log(1.0 - cl) / n_total)
    return 1.0 / eps_upper


@dataclass(frozen=True)
class BackgroundRejection:
    """How one background fares at one cut.

    ``background`` is the flavour ("uds", "c" or "b"); ``mistag = n_pass /
    n_total`` (fraction passing ``D > cut``) with binomial error
    ``mistag_err``; ``rejection = 1 / mistag`` with ``rejection_err``.
    ``rejection`` is inf (error nan) when no event passes, and then
    ``rejection_lower_limit`` is the 95% CL lower limit (None otherwise).
    """

    background: str
    n_total: int
    n_pass: int
    mistag: float
    mistag_err: float
    rejection: float
    rejection_err: float
    rejection_lower_limit: float | None = None

    @classmethod
    def from_counts(cls, background: str, n_pass: int, n_total: int) -> BackgroundRejection:
        """Build from pass/total counts with the binomial formulas of the module docstring."""
        if n_total > 0:
            mistag = n_pass / n_total
            mistag_err = math.sqrt(mistag * (1.0 - mistag) / n_total)
        else:
            mistag = mistag_err = math.nan
        rejection, rejection_err = binomial_rejection(n_pass, n_total)
        limit = _rejection_lower_limit(n_total) if n_total > 0 and n_pass == 0 else None
        return cls(background, int(n_total), int(n_pass), mistag, mistag_err,
                   rejection, rejection_err, limit)


@dataclass(frozen=True)
class WorkingPoint:
    """A cut on a tagger's discriminant at a target signal efficiency.

    ``efficiency`` is the target, ``signal_efficiency`` the measured fraction
    of the ``n_signal`` signal events with ``D > cut``; ``backgrounds`` maps
    each background flavour to its :class:`BackgroundRejection`.
    """

    tagger: str
    efficiency: float
    cut: float
    signal_efficiency: float
    n_signal: int
    backgrounds: dict[str, BackgroundRejection]


@dataclass(frozen=True)
class RejectionCurve:
    """Background rejection versus signal efficiency of one tagger, for plots.

    ``efficiency`` is the target grid, ``signal_efficiency`` the measured
    signal efficiency at each grid cut (equal up to 1/n_signal without ties);
    ``rejection[flavour]`` and ``rejection_err[flavour]`` are arrays on that
    grid (inf / nan where no background event passes).
    """

    tagger: str
    signal: str
    efficiency: np.ndarray
    signal_efficiency: np.ndarray
    rejection: dict[str, np.ndarray]
    rejection_err: dict[str, np.ndarray]
    n_signal: int
    n_background: dict[str, int]
    fraction: float | None = None


def _pass_counts(sorted_scores: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Number of entries of ``sorted_scores`` strictly above each cut."""
    return sorted_scores.size - np.searchsorted(sorted_scores, cuts, side="right")


def rejection_at_efficiency(
    signal_scores: np.ndarray,
    background_scores: np.ndarray,
    efficiencies: float | Iterable[float] = DEFAULT_EFFICIENCIES,
    background: str = "bkg",
    tagger: str = "",
) -> list[WorkingPoint]:
    """Rejection of one background at each target signal efficiency.

    Generic in the score: pass any discriminant values of signal and
    background events. Returns one :class:`WorkingPoint` per efficiency (in
    the given order) whose ``backgrounds`` has the single key ``background``.
    """
    e = np.atleast_1d(validate_efficiencies(efficiencies))
    sig = np.sort(np.asarray(signal_scores, dtype=np.float64).ravel())
    bkg = np.sort(np.asarray(background_scores, dtype=np.float64).ravel())
    cuts = np.atleast_1d(cut_at_efficiency(sig, e))
    points = []
    for i in range(e.size):
        if sig.size:
            signal_efficiency = float(_pass_counts(sig, cuts[i]) / sig.size)
            rej = BackgroundRejection.from_counts(background, int(_pass_counts(bkg, cuts[i])), bkg.size)
        else:  # no signal: no cut, nothing measured
            signal_efficiency = math.nan
            rej = BackgroundRejection(background, bkg.size, 0, *([math.nan] * 4))
        points.append(WorkingPoint(tagger, float(e[i]), float(cuts[i]), signal_efficiency,
                                   int(sig.size), {background: rej}))
    return points


def rejection_curve(
    signal_scores: np.ndarray,
    background_scores: Mapping[str, np.ndarray],
    efficiencies: np.ndarray = DEFAULT_CURVE_EFFICIENCIES,
    tagger: str = "",
    signal: str = "signal",
    fraction: float | None = None,
) -> RejectionCurve:
    """Rejection of each background (``{flavour: scores}``) on a grid of signal efficiencies.

    ``tagger``, ``signal`` and ``fraction`` (f_c / f_b of the discriminant)
    are only recorded on the curve, for plot labels.
    """
    e = np.atleast_1d(validate_efficiencies(efficiencies))
    sig = np.sort(np.asarray(signal_scores, dtype=np.float64).ravel())
    cuts = np.atleast_1d(cut_at_efficiency(sig, e))
    with np.errstate(divide="ignore", invalid="ignore"):
        sig_eff = _pass_counts(sig, cuts) / sig.size if sig.size else np.full(e.shape, np.nan)
    rejection, rejection_err, n_background = {}, {}, {}
    for name, scores in background_scores.items():
        bkg = np.sort(np.asarray(scores, dtype=np.float64).ravel())
        n = bkg.size
        n_background[name] = int(n)
        if n == 0 or sig.size == 0:
            rejection[name] = np.full(e.shape, np.nan)
            rejection_err[name] = np.full(e.shape, np.nan)
            continue
        eps = _pass_counts(bkg, cuts) / n
        with np.errstate(divide="ignore", invalid="ignore"):
            rej = 1.0 / eps
            err = np.sqrt(eps * (1.0 - eps) / n) / eps**2
        rejection[name] = rej
        rejection_err[name] = np.where(eps > 0, err, np.nan)
    return RejectionCurve(tagger, signal, e, sig_eff, rejection, rejection_err,
                          int(sig.size), n_background, fraction)
