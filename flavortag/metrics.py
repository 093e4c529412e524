"""Performance metrics of a three-class flavour tagger (uds / cc / bb).

Everything here works on plain numpy arrays of predictions: ``probs`` of shape
``[n_events, 3]`` (softmax outputs in the fixed class order 0 uds, 1 cc, 2 bb,
rows summing to 1) and integer ``labels`` of shape ``[n_events]``. No torch.

What is computed
----------------
- accuracy (arg-max prediction), log loss, confusion matrix (counts and
  row-normalised: row = true class), one-vs-rest ROC AUC per class;
- the b- and c-tagging discriminants

  ``D_b = ln( p_b / (f_c p_c + (1 - f_c) p_uds) )``
  ``D_c = ln( p_c / (f_b p_b + (1 - f_b) p_uds) )``

  computed in float64 with every probability clipped to at least
  :data:`PROB_FLOOR` = 1e-12 (so ``|D| <= ~28`` and never inf/nan);
- the background rejection ``R = 1 / mistag`` of each background at fixed
  signal efficiencies, with binomial uncertainties, and rejection-versus-
  efficiency curves for plots;
- working points: the discriminant cut of each tagger at each efficiency,
  as a JSON-serialisable dict an analysis can apply
  (:func:`working_points`, :func:`apply_working_point`).

Default background fractions
----------------------------
With balanced training classes, ``p_k / p_j`` estimates the likelihood ratio
``L_k / L_j``, so ``D_b`` is the Neyman-Pearson optimal statistic for
separating b from a background that contains c and uds in the proportion
``f_c : (1 - f_c)``. The defaults take that proportion from hadronic Z decays,
the process these samples simulate (PDG: R_b = 0.2163, R_c = 0.1721,
R_uds = 0.6116):
``f_c = R_c / (R_c + R_uds) = 0.22`` and ``f_b = R_b / (R_b + R_uds) = 0.26``.
A model trained with unbalanced classes, or an analysis whose background is
dominated by one flavour, should pass its own values; a working-point file
records the fraction it was made with, and cuts are only valid for that value.

Cut definition (signal efficiency -> cut)
-----------------------------------------
An event *passes* when ``D > cut`` (strictly). For a target efficiency ``e``
the cut is the largest signal discriminant value ``c`` such that the fraction
of signal events with ``D > c`` is at least ``e`` (a lower empirical
``(1 - e)``-quantile). Without ties exactly ``k = ceil(e * n_signal)`` signal
events pass, so the measured efficiency lies in ``[e, e + 1/n_signal)``.
Signal events tied at the boundary all pass together (so the measured
efficiency can exceed ``e`` by more, e.g. 100% for a perfect classifier whose
signal scores all coincide); if even the lowest signal value must pass, the
cut is the next float below it. The measured efficiency is always reported
next to the target.

Uncertainties
-------------
The mistag rate ``eps = n_pass / n_bkg`` gets the binomial error
``sigma_eps = sqrt(eps (1 - eps) / n_bkg)`` and the rejection ``R = 1 / eps``
the propagated ``sigma_R = sigma_eps / eps**2 = R**2 sigma_eps`` (background
statistics only; the fluctuation of the cut from the finite signal sample is
not included). When no background event passes, ``R = inf``, its error is
nan, and ``rejection_lower_limit`` holds the one-sided 95% CL Clopper-Pearson
lower limit ``1 / (1 - 0.05**(1/n_bkg))`` (about ``n_bkg / 3``).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sklearn.metrics import confusion_matrix as _sk_confusion_matrix
from sklearn.metrics import roc_auc_score, roc_curve

from flavortag.classes import BB, CC, CLASS_NAMES, N_CLASSES, UDS

__all__ = [
    "DEFAULT_CURVE_EFFICIENCIES",
    "DEFAULT_EFFICIENCIES",
    "DEFAULT_F_B",
    "DEFAULT_F_C",
    "DEFAULT_TABLE_METRICS",
    "FLAVOUR",
    "PROB_FLOOR",
    "TAGGERS",
    "WORKING_POINTS_FORMAT",
    "BackgroundRejection",
    "EvaluationResult",
    "RejectionCurve",
    "TaggerResult",
    "WorkingPoint",
    "accuracy",
    "apply_working_point",
    "auc_one_vs_rest",
    "binomial_rejection",
    "confusion_matrix",
    "cut_at_efficiency",
    "discriminant",
    "discriminant_b",
    "discriminant_c",
    "evaluate_predictions",
    "format_comparison_table",
    "log_loss",
    "rejection_at_efficiency",
    "rejection_curve",
    "working_points",
    "write_comparison_csv",
]

#: Probabilities are clipped to at least this value before taking logs.
PROB_FLOOR: float = 1e-12
#: c fraction of the non-b background in hadronic Z decays, R_c / (R_c + R_uds).
DEFAULT_F_C: float = 0.22
#: b fraction of the non-c background in hadronic Z decays, R_b / (R_b + R_uds).
DEFAULT_F_B: float = 0.26
#: Signal efficiencies at which rejections are reported.
DEFAULT_EFFICIENCIES: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
#: Signal-efficiency grid of the rejection curves (0.005, 0.010, ..., 1.0).
DEFAULT_CURVE_EFFICIENCIES: np.ndarray = np.arange(1, 201) / 200.0
#: Short flavour name of each class index, used in tagger and metric names.
FLAVOUR: dict[int, str] = {UDS: "uds", CC: "c", BB: "b"}
#: tagger name -> (signal class, background classes in reporting order).
TAGGERS: dict[str, tuple[int, tuple[int, ...]]] = {
    "b": (BB, (CC, UDS)),
    "c": (CC, (BB, UDS)),
}
_FRACTION_NAME = {"b": "f_c", "c": "f_b"}
_FORMULA = {
    "b": "D_b = ln(p_b / (f_c * p_c + (1 - f_c) * p_uds))",
    "c": "D_c = ln(p_c / (f_b * p_b + (1 - f_b) * p_uds))",
}
_LIMIT_CL = 0.95
WORKING_POINTS_FORMAT: str = "flavortag.working_points/1"


# --------------------------------------------------------------------------- inputs


def _check_probs(probs: np.ndarray) -> np.ndarray:
    """Return ``probs`` as float64 [n, 3], raising ``ValueError`` when it is not."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != N_CLASSES:
        raise ValueError(
            f"probs must have shape [n_events, {N_CLASSES}] (classes {CLASS_NAMES}), got {p.shape}"
        )
    if not np.all(np.isfinite(p)):
        raise ValueError("probs contain nan or inf")
    if p.size and (p.min() < 0 or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3)):
        raise ValueError(
            "probs must be probabilities (non-negative, rows summing to 1); "
            "apply a softmax to model logits first"
        )
    return p


def _check_labels(labels: np.ndarray, n: int | None = None) -> np.ndarray:
    """Return ``labels`` as int64 [n], raising ``ValueError`` on bad shape or values."""
    y = np.asarray(labels)
    if y.ndim != 1 or (n is not None and y.shape[0] != n):
        raise ValueError(f"labels must have shape [{n if n is not None else 'n'}], got {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.mod(y, 1) == 0):
            raise ValueError("labels must be integer class indices")
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= N_CLASSES):
        raise ValueError(f"labels must be in 0..{N_CLASSES - 1} ({CLASS_NAMES}), got {np.unique(y)}")
    return y


def _check_efficiencies(efficiencies: float | Iterable[float]) -> np.ndarray:
    e = np.asarray(efficiencies, dtype=np.float64)
    if np.any(~np.isfinite(e)) or np.any(e <= 0) or np.any(e > 1):
        raise ValueError(f"signal efficiencies must lie in (0, 1], got {efficiencies}")
    return e


def _check_tagger(tagger: str) -> str:
    if tagger not in TAGGERS:
        raise ValueError(f"unknown tagger {tagger!r}; use one of {sorted(TAGGERS)}")
    return tagger


# --------------------------------------------------------------------------- basic metrics


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of events whose arg-max class equals the label (nan for no events)."""
    p = _check_probs(probs)
    y = _check_labels(labels, len(p))
    return float(np.mean(p.argmax(axis=1) == y)) if len(y) else math.nan


def log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood ``-<ln p_label>`` (natural log, probabilities clipped at 1e-12)."""
    p = _check_probs(probs)
    y = _check_labels(labels, len(p))
    if not len(y):
        return math.nan
    loss = float(-np.mean(np.log(np.maximum(p[np.arange(len(y)), y], PROB_FLOOR))))
    return loss + 0.0  # -0.0 (a perfect classifier) -> 0.0


def confusion_matrix(
    probs: np.ndarray, labels: np.ndarray, normalize: bool = False
) -> np.ndarray:
    """Confusion matrix ``[true class, predicted class]`` in class order uds, cc, bb.

    Returns int64 counts, or with ``normalize=True`` float64 rows that sum to 1
    (the fraction of each true class predicted as each class; a class absent
    from ``labels`` gives a row of zeros).
    """
    p = _check_probs(probs)
    y = _check_labels(labels, len(p))
    counts = _sk_confusion_matrix(y, p.argmax(axis=1), labels=list(range(N_CLASSES)))
    counts = counts.astype(np.int64)
    if not normalize:
        return counts
    rows = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)


def auc_one_vs_rest(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """ROC AUC of each class against the other two, scored by that class's probability.

    Returns ``{"uds": auc, "cc": auc, "bb": auc}``; nan for a class that is
    absent from ``labels`` or is the only one present.
    """
    p = _check_probs(probs)
    y = _check_labels(labels, len(p))
    out: dict[str, float] = {}
    for k, name in enumerate(CLASS_NAMES):
        is_k = y == k
        out[name] = float(roc_auc_score(is_k, p[:, k])) if 0 < is_k.sum() < len(y) else math.nan
    return out


def _roc_one_vs_rest(p: np.ndarray, y: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for k, name in enumerate(CLASS_NAMES):
        is_k = y == k
        if 0 < is_k.sum() < len(y):
            fpr, tpr, _ = roc_curve(is_k, p[:, k], drop_intermediate=True)
            out[name] = (fpr, tpr)
    return out


# --------------------------------------------------------------------------- discriminants


def _log_ratio(p: np.ndarray, signal: int, bkg_main: int, fraction: float) -> np.ndarray:
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"background fraction must lie in [0, 1], got {fraction}")
    q = np.maximum(p, PROB_FLOOR)
    denominator = fraction * q[:, bkg_main] + (1.0 - fraction) * q[:, UDS]
    return np.log(q[:, signal]) - np.log(denominator)


def discriminant_b(probs: np.ndarray, f_c: float = DEFAULT_F_C) -> np.ndarray:
    """b-tagging discriminant ``D_b = ln(p_b / (f_c p_c + (1 - f_c) p_uds))``, float64 [n]."""
    return _log_ratio(_check_probs(probs), BB, CC, f_c)


def discriminant_c(probs: np.ndarray, f_b: float = DEFAULT_F_B) -> np.ndarray:
    """c-tagging discriminant ``D_c = ln(p_c / (f_b p_b + (1 - f_b) p_uds))``, float64 [n]."""
    return _log_ratio(_check_probs(probs), CC, BB, f_b)


def discriminant(probs: np.ndarray, tagger: str, fraction: float | None = None) -> np.ndarray:
    """Discriminant of ``tagger`` ("b" or "c"); ``fraction`` is f_c resp. f_b (None: default)."""
    if _check_tagger(tagger) == "b":
        return discriminant_b(probs, DEFAULT_F_C if fraction is None else fraction)
    return discriminant_c(probs, DEFAULT_F_B if fraction is None else fraction)


# --------------------------------------------------------------------------- cuts and rejection


def cut_at_efficiency(signal_scores: np.ndarray, efficiency: float | Iterable[float]) -> Any:
    """Cut on a score such that a fraction of at least ``efficiency`` of signal has ``score > cut``.

    The cut is the largest signal score value satisfying that (see the module
    docstring for ties). ``efficiency`` may be a scalar (returns a float) or
    an array (returns a float64 array of the same shape); values in (0, 1].
    Returns nan when there are no signal events.
    """
    e = _check_efficiencies(efficiency)
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
    e = np.atleast_1d(_check_efficiencies(efficiencies))
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
    e = np.atleast_1d(_check_efficiencies(efficiencies))
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


# --------------------------------------------------------------------------- per tagger


@dataclass(frozen=True)
class TaggerResult:
    """Performance of one tagger ("b" or "c") on one set of predictions.

    ``fraction`` is f_c for the b-tagger and f_b for the c-tagger
    (``fraction_name`` says which); ``working_points`` follow the requested
    efficiencies; ``curve`` is None when curves were not requested.
    """

    tagger: str
    signal: str
    backgrounds: tuple[str, ...]
    fraction_name: str
    fraction: float
    working_points: list[WorkingPoint]
    curve: RejectionCurve | None = None

    def working_point(self, efficiency: float) -> WorkingPoint:
        """The working point at target ``efficiency`` (matched to 1e-9)."""
        for wp in self.working_points:
            if abs(wp.efficiency - efficiency) < 1e-9:
                return wp
        have = [wp.efficiency for wp in self.working_points]
        raise KeyError(f"{self.tagger}-tagger has no working point at {efficiency}; have {have}")


def _tagger_result(
    p: np.ndarray,
    y: np.ndarray,
    tagger: str,
    fraction: float,
    efficiencies: np.ndarray,
    curve_efficiencies: np.ndarray | None,
) -> TaggerResult:
    signal, backgrounds = TAGGERS[tagger]
    d = _log_ratio(p, signal, backgrounds[0], fraction)
    sig = d[y == signal]
    bkg_names = tuple(FLAVOUR[b] for b in backgrounds)
    points: list[WorkingPoint] = []
    per_bkg = [
        rejection_at_efficiency(sig, d[y == b], efficiencies, FLAVOUR[b], tagger) for b in backgrounds
    ]
    for i in range(len(efficiencies)):
        first = per_bkg[0][i]
        points.append(WorkingPoint(
            tagger=tagger,
            efficiency=first.efficiency,
            cut=first.cut,
            signal_efficiency=first.signal_efficiency,
            n_signal=first.n_signal,
            backgrounds={name: rows[i].backgrounds[name] for name, rows in zip(bkg_names, per_bkg)},
        ))
    curve = None
    if curve_efficiencies is not None:
        curve = rejection_curve(sig, {FLAVOUR[b]: d[y == b] for b in backgrounds},
                                curve_efficiencies, tagger, FLAVOUR[signal], float(fraction))
    return TaggerResult(tagger, FLAVOUR[signal], bkg_names, _FRACTION_NAME[tagger], float(fraction),
                        points, curve)


def _efficiency_tag(efficiency: float) -> str:
    """``0.7 -> "70"``, ``0.775 -> "77.5"``: the efficiency in percent as used in metric names."""
    return f"{round(100.0 * efficiency, 6):g}"


def _json_float(x: float | None) -> float | None:
    """Float for JSON: None for inf or nan (strict JSON has neither)."""
    if x is None or not math.isfinite(x):
        return None
    return float(x)


def _working_points_dict(taggers: Mapping[str, TaggerResult]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "format": WORKING_POINTS_FORMAT,
        "class_names": list(CLASS_NAMES),
        "selection": "an event is tagged when D > cut",
        "taggers": {},
    }
    for name, t in taggers.items():
        out["taggers"][name] = {
            "signal": t.signal,
            "discriminant": _FORMULA[name],
            t.fraction_name: t.fraction,
            "prob_floor": PROB_FLOOR,
            "working_points": [
                {
                    "efficiency": wp.efficiency,
                    "cut": _json_float(wp.cut),
                    "signal_efficiency": _json_float(wp.signal_efficiency),
                    "n_signal": wp.n_signal,
                    "backgrounds": {
                        b: {
                            "mistag": _json_float(r.mistag),
                            "mistag_err": _json_float(r.mistag_err),
                            "rejection": _json_float(r.rejection),
                            "rejection_err": _json_float(r.rejection_err),
                            "rejection_lower_limit_95cl": _json_float(r.rejection_lower_limit),
                            "n_pass": r.n_pass,
                            "n_total": r.n_total,
                        }
                        for b, r in wp.backgrounds.items()
                    },
                }
                for wp in t.working_points
            ],
        }
    return out


# --------------------------------------------------------------------------- everything at once


@dataclass(frozen=True)
class EvaluationResult:
    """All metrics of one set of predictions (see :func:`evaluate_predictions`).

    Class-level quantities are keyed by class name ("uds", "cc", "bb"),
    tagger-level ones by flavour ("b", "c", "uds"). ``confusion`` is the count
    matrix ``[true, predicted]``, ``confusion_normalised`` its row-normalised
    form; ``roc[class] = (false_positive_rate, true_positive_rate)`` one-vs-rest.
    """

    n_events: int
    class_counts: dict[str, int]
    accuracy: float
    log_loss: float
    confusion: np.ndarray
    confusion_normalised: np.ndarray
    auc: dict[str, float]
    roc: dict[str, tuple[np.ndarray, np.ndarray]]
    efficiencies: tuple[float, ...]
    f_c: float
    f_b: float
    taggers: dict[str, TaggerResult] = field(default_factory=dict)

    def rejection(self, tagger: str, background: str, efficiency: float) -> BackgroundRejection:
        """Rejection of ``background`` ("c", "uds", "b") by ``tagger`` at target ``efficiency``."""
        return self.taggers[_check_tagger(tagger)].working_point(efficiency).backgrounds[background]

    def flat_metrics(
        self,
        prefix: str = "test/",
        infinite_rejection: Literal["inf", "limit"] = "inf",
    ) -> dict[str, float]:
        """Scalar metrics under stable names, e.g. for ``mlflow.log_metrics``.

        Names (with ``prefix="test/"``): ``test/acc``, ``test/loss`` (log
        loss), ``test/auc_uds``, ``test/auc_cc``, ``test/auc_bb``, and for
        each efficiency E in percent (50, 60, 70, 80, 90 by default)
        ``test/rej_c_at_bE``, ``test/rej_uds_at_bE``, ``test/rej_b_at_cE``,
        ``test/rej_uds_at_cE`` with ``..._err`` uncertainties.

        When no background event passes a cut the rejection is inf and its
        error nan (MLflow stores inf as the largest float and nan as NaN);
        ``infinite_rejection="limit"`` reports the 95% CL lower limit instead.
        """
        if infinite_rejection not in ("inf", "limit"):
            raise ValueError(f"infinite_rejection must be 'inf' or 'limit', got {infinite_rejection!r}")
        out = {f"{prefix}acc": self.accuracy, f"{prefix}loss": self.log_loss}
        for name in CLASS_NAMES:
            out[f"{prefix}auc_{name}"] = self.auc[name]
        for tagger, t in self.taggers.items():
            for wp in t.working_points:
                tag = _efficiency_tag(wp.efficiency)
                for bkg, r in wp.backgrounds.items():
                    value = r.rejection
                    if infinite_rejection == "limit" and r.rejection_lower_limit is not None:
                        value = r.rejection_lower_limit
                    out[f"{prefix}rej_{bkg}_at_{tagger}{tag}"] = float(value)
                    out[f"{prefix}rej_{bkg}_at_{tagger}{tag}_err"] = float(r.rejection_err)
        return out

    def working_points(self) -> dict[str, Any]:
        """Working points of both taggers as a JSON-serialisable dict (see :func:`working_points`)."""
        return _working_points_dict(self.taggers)


def evaluate_predictions(
    probs: np.ndarray,
    labels: np.ndarray,
    efficiencies: Sequence[float] = DEFAULT_EFFICIENCIES,
    f_c: float = DEFAULT_F_C,
    f_b: float = DEFAULT_F_B,
    curve_efficiencies: np.ndarray | None = DEFAULT_CURVE_EFFICIENCIES,
) -> EvaluationResult:
    """Compute every metric of this module for one set of predictions.

    ``probs`` [n, 3] softmax outputs (uds, cc, bb), ``labels`` [n] class
    indices. ``efficiencies`` are the signal efficiencies of the reported
    rejections and working points; ``f_c`` / ``f_b`` the background fractions
    of the b / c discriminants; ``curve_efficiencies`` the grid of the
    rejection curves (None: no curves). Metrics of a class missing from
    ``labels`` are nan.
    """
    p = _check_probs(probs)
    y = _check_labels(labels, len(p))
    e = np.atleast_1d(_check_efficiencies(efficiencies))
    grid = None if curve_efficiencies is None else _check_efficiencies(curve_efficiencies)
    counts = np.bincount(y, minlength=N_CLASSES)
    return EvaluationResult(
        n_events=len(y),
        class_counts={name: int(counts[k]) for k, name in enumerate(CLASS_NAMES)},
        accuracy=accuracy(p, y),
        log_loss=log_loss(p, y),
        confusion=confusion_matrix(p, y),
        confusion_normalised=confusion_matrix(p, y, normalize=True),
        auc=auc_one_vs_rest(p, y),
        roc=_roc_one_vs_rest(p, y),
        efficiencies=tuple(float(x) for x in e),
        f_c=float(f_c),
        f_b=float(f_b),
        taggers={
            "b": _tagger_result(p, y, "b", f_c, e, grid),
            "c": _tagger_result(p, y, "c", f_b, e, grid),
        },
    )


def working_points(
    probs: np.ndarray,
    labels: np.ndarray,
    efficiencies: Sequence[float] = DEFAULT_EFFICIENCIES,
    f_c: float = DEFAULT_F_C,
    f_b: float = DEFAULT_F_B,
) -> dict[str, Any]:
    """Discriminant cuts of the b- and c-tagger at each efficiency, as a JSON-serialisable dict.

    Layout::

        {"format": "flavortag.working_points/1", "class_names": [...],
         "selection": "an event is tagged when D > cut",
         "taggers": {"b": {"signal": "b", "discriminant": "D_b = ...", "f_c": 0.22,
                           "prob_floor": 1e-12,
                           "working_points": [{"efficiency": 0.7, "cut": ..., "signal_efficiency": ...,
                                               "n_signal": ..., "backgrounds": {"c": {"mistag": ...,
                                               "mistag_err", "rejection", "rejection_err",
                                               "rejection_lower_limit_95cl", "n_pass", "n_total"},
                                               "uds": {...}}}, ...]},
                     "c": {... "f_b": 0.26 ...}}}

    Infinite or undefined values are written as null. Apply a cut with
    :func:`apply_working_point`.
    """
    p = _check_probs(probs)
    y = _check_labels(labels, len(p))
    e = np.atleast_1d(_check_efficiencies(efficiencies))
    taggers = {
        "b": _tagger_result(p, y, "b", f_c, e, None),
        "c": _tagger_result(p, y, "c", f_b, e, None),
    }
    return _working_points_dict(taggers)


def apply_working_point(
    probs: np.ndarray, working_points: Mapping[str, Any], tagger: str, efficiency: float
) -> np.ndarray:
    """Boolean mask [n] of events tagged by ``tagger`` at ``efficiency`` of a working-point dict.

    Uses the background fraction stored with the working points, so the
    discriminant is the one the cut was made for.
    """
    entry = working_points["taggers"][_check_tagger(tagger)]
    fraction = entry[_FRACTION_NAME[tagger]]
    for wp in entry["working_points"]:
        if abs(wp["efficiency"] - efficiency) < 1e-9:
            if wp["cut"] is None:
                raise ValueError(f"{tagger}-tagger working point at {efficiency} has no cut (no signal)")
            return discriminant(probs, tagger, fraction) > wp["cut"]
    have = [wp["efficiency"] for wp in entry["working_points"]]
    raise KeyError(f"{tagger}-tagger has no working point at {efficiency}; have {have}")


# --------------------------------------------------------------------------- comparison tables

#: Default columns of :func:`format_comparison_table` (metric names without prefix).
DEFAULT_TABLE_METRICS: tuple[str, ...] = (
    "acc", "loss", "auc_uds", "auc_cc", "auc_bb",
    "rej_c_at_b70", "rej_uds_at_b70", "rej_b_at_c50", "rej_uds_at_c50",
)


def _as_flat(result: EvaluationResult | Mapping[str, float], prefix: str) -> dict[str, float]:
    """Metrics of one model without ``prefix``; accepts a result or a flat dict (e.g. from MLflow)."""
    if isinstance(result, EvaluationResult):
        return result.flat_metrics(prefix="")
    return {k[len(prefix):]: float(v) for k, v in result.items() if k.startswith(prefix)}


def _decimals(name: str, value: float) -> int:
    """Decimals shown for a metric: 4 for fractions, 0-2 for rejections by magnitude."""
    if not name.startswith("rej_"):
        return 4
    a = abs(value)
    return 0 if a >= 100 else 1 if a >= 10 else 2


def _format_cell(name: str, value: float | None, err: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf"
    d = _decimals(name, value)
    cell = f"{value:.{d}f}"
    if err is not None and math.isfinite(err):
        cell += f" ± {err:.{d}f}"
    return cell


def format_comparison_table(
    results: Mapping[str, EvaluationResult | Mapping[str, float]],
    metrics: Sequence[str] = DEFAULT_TABLE_METRICS,
    prefix: str = "test/",
    with_errors: bool = True,
) -> str:
    """Plain-text table comparing models: one row per model, one column per metric.

    ``results`` maps model name -> :class:`EvaluationResult` or flat metrics
    (names carrying ``prefix``, as logged to MLflow). ``metrics`` are names
    without prefix. Rejections are shown as ``value ± err`` when
    ``with_errors`` and the ``_err`` metric exists; missing values as "-".
    """
    flat = {model: _as_flat(r, prefix) for model, r in results.items()}
    header = ["model", *metrics]
    rows = []
    for model, m in flat.items():
        row = [model]
        for name in metrics:
            err = m.get(f"{name}_err") if with_errors else None
            cell = _format_cell(name, m.get(name), err)
            row.append(cell)
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:]))]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)]) + "\n"


def write_comparison_csv(
    results: Mapping[str, EvaluationResult | Mapping[str, float]],
    path: str | Path,
    metrics: Sequence[str] | None = None,
    prefix: str = "test/",
) -> Path:
    """Write a CSV with a ``model`` column and one column per metric; returns the path.

    ``metrics`` (names without prefix) defaults to every metric of any model,
    in first-seen order (the :meth:`EvaluationResult.flat_metrics` order).
    Values are written with full precision (``repr``); inf as ``inf``,
    missing or nan as an empty cell.
    """
    flat = {model: _as_flat(r, prefix) for model, r in results.items()}
    if metrics is None:
        metrics = list(dict.fromkeys(name for m in flat.values() for name in m))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", *metrics])
        for model, m in flat.items():
            cells = []
            for name in metrics:
                v = m.get(name)
                cells.append("" if v is None or math.isnan(v) else repr(float(v)))
            writer.writerow([model, *cells])
    return path
