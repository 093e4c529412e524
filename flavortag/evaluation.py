"""Evaluating a trained tagger on a sample: what ``flavortag evaluate`` runs.

Scores a sample with a trained tagger (any kind: mlp, bdt, deepsets,
transformer) and records, in MLflow, what flavour-tagging physicists look at:
accuracy, AUCs, c/uds rejection at fixed b efficiency and b/uds rejection at
fixed c efficiency (``test/rej_c_at_b80``, ``test/rej_uds_at_c50``, ...), ROC and
rejection curves, discriminant distributions, the confusion matrix, training
curves, working points (JSON) and per-event predictions (Parquet and ROOT);
see :func:`flavortag.reporting.report`.

Evaluating a run on its own test split adds to that run; evaluating it on
other data (a ``data`` config group, or just ``data.paths=[...]``) makes a
child run (``eval-<data name>``) so the MLflow compare view shows both.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from flavortag import tracking
from flavortag.errors import UsageError
from flavortag.reporting.report import report

log = logging.getLogger("flavortag.evaluate")


def evaluate_split(model: Any, data: Any, split: str, cfg: DictConfig, run_dir: Path,
                   history: Mapping[str, Sequence[float]] | None = None) -> dict[str, float]:
    """Evaluate a freshly trained model on one split of the training sample (inside its run)."""
    from flavortag.inference import model_scheme, predict_proba

    tensors = data.tensors[split]
    probs = predict_proba(model, tensors)
    events = data.events[data.indices[split]] if data.events is not None else None
    from flavortag.reporting.sample import sample_info

    sample = sample_info(cfg.data, cfg.get("detector"), n_events=len(tensors.labels),
                         events_label=f"{'test' if split == 'test' else split} events")
    # the standard plots only: the plots versus event variables (twice the drawing time) come
    # with `flavortag evaluate` and `flavortag compare`
    return report(probs, tensors.labels, cfg.get("evaluate"), run_dir / "evaluation",
                  prefix=f"{split}/", history=history, events=events, caption=str(cfg.run_name),
                  sample=sample, vs_variables=False, scheme=model_scheme(model))


def combined_event_report(jet_probs: np.ndarray, jets: Any, cfg: DictConfig, out_dir: Path,
                          scheme: Any, caption: str) -> dict[str, float]:
    """The event-level report of two-jet events from both jets' scores (``combine_jets=true``).

    Metrics under ``events/`` (``events/rej_c_at_b80``, ...): the event tagger's
    names on the same events, for a side-by-side comparison (:mod:`flavortag.jet_events`).
    """
    from flavortag.jet_events import combine_jets

    combined = combine_jets(jet_probs, np.asarray(jets["event"]), np.asarray(jets["decay_class"]), scheme)
    keep = combined.labels >= 0
    log.info("event-level combination: %d two-jet events", int(keep.sum()))
    flat = report(combined.probs[keep], combined.labels[keep], cfg.get("evaluate"), out_dir,
                  prefix="events/", caption=caption, scheme=combined.scheme, log_to_mlflow=False)
    tracking.log_metrics(flat)
    tracking.log_artifacts(out_dir, artifact_path="events")
    return flat


def _data_config(cfg: DictConfig, train_cfg: DictConfig) -> DictConfig | None:
    """The data to evaluate on: None for the run's own data, else a full ``data`` node.

    ``data=<group>`` gives a whole data config. ``data.paths=[...]`` alone (one's
    own files, no config file needed) takes the run's reader and padding
    settings with those paths, every event of them, under ``data.name``
    (default "custom").
    """
    given = cfg.get("data")
    if given is None or given.get("paths") is None:
        return None
    if "max_tracks" in given:
        return given
    if "data" not in train_cfg:
        raise ValueError("this checkpoint carries no data config: pass data=<config group>")
    merged = OmegaConf.merge(train_cfg.data, {
        "name": given.get("name") or "custom", "paths": given.paths,
        "max_events_per_class": None, "streaming": False,
    })
    assert isinstance(merged, DictConfig)
    return merged


def held_out_events(train_cfg: DictConfig) -> Any:
    """The events a run never trained on: the test split of its sample (a streaming run: its test files)."""
    from flavortag.dataset import load_sample, split_indices

    data_cfg = train_cfg.data
    if data_cfg.get("streaming", False):
        if not data_cfg.get("test_paths"):
            raise ValueError("this run was trained with data.streaming=true and no data.test_paths: "
                             "pass data=<config group> split=all to evaluate it")
        return load_sample(OmegaConf.merge(data_cfg, {"paths": data_cfg.test_paths}))  # type: ignore[arg-type]
    events = load_sample(data_cfg)
    fractions = {str(k): float(v) for k, v in data_cfg.split.items()}
    idx = split_indices(np.asarray(events["label"]), fractions,
                        int(data_cfg.get("split_seed", train_cfg.get("seed", 0))))["test"]
    return events[idx]


def evaluate_run(cfg: DictConfig) -> tuple[str, dict[str, float]]:
    """Evaluate a run (``run_id``) or a checkpoint (``checkpoint``) on a sample.

    Returns the model's name (the training run name) and the flat metrics.
    """
    from flavortag.calibration import resolve_calibration
    from flavortag.calibration_function import training_resolution
    from flavortag.dataset import load_sample
    from flavortag.detector import DetectorModel
    from flavortag.inference import (
        input_shape,
        load_model,
        model_inputs,
        model_scheme,
        predict_proba,
    )
    from flavortag.reporting.sample import sample_info

    run_id = cfg.get("run_id")
    checkpoint = cfg.get("checkpoint")
    if bool(run_id) == bool(checkpoint):
        raise UsageError("give exactly one of run_id=<mlflow run id> or checkpoint=<path>")
    tracking.configure(cfg.tracking, must_exist=bool(run_id))
    if run_id:
        model = load_model(str(run_id))
        train_cfg = tracking.load_run_config(str(run_id))
    else:
        from flavortag.safe_load import load_torch_file

        model = load_model(str(checkpoint))
        blob = load_torch_file(str(checkpoint)) if str(checkpoint).endswith(".pt") else {}
        train_cfg = OmegaConf.create(blob.get("config", {}))
    other_data = _data_config(cfg, train_cfg)
    own_data = other_data is None
    if own_data and "data" not in train_cfg:
        raise ValueError("this checkpoint carries no data config: pass data=<config group>")
    data_cfg = train_cfg.data if other_data is None else other_data
    split = str(cfg.split)
    streamed = own_data and bool(train_cfg.data.get("streaming", False))
    if streamed:
        # a streaming run's held-out events are its test files, not a split of data.paths
        if not train_cfg.data.get("test_paths"):
            raise ValueError("this run was trained with data.streaming=true and no data.test_paths: "
                             "pass data=<config group> split=all to evaluate it")
        data_cfg = OmegaConf.merge(train_cfg.data, {"paths": train_cfg.data.test_paths})
    if split == "test" and own_data:
        events = held_out_events(train_cfg)
    else:
        events = load_sample(data_cfg)
    if split not in ("all", "test"):
        raise ValueError(f"split must be 'test' (the run's held-out events) or 'all', not {split!r}")
    names = model.feature_names
    detector = DetectorModel.from_config(model.detector)
    calibration = resolve_calibration(cfg.get("calibration"), events, detector,
                                      reference=training_resolution(model))
    if calibration is not None:
        log.info("significances with the calibrated resolution: d0 x %.3f, z0 x %.3f",
                 calibration.d0_scale, calibration.z0_scale)
    tensors = model_inputs(events, names, detector, calibration, *input_shape(model))
    probs = predict_proba(model, tensors)
    model_name = str(train_cfg.get("run_name", "model")) if "run_name" in train_cfg else "model"
    out_dir = Path(str(cfg.output_dir))
    data_name = str(data_cfg.get("name", "data"))
    caption = f"{model_name} on {data_name}" + (" (test split)" if split == "test" else "")
    tags = {tracking.Tag.KIND: "evaluation", tracking.Tag.DATA: data_name,
            tracking.Tag.MODEL: str(train_cfg.get("model", {}).get("name", "unknown"))}
    with ExitStack() as stack:
        if run_id:
            parent_run = stack.enter_context(tracking.start_run(cfg.tracking, run_id=str(run_id)))
            if not own_data:
                # other data: a child run, in the parent's experiment (not the default one)
                stack.enter_context(tracking.start_child_run(
                    f"eval-{data_name}", parent_run.info.experiment_id, tags))
                tracking.log_params({"eval.data": data_name, "eval.split": split,
                                     "eval.source_run": str(run_id)})
        else:
            stack.enter_context(tracking.start_run(
                cfg.tracking, run_name=f"eval-{Path(str(checkpoint)).stem}-{data_name}", tags=tags))
            tracking.log_params({"eval.data": data_name, "eval.split": split,
                                 "eval.checkpoint": str(checkpoint)})
        if calibration is not None:
            tracking.log_calibration(calibration)
        sample = sample_info(data_cfg, train_cfg.get("detector"), n_events=len(tensors.labels),
                             events_label="test events" if split == "test" and own_data else "events")
        flat = report(probs, tensors.labels, cfg.get("evaluate"), out_dir, prefix="test/",
                      events=events, caption=caption, sample=sample, scheme=model_scheme(model))
        if cfg.get("combine_jets") and "event" in events.fields:
            flat.update(combined_event_report(probs, events, cfg, out_dir / "events",
                                              model_scheme(model), f"{caption} (events from 2 jets)"))
    return model_name, flat


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Evaluate a run (``run_id``) or a checkpoint (``checkpoint``) on a sample; returns the flat metrics."""
    return evaluate_run(cfg)[1]
