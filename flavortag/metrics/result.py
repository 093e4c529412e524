"""Every metric of one set of predictions at once: :class:`EvaluationResult`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from flavortag.classes import CLASS_NAMES, EVENT_SCHEME, ClassScheme, class_scheme
from flavortag.metrics.classification import (
    accuracy,
    auc_one_vs_rest,
    confusion_matrix,
    log_loss,
    roc_one_vs_rest,
)
from flavortag.metrics.discriminants import DEFAULT_F_B, DEFAULT_F_C, validate_tagger
from flavortag.metrics.inputs import validate_efficiencies, validate_labels, validate_probs
from flavortag.metrics.rejection import (
    DEFAULT_CURVE_EFFICIENCIES,
    DEFAULT_EFFICIENCIES,
    BackgroundRejection,
)
from flavortag.metrics.strange import has_strange, strange_metrics
from flavortag.metrics.working_points import (
    TaggerResult,
    efficiency_tag,
    tagger_result,
    working_points_dict,
)

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
    #: the classes, in probability-column order (default: the event classes)
    class_names: tuple[str, ...] = CLASS_NAMES
    #: the s figures of a scheme with s (:mod:`flavortag.metrics.strange`), names without prefix
    strange: dict[str, float] = field(default_factory=dict)

    def rejection(self, tagger: str, background: str, efficiency: float) -> BackgroundRejection:
        """Rejection of ``background`` ("c", "uds", "b") by ``tagger`` at target ``efficiency``."""
        return self.taggers[validate_tagger(tagger)].working_point(efficiency).backgrounds[background]

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
        for name in self.class_names:
            out[f"{prefix}auc_{name}"] = self.auc[name]
        for tagger, t in self.taggers.items():
            for wp in t.working_points:
                tag = efficiency_tag(wp.efficiency)
                for bkg, r in wp.backgrounds.items():
                    value = r.rejection
                    if infinite_rejection == "limit" and r.rejection_lower_limit is not None:
                        value = r.rejection_lower_limit
                    out[f"{prefix}rej_{bkg}_at_{tagger}{tag}"] = float(value)
                    out[f"{prefix}rej_{bkg}_at_{tagger}{tag}_err"] = float(r.rejection_err)
        out.update({f"{prefix}{k}": float(v) for k, v in self.strange.items()})
        return out

    def working_points(self) -> dict[str, Any]:
        """Working points of both taggers as a JSON-serialisable dict (see :func:`working_points`)."""
        return working_points_dict(self.taggers, class_scheme(self.class_names))


def evaluate_predictions(
    probs: np.ndarray,
    labels: np.ndarray,
    efficiencies: Sequence[float] = DEFAULT_EFFICIENCIES,
    f_c: float = DEFAULT_F_C,
    f_b: float = DEFAULT_F_B,
    curve_efficiencies: np.ndarray | None = DEFAULT_CURVE_EFFICIENCIES,
    scheme: ClassScheme = EVENT_SCHEME,
) -> EvaluationResult:
    """Compute every metric of this module for one set of predictions.

    ``probs`` [n, 3] softmax outputs (uds, cc, bb), ``labels`` [n] class
    indices. ``efficiencies`` are the signal efficiencies of the reported
    rejections and working points; ``f_c`` / ``f_b`` the background fractions
    of the b / c discriminants; ``curve_efficiencies`` the grid of the
    rejection curves (None: no curves); ``scheme`` the classes of the columns
    of ``probs`` (default uds, cc, bb; jets: :func:`flavortag.classes.class_scheme`).
    Metrics of a class missing from ``labels`` are nan.
    """
    names = scheme.names
    p = validate_probs(probs, names)
    y = validate_labels(labels, len(p), names)
    e = np.atleast_1d(validate_efficiencies(efficiencies))
    grid = None if curve_efficiencies is None else validate_efficiencies(curve_efficiencies)
    counts = np.bincount(y, minlength=len(names))
    return EvaluationResult(
        n_events=len(y),
        class_counts={name: int(counts[k]) for k, name in enumerate(names)},
        accuracy=accuracy(p, y, names),
        log_loss=log_loss(p, y, names),
        confusion=confusion_matrix(p, y, classes=names),
        confusion_normalised=confusion_matrix(p, y, normalize=True, classes=names),
        auc=auc_one_vs_rest(p, y, names),
        roc=roc_one_vs_rest(p, y, names),
        efficiencies=tuple(float(x) for x in e),
        f_c=float(f_c),
        f_b=float(f_b),
        taggers={
            "b": tagger_result(p, y, "b", f_c, e, grid, scheme),
            "c": tagger_result(p, y, "c", f_b, e, grid, scheme),
        },
        class_names=names,
        strange=strange_metrics(p, y, scheme) if has_strange(scheme) else {},
    )
