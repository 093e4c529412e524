"""The predict pipeline: every input file scored, streaming, into ``<stem>.flavortag.<format>``.

See :mod:`flavortag.scoring.prediction` for what is written and how the inputs stream.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flavortag.errors import UsageError
from flavortag.schema.groups import TrackingSettings
from flavortag.scoring.prediction import (
    DEFAULT_CALIBRATION_EVENTS,
    DEFAULT_STEP_EVENTS,
    input_calibration,
    plan_outputs,
    predict_file,
)

log = logging.getLogger("flavortag.predict")


@dataclass(frozen=True)
class PredictSettings:
    """The ``predict`` command's settings (``configs/predict.yaml``)."""

    inputs: tuple[str, ...]
    run_id: str | None = None
    checkpoint: str | None = None
    out_dir: str | None = None
    formats: tuple[str, ...] = ("parquet", "root")
    batch_size: int = 2048
    calibration: str | None = None
    calibration_events: int = DEFAULT_CALIBRATION_EVENTS
    step_size: int = DEFAULT_STEP_EVENTS
    tracking: TrackingSettings = TrackingSettings()
    evaluate: Mapping[str, Any] | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PredictSettings:
        """Parse a resolved ``predict`` config (a plain mapping)."""
        run_id, checkpoint = config.get("run_id"), config.get("checkpoint")
        if bool(run_id) == bool(checkpoint):
            raise UsageError("give exactly one of run_id=<mlflow run id> or checkpoint=<path>")
        inputs = config["inputs"]
        calibration = config.get("calibration")
        return cls(inputs=(str(inputs),) if isinstance(inputs, str) else tuple(str(p) for p in inputs),
                   run_id=str(run_id) if run_id else None, checkpoint=str(checkpoint) if checkpoint else None,
                   out_dir=None if config.get("out_dir") is None else str(config["out_dir"]),
                   formats=tuple(str(f) for f in config.get("formats") or ("parquet", "root")),
                   batch_size=int(config.get("batch_size") or 2048),
                   calibration=None if calibration is None else str(calibration),
                   calibration_events=int(config.get("calibration_events") or DEFAULT_CALIBRATION_EVENTS),
                   step_size=int(config.get("step_size") or DEFAULT_STEP_EVENTS),
                   tracking=TrackingSettings.from_config(config.get("tracking")),
                   evaluate=config.get("evaluate"))


def predict(settings: PredictSettings) -> list[Path]:
    """Score every input file, streaming (see :mod:`flavortag.scoring.prediction`); returns the written files."""
    from flavortag.dataset import resolve_paths

    inputs = resolve_paths(list(settings.inputs))
    formats = list(settings.formats)
    stems = plan_outputs(inputs, settings.out_dir, formats)
    # torch and MLflow after the inputs: a mistyped file name is said in a second, not after their imports
    from flavortag import tracking
    from flavortag.detector import DetectorModel
    from flavortag.reporting.report import evaluation_settings
    from flavortag.scoring.inference import load_model
    from flavortag.scoring.tagger import Tagger
    if settings.run_id:
        tracking.configure(settings.tracking, must_exist=True)
    model = load_model(str(settings.run_id or settings.checkpoint))
    discriminants = evaluation_settings(settings.evaluate)
    tagger = Tagger.from_model(model, str(settings.run_id or settings.checkpoint), batch_size=settings.batch_size,
                               f_c=discriminants["f_c"], f_b=discriminants["f_b"])
    detector = DetectorModel.from_config(tagger.detector_config)
    step = settings.step_size
    written: list[Path] = []
    for path, stem in zip(inputs, stems):
        calibration = input_calibration(settings.calibration, path, detector, step, settings.calibration_events,
                                        tagger.level, tagger.reference)
        out, n_events = predict_file(tagger, calibration, path, stem, formats, step)
        for p in out:
            log.info("wrote %s (%d events)", p, n_events)
            print(p)
        written.extend(out)
    return written
