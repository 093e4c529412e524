"""Class-level metrics of three-class predictions: accuracy, log loss, confusion matrix, one-vs-rest ROC."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import confusion_matrix as _sk_confusion_matrix
from sklearn.metrics import roc_auc_score, roc_curve

from flavortag.classes import CLASS_NAMES
from flavortag.metrics.discriminants import PROB_FLOOR
from flavortag.metrics.inputs import validate_labels, validate_probs


def accuracy(probs: np.ndarray, labels: np.ndarray, classes: tuple[str, ...] = CLASS_NAMES) -> float:
    """Fraction of events whose arg-max class equals the label (nan for no events)."""
    p = validate_probs(probs, classes)
    y = validate_labels(labels, len(p), classes)
    return float(np.mean(p.argmax(axis=1) == y)) if len(y) else math.nan


def log_loss(probs: np.ndarray, labels: np.ndarray, classes: tuple[str, ...] = CLASS_NAMES) -> float:
    """Mean negative log-likelihood ``-<ln p_label>`` (natural log, probabilities clipped at 1e-12)."""
    p = validate_probs(probs, classes)
    y = validate_labels(labels, len(p), classes)
    if not len(y):
        return math.nan
    loss = float(-np.mean(np.log(np.maximum(p[np.arange(len(y)), y], PROB_FLOOR))))
    return loss + 0.0  # -0.0 (a perfect classifier) -> 0.0


def confusion_matrix(
    probs: np.ndarray, labels: np.ndarray, normalize: bool = False,
    classes: tuple[str, ...] = CLASS_NAMES,
) -> np.ndarray:
    """Confusion matrix ``[true class, predicted class]`` in class order uds, cc, bb.

    Returns int64 counts, or with ``normalize=True`` float64 rows that sum to 1
    (the fraction of each true class predicted as each class; a class absent
    from ``labels`` gives a row of zeros).
    """
    p = validate_probs(probs, classes)
    y = validate_labels(labels, len(p), classes)
    counts = _sk_confusion_matrix(y, p.argmax(axis=1), labels=list(range(len(classes))))
    counts = counts.astype(np.int64)
    if not normalize:
        return counts
    rows = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)


def auc_one_vs_rest(probs: np.ndarray, labels: np.ndarray,
                    classes: tuple[str, ...] = CLASS_NAMES) -> dict[str, float]:
    """ROC AUC of each class against the other two, scored by that class's probability.

    Returns ``{"uds": auc, "cc": auc, "bb": auc}``; nan for a class that is
    absent from ``labels`` or is the only one present.
    """
    p = validate_probs(probs, classes)
    y = validate_labels(labels, len(p), classes)
    out: dict[str, float] = {}
    for k, name in enumerate(classes):
        is_k = y == k
        out[name] = float(roc_auc_score(is_k, p[:, k])) if 0 < is_k.sum() < len(y) else math.nan
    return out


def roc_one_vs_rest(p: np.ndarray, y: np.ndarray,
                     classes: tuple[str, ...] = CLASS_NAMES) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for k, name in enumerate(classes):
        is_k = y == k
        if 0 < is_k.sum() < len(y):
            fpr, tpr, _ = roc_curve(is_k, p[:, k], drop_intermediate=True)
            out[name] = (fpr, tpr)
    return out
