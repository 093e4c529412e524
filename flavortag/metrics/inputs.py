"""Input checks shared by the metrics: prediction arrays, labels and efficiencies."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from flavortag.classes import CLASS_NAMES


def validate_probs(probs: np.ndarray, classes: tuple[str, ...] = CLASS_NAMES) -> np.ndarray:
    """Return ``probs`` as float64 [n, len(classes)], raising ``ValueError`` when it is not."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(classes):
        raise ValueError(
            f"probs must have shape [n_events, {len(classes)}] (classes {classes}), got {p.shape}"
        )
    if not np.all(np.isfinite(p)):
        raise ValueError("probs contain nan or inf")
    if p.size and (p.min() < 0 or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3)):
        raise ValueError(
            "probs must be probabilities (non-negative, rows summing to 1); "
            "apply a softmax to model logits first"
        )
    return p


def validate_labels(labels: np.ndarray, n: int | None = None,
                  classes: tuple[str, ...] = CLASS_NAMES) -> np.ndarray:
    """Return ``labels`` as int64 [n], raising ``ValueError`` on bad shape or values."""
    y = np.asarray(labels)
    if y.ndim != 1 or (n is not None and y.shape[0] != n):
        raise ValueError(f"labels must have shape [{n if n is not None else 'n'}], got {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.mod(y, 1) == 0):
            raise ValueError("labels must be integer class indices")
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= len(classes)):
        raise ValueError(f"labels must be in 0..{len(classes) - 1} ({classes}), got {np.unique(y)}")
    return y


def validate_efficiencies(efficiencies: float | Iterable[float]) -> np.ndarray:
    e = np.asarray(efficiencies, dtype=np.float64)
    if np.any(~np.isfinite(e)) or np.any(e <= 0) or np.any(e > 1):
        raise ValueError(f"signal efficiencies must lie in (0, 1], got {efficiencies}")
    return e
