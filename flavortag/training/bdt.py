"""Gradient-boosted trees (scikit-learn) on the event features: ``model=bdt``."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from flavortag import tracking
from flavortag.training.checkpoint import TrainState
from flavortag.training.data import PreparedData

if TYPE_CHECKING:
    from flavortag.training.settings import TrainJob

log = logging.getLogger("flavortag.train")


def fit_bdt(job: TrainJob, data: PreparedData, run: tracking.RunHandle | None = None) -> tuple[Any, TrainState]:
    """Train scikit-learn gradient-boosted trees on the event features (LCFIPlus-style reference)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from flavortag.metrics import accuracy, log_loss

    params = {k: v for k, v in job.model.items() if k not in ("name", "description")}
    params.setdefault("random_state", job.seed)
    clf = HistGradientBoostingClassifier(**params)
    train_t, val_t = data.tensors["train"], data.tensors["val"]
    t0 = time.perf_counter()
    clf.fit(train_t.event_features, train_t.labels)
    elapsed = time.perf_counter() - t0
    clf.feature_names = {"track": [], "event": list(data.event_names)}
    clf.detector = data.detector.to_dict()
    clf.class_names = tuple(data.scheme.names)
    clf.max_tracks = job.data.max_tracks
    clf.sort_by = job.data.sort_by
    clf.training_resolution = data.training_resolution
    missing = sorted(set(range(len(data.scheme))) - {int(c) for c in clf.classes_})
    if missing and not data.scheme.is_event_scheme:
        raise ValueError(f"the BDT's training events hold no {[data.scheme.names[k] for k in missing]}: "
                         "every class of data.classes needs training events")
    state = TrainState(epoch=1)
    metrics: dict[str, float] = {"train/events_per_s": len(train_t.labels) / max(elapsed, 1e-9),
                                 "train/events": float(len(train_t.labels))}
    for split, t in (("train", train_t), ("val", val_t)):
        probs = clf.predict_proba(t.event_features)
        metrics[f"{split}/loss"] = log_loss(probs, t.labels, data.scheme.names)
        metrics[f"{split}/acc"] = accuracy(probs, t.labels, data.scheme.names)
    state.best_val_loss = metrics["val/loss"]
    state.best_epoch = 1
    state.history = {k: [v] for k, v in metrics.items()}
    if run is not None:
        run.log_metrics(metrics, step=1)
    log.info("bdt: %d iterations, train acc %.4f, val acc %.4f", clf.n_iter_,
             metrics["train/acc"], metrics["val/acc"])
    return clf, state
