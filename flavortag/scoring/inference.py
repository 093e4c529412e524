"""Scoring events with a trained tagger, whatever its kind and wherever it is stored.

A tagger is either a :class:`flavortag.models.TaggerModel` (torch) or a
scikit-learn classifier (``model=bdt``); both carry ``feature_names`` (the
track and event feature lists they were trained on) and ``detector`` (the
resolution model used for significances), so scoring needs nothing else.
Models load from an MLflow run id, an MLflow model URI or a checkpoint file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from flavortag.batching import EventTensors
from flavortag.classes import ClassScheme, class_scheme
from flavortag.safe_load import MODEL_SUFFIXES, PICKLE_SUFFIXES


def input_shape(model: Any) -> tuple[int, str | None]:
    """``(max_tracks, sort_by)`` a tagger was trained with (stored with it; older models: the defaults).

    :class:`flavortag.Tagger` (the scorer of evaluate, predict and the robustness
    report) takes them from here, so a model trained with another ``data.sort_by``
    is scored as it was trained.
    """
    from flavortag.ragged import DEFAULT_MAX_TRACKS, DEFAULT_SORT_BY

    max_tracks = int(getattr(model, "max_tracks", None) or DEFAULT_MAX_TRACKS)
    sort_by = getattr(model, "sort_by", DEFAULT_SORT_BY)
    return max_tracks, (None if sort_by in (None, "", "null") else str(sort_by))


def model_inputs(events: Any, feature_names: dict[str, Any], detector: Any, calibration: Any,
                 max_tracks: int, sort_by: str | None) -> EventTensors:
    """The inputs a tagger was trained on, for ``events``: the calibration applied, then its features.

    ``feature_names`` is the tagger's ``{"track": [...], "event": [...]}``,
    ``detector`` the :class:`~flavortag.detector.DetectorModel` of its
    significances, ``calibration`` a resolved
    :class:`~flavortag.calibration.ResolutionCalibration` or None. Called by
    :meth:`flavortag.Tagger.predict` alone, the one scorer.
    """
    from flavortag.batching import build_event_tensors
    from flavortag.calibration import apply_calibration

    return build_event_tensors(apply_calibration(events, calibration, detector),
                               track_feature_names=feature_names["track"],
                               event_feature_names=feature_names["event"], max_tracks=max_tracks,
                               detector=detector, sort_by=sort_by)


def is_torch_model(model: Any) -> bool:
    """True for a torch module (set models, MLP), False for a scikit-learn model."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return isinstance(model, torch.nn.Module)


def model_scheme(model: Any) -> ClassScheme:
    """The classes of a tagger's outputs (its ``class_names``; none stored: uds, cc, bb)."""
    return class_scheme(getattr(model, "class_names", None))


def predict_proba(model: Any, tensors: EventTensors, batch_size: int = 2048,
                  device: str | None = None) -> np.ndarray:
    """Class probabilities [n_events, n_classes] (order :func:`model_scheme`: uds, cc, bb for events).

    Torch models score the events in order of track count (batches of similar
    lengths, each padded to its longest event: little padding) and the
    probabilities are put back in input order.
    """
    if not is_torch_model(model):
        return np.asarray(model.predict_proba(tensors.event_features), dtype=np.float64)
    import torch

    from flavortag.batching import make_loader

    dev = torch.device(device) if device else next(model.parameters()).device
    model = model.to(dev).eval()
    out = []
    order = np.argsort(tensors.n_valid, kind="stable")
    loader = make_loader(tensors, batch_size=batch_size, shuffle=False, seed=0, layout="padded",
                         sampler=order.tolist())  # type: ignore[arg-type]
    with torch.no_grad():
        for batch in loader:
            logits = model(batch.to(dev))
            out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
    if not out:
        return np.zeros((0, len(model_scheme(model))))
    probs = np.empty((len(order), out[0].shape[1]), np.float64)
    probs[order] = np.concatenate(out)
    return probs


#: Suffixes that make a source a file path (never a run id), existing or not: model files,
#: refused pickles, exported ONNX files.
MODEL_FILE_SUFFIXES = (*MODEL_SUFFIXES, *PICKLE_SUFFIXES, ".onnx")


def load_model(source: str) -> Any:
    """Load a tagger from an MLflow run id, a ``runs:/`` / ``models:/`` URI or a checkpoint file.

    Checkpoints: ``*.pt`` written by the trainer (torch) or ``bdt.skops`` (BDT),
    read without running code (:mod:`flavortag.safe_load`). A path that does not
    exist is reported as a missing file, not looked up as a run id.
    """
    path = Path(source)
    if path.exists():
        from flavortag.safe_load import load_model_file

        return load_model_file(path)
    if not source.startswith(("runs:/", "models:/")) and (
            "/" in source or "\\" in source or path.suffix in MODEL_FILE_SUFFIXES):
        raise FileNotFoundError(f"checkpoint {source} not found (no such file); give a checkpoint "
                                "file, an MLflow run id or a runs:/<id>/model URI")
    from flavortag import tracking

    uri = source if ":/" in source else f"runs:/{source}/model"
    return tracking.load_logged_model(uri)
