"""Evaluating a trained tagger on a sample: the library of the evaluate pipeline.

The pipeline (:mod:`flavortag.pipelines.evaluate`) scores a sample with a
trained tagger (any kind: mlp, bdt, deepsets, transformer) and records, in
MLflow, what flavour-tagging physicists look at:
accuracy, AUCs, c/uds rejection at fixed b efficiency and b/uds rejection at
fixed c efficiency (``test/rej_c_at_b80``, ``test/rej_uds_at_c50``, ...), ROC and
rejection curves, discriminant distributions, the confusion matrix, training
curves, working points (JSON) and per-event predictions (Parquet and ROOT);
see :func:`flavortag.reporting.report`.

Here: the evaluation of a freshly trained model inside its run
(:func:`evaluate_split`), the event-level report of two-jet events
(:func:`combined_event_report`) and the events a run never trained on
(:func:`held_out_events`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flavortag import tracking
from flavortag.reporting.report import report
from flavortag.reporting.sample import sample_info
from flavortag.reporting.summary import run_summary
from flavortag.scoring.inference import is_torch_model
from flavortag.scoring.tagger import Tagger

if TYPE_CHECKING:
    from flavortag.dataset import DataSettings
    from flavortag.training.settings import TrainJob

log = logging.getLogger("flavortag.evaluate")


def evaluate_split(run: tracking.RunHandle, model: Any, data: Any, split: str, job: TrainJob, run_dir: Path,
                   history: Mapping[str, Sequence[float]] | None = None) -> dict[str, float]:
    """Evaluate a freshly trained model on one split of the training sample, logged to its ``run``."""
    # scored where it was trained (a CPU training on a CUDA machine stays on the CPU)
    tagger = Tagger.from_model(model, device=str(next(model.parameters()).device) if is_torch_model(model) else "cpu")
    tensors = data.tensors[split]
    probs, scheme = tagger.predict_tensors(tensors), tagger.scheme
    events = data.events[data.indices[split]] if data.events is not None else None

    sample = sample_info(job.data.to_dict(), job.config.get("detector"), n_events=len(tensors.labels),
                         events_label=f"{'test' if split == 'test' else split} events")
    # the standard plots only: the plots versus event variables (twice the drawing time) come
    # with `flavortag evaluate` and `flavortag compare`
    out_dir = run_dir / "evaluation"
    flat = report(probs, tensors.labels, job.evaluate, out_dir,
                  prefix=f"{split}/", history=history, events=events, caption=job.run_name,
                  sample=sample, vs_variables=False, scheme=scheme)
    log_report(run, flat, out_dir, title=f"{job.run_name} ({job.model_name}) on {job.data.name or 'data'}",
               n_events=len(tensors.labels))
    return flat


def log_report(run: tracking.RunHandle, flat: Mapping[str, float], out_dir: Path, title: str = "",
               n_events: int | None = None) -> None:
    """Log a :func:`~flavortag.reporting.report` written to ``out_dir`` to ``run``.

    The metrics without their errors (nan figures included, so all runs share
    one metric set), the key figures with errors as ``fig.<name>`` tags and in
    the run description, the lower limits named in ``flavortag.lower_limits``,
    every figure with its error in ``metrics_table.json``
    (:func:`flavortag.reporting.summary.run_summary`), the plots,
    ``working_points.json``, ``metrics.json`` and the predictions.
    """
    summary = run_summary(flat, title=title, n_events=n_events)
    run.log_metrics(summary.metrics)
    run.log_table(summary.table, "metrics_table.json")
    run.set_tags({**summary.figure_tags, tracking.Tag.LOWER_LIMITS: ", ".join(summary.lower_limits) or "none"})
    run.set_note(summary.note)
    run.log_artifacts(out_dir / "plots", artifact_path="plots")
    run.log_artifact(out_dir / "working_points.json")
    run.log_artifact(out_dir / "metrics.json")
    for path in sorted((out_dir / "predictions").glob("predictions.*")):
        run.log_artifact(path, artifact_path="predictions")


def combined_event_report(run: tracking.RunHandle, jet_probs: np.ndarray, jets: Any, evaluate: Mapping[str, Any] | None, out_dir: Path,
                          scheme: Any, caption: str) -> dict[str, float]:
    """The event-level report of two-jet events from both jets' scores (``combine_jets=true``).

    Metrics under ``events/`` (``events/rej_c_at_b80``, ...): the event tagger's
    names on the same events, for a side-by-side comparison (:mod:`flavortag.jet_events`).
    """
    from flavortag.jet_events import combine_jets

    combined = combine_jets(jet_probs, np.asarray(jets["event"]), np.asarray(jets["decay_class"]), scheme)
    keep = combined.labels >= 0
    log.info("event-level combination: %d two-jet events", int(keep.sum()))
    flat = report(combined.probs[keep], combined.labels[keep], evaluate, out_dir,
                  prefix="events/", caption=caption, scheme=combined.scheme)
    run.log_metrics(run_summary(flat, prefix="events/").metrics)
    run.log_artifacts(out_dir, artifact_path="events")
    return flat


def held_out_events(data: DataSettings) -> Any:
    """The events a run never trained on: the test split of its sample (a streaming run: its test files)."""
    from flavortag.dataset import load_sample, load_split_sample

    if data.streaming:
        if not data.test_paths:
            raise ValueError("this run was trained with data.streaming=true and no data.test_paths: "
                             "pass data=<config group> split=all to evaluate it")
        return load_sample(replace(data, paths=data.test_paths))
    sample = load_split_sample(data)
    return sample.events[sample.indices["test"]]
