"""Performance metrics of a three-class flavour tagger (uds / cc / bb).

One job per module: :mod:`.inputs` (checks), :mod:`.classification`
(accuracy, log loss, confusion, ROC), :mod:`.discriminants` (``D_b``, ``D_c``),
:mod:`.rejection` (cuts, rejections, curves), :mod:`.working_points`,
:mod:`.result` (everything at once) and :mod:`.tables` (comparison tables).
This package only re-exports them.

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

from flavortag.metrics.binned import BinnedPerformance, performance_vs_variable
from flavortag.metrics.classification import accuracy, auc_one_vs_rest, confusion_matrix, log_loss
from flavortag.metrics.discriminants import (
    DEFAULT_F_B,
    DEFAULT_F_C,
    FLAVOUR,
    PROB_FLOOR,
    SCORE_FIELDS,
    TAGGERS,
    discriminant,
    discriminant_b,
    discriminant_c,
    scheme_discriminant,
    scheme_taggers,
    score_columns,
)
from flavortag.metrics.rejection import (
    DEFAULT_CURVE_EFFICIENCIES,
    DEFAULT_EFFICIENCIES,
    BackgroundRejection,
    RejectionCurve,
    WorkingPoint,
    binomial_rejection,
    cut_at_efficiency,
    rejection_at_efficiency,
    rejection_curve,
)
from flavortag.metrics.result import EvaluationResult, evaluate_predictions
from flavortag.metrics.tables import (
    DEFAULT_TABLE_METRICS,
    HEADLINE_METRIC,
    JET_HEADLINE_METRIC,
    format_comparison_table,
    headline_metric,
    rank_by,
    write_comparison_csv,
)
from flavortag.metrics.working_points import (
    WORKING_POINTS_FORMAT,
    TaggerResult,
    apply_working_point,
    working_points,
)

__all__ = [
    "SCORE_FIELDS",
    "score_columns",
    "DEFAULT_CURVE_EFFICIENCIES",
    "DEFAULT_EFFICIENCIES",
    "DEFAULT_F_B",
    "DEFAULT_F_C",
    "DEFAULT_TABLE_METRICS", "HEADLINE_METRIC", "JET_HEADLINE_METRIC", "headline_metric", "rank_by",
    "FLAVOUR",
    "PROB_FLOOR",
    "TAGGERS",
    "WORKING_POINTS_FORMAT",
    "BackgroundRejection",
    "BinnedPerformance",
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
    "scheme_discriminant",
    "scheme_taggers",
    "working_points",
    "write_comparison_csv",
    "performance_vs_variable",
]
