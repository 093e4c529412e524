"""The evaluate pipeline: a trained tagger scored on a sample, the report logged to MLflow.

Evaluating a run on its own test split adds to that run; evaluating it on
other data (a ``data`` config group, or just ``data.paths=[...]``) makes a
child run (``eval-<data name>``) so the MLflow compare view shows both. A
checkpoint (no run) gets a run of its own. What is reported:
:mod:`flavortag.evaluation` and :func:`flavortag.reporting.report`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flavortag import tracking
from flavortag.dataset import DataSettings, as_paths
from flavortag.errors import UsageError
from flavortag.schema.groups import TrackingSettings

log = logging.getLogger("flavortag.evaluate")


@dataclass(frozen=True)
class EvaluateSettings:
    """The ``evaluate`` command's settings (``configs/evaluate.yaml``).

    The sample: the run's own (``data`` None and no ``paths``), a whole data
    group (``data``), or other files read as the run read its own (``paths``,
    under ``data_name``).
    """

    run_id: str | None
    checkpoint: str | None
    split: str
    output_dir: Path
    tracking: TrackingSettings
    evaluate: Mapping[str, Any]
    data: DataSettings | None = None
    paths: tuple[str, ...] = ()
    data_name: str = "custom"
    calibration: str | None = None
    combine_jets: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> EvaluateSettings:
        """Parse a resolved ``evaluate`` config (a plain mapping)."""
        run_id, checkpoint = config.get("run_id"), config.get("checkpoint")
        if bool(run_id) == bool(checkpoint):
            raise UsageError("give exactly one of run_id=<mlflow run id> or checkpoint=<path>")
        given = config.get("data") or {}
        data: DataSettings | None = None
        paths: tuple[str, ...] = ()
        if given.get("paths") is not None:
            if "max_tracks" in given:  # data=<group>: a whole data config
                data = DataSettings.from_config(given)
            else:
                paths = as_paths(given["paths"])
        calibration = config.get("calibration")
        return cls(run_id=str(run_id) if run_id else None, checkpoint=str(checkpoint) if checkpoint else None,
                   split=str(config.get("split", "test")), output_dir=Path(str(config.get("output_dir"))),
                   tracking=TrackingSettings.from_config(config.get("tracking")),
                   evaluate=dict(config.get("evaluate") or {}), data=data, paths=paths,
                   data_name=str(given.get("name") or "custom"),
                   calibration=None if calibration is None else str(calibration),
                   combine_jets=bool(config.get("combine_jets", False)))


def _trained(settings: EvaluateSettings) -> tuple[Any, dict[str, Any]]:
    """The model and its training config (plain data; empty for a checkpoint without one)."""
    from flavortag.scoring.inference import load_model

    if settings.run_id:
        return load_model(settings.run_id), tracking.load_run_config(settings.run_id)
    from flavortag.safe_load import load_torch_file

    checkpoint = str(settings.checkpoint)
    blob = load_torch_file(checkpoint) if checkpoint.endswith(".pt") else {}
    return load_model(checkpoint), dict(blob.get("config") or {})


def evaluate_run(settings: EvaluateSettings) -> tuple[str, dict[str, float]]:
    """Evaluate a run (``run_id``) or a checkpoint (``checkpoint``) on a sample.

    Returns the model's name (the training run name) and the flat metrics.
    """
    run_id, checkpoint = settings.run_id, settings.checkpoint
    tracking.configure(settings.tracking, must_exist=bool(run_id))
    # torch and scikit-learn after the store: a missing store is said before their imports
    from flavortag.dataset import load_sample
    from flavortag.evaluation import combined_event_report, held_out_events, log_report
    from flavortag.reporting.report import report
    from flavortag.reporting.sample import sample_info
    from flavortag.scoring.tagger import Tagger
    model, train_cfg = _trained(settings)
    own_data = settings.data is None and not settings.paths
    if settings.data is not None:
        data = settings.data
    else:
        data = DataSettings.of_run(train_cfg)
        if settings.paths:  # other files, read and padded as the run read its own
            data = data.with_paths(settings.paths, name=settings.data_name)
    split = settings.split
    if split not in ("all", "test"):
        raise ValueError(f"split must be 'test' (the run's held-out events) or 'all', not {split!r}")
    if split == "test" and own_data:
        events = held_out_events(data)
    elif own_data and data.streaming:
        # a streaming run's held-out events are its test files, not a split of data.paths
        events = held_out_events(data)
    else:
        events = load_sample(data)
    tagger = Tagger.from_model(model)
    prediction = tagger.predict(events, settings.calibration)
    calibration, tensors, probs = prediction.calibration, prediction.tensors, prediction.probs
    if calibration is not None:
        log.info("significances with the calibrated resolution: d0 x %.3f, z0 x %.3f",
                 calibration.d0_scale, calibration.z0_scale)
    model_name = str(train_cfg.get("run_name", "model"))
    data_name = data.name or "data"
    caption = f"{model_name} on {data_name}" + (" (test split)" if split == "test" else "")
    tags = {tracking.Tag.KIND: tracking.Kind.EVALUATION, tracking.Tag.DATA: data_name,
            tracking.Tag.MODEL: str((train_cfg.get("model") or {}).get("name", "unknown"))}
    with ExitStack() as stack:
        if run_id:
            run = stack.enter_context(tracking.start_run(settings.tracking, run_id=run_id))
            if not own_data:
                # other data: a child run, in the parent's experiment (not the default one)
                run = stack.enter_context(tracking.start_child_run(run, f"eval-{data_name}", tags))
                run.log_params({"eval.data": data_name, "eval.split": split, "eval.source_run": run_id})
        else:
            run = stack.enter_context(tracking.start_run(
                settings.tracking, run_name=f"eval-{Path(str(checkpoint)).stem}-{data_name}", tags=tags))
            run.log_params({"eval.data": data_name, "eval.split": split, "eval.checkpoint": str(checkpoint)})
        if calibration is not None:
            run.log_calibration(calibration)
        sample_node = data.to_dict()
        if own_data and data.streaming:
            sample_node["paths"] = list(data.test_paths)
        sample = sample_info(sample_node, train_cfg.get("detector"), n_events=len(tensors.labels),
                             events_label="test events" if split == "test" and own_data else "events")
        flat = report(probs, tensors.labels, settings.evaluate, settings.output_dir, prefix="test/",
                      events=events, caption=caption, sample=sample, scheme=tagger.scheme)
        log_report(run, flat, settings.output_dir, title=caption, n_events=len(tensors.labels))
        if settings.combine_jets and "event" in events.fields:
            flat.update(combined_event_report(run, probs, events, settings.evaluate, settings.output_dir / "events",
                                              tagger.scheme, f"{caption} (events from 2 jets)"))
        print(tracking.where_written(settings.output_dir, run))
    return model_name, flat
