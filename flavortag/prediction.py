"""Scoring new event files with a trained tagger: what ``flavortag predict`` runs.

For each input file writes ``<stem>.flavortag.parquet`` (and ``.root``) next to
it (or into ``out_dir``): the input events, in their order, with
``prob_uds``, ``prob_cc``, ``prob_bb``, ``D_b`` and ``D_c`` added. No labels
are needed and no metrics are computed; see ``flavortag evaluate`` for those.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from flavortag import tracking
from flavortag.errors import UsageError

log = logging.getLogger("flavortag.predict")


#: Suffixes of event files, stripped from an input's name to make its output's (longest first).
_EVENT_SUFFIXES: tuple[str, ...] = (".txt.gz", ".dat.gz", ".txt", ".dat", ".gz", ".root", ".parquet", ".pq")


def output_stem(input_path: Path, out_dir: str | None) -> Path:
    """``run.1.txt.gz`` -> ``run.1.flavortag`` beside the input (or in ``out_dir``): the whole stem."""
    name = input_path.name
    for suffix in _EVENT_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return (Path(out_dir) if out_dir else input_path.parent) / f"{name}.flavortag"


def plan_outputs(inputs: list[Path], out_dir: str | None, formats: list[str]) -> list[Path]:
    """The output stem of each input; ``ValueError`` if two inputs would write the same file."""
    stems = [output_stem(path, out_dir) for path in inputs]
    seen: dict[Path, Path] = {}
    for path, stem in zip(inputs, stems):
        for fmt in formats:
            target = stem.with_name(f"{stem.name}.{fmt}").resolve()
            if target in seen:
                raise ValueError(
                    f"{path} and {seen[target]} would both be written to {target}: "
                    "predict them separately or with out_dir set apart; nothing written"
                )
            seen[target] = path
    return stems


def predict(cfg: DictConfig) -> list[Path]:
    """Score every input file; returns the written files."""
    from flavortag.batching import build_event_tensors
    from flavortag.calibration import apply_calibration, resolve_calibration
    from flavortag.dataset import resolve_paths
    from flavortag.detector import DetectorModel
    from flavortag.inference import load_model, model_scheme, predict_proba
    from flavortag.io import read_events
    from flavortag.reporting.predictions import write_predictions
    from flavortag.reporting.report import evaluation_settings

    if bool(cfg.get("run_id")) == bool(cfg.get("checkpoint")):
        raise UsageError("give exactly one of run_id=<mlflow run id> or checkpoint=<path>")
    inputs = resolve_paths([cfg.inputs] if isinstance(cfg.inputs, str) else list(cfg.inputs))
    stems = plan_outputs(inputs, cfg.get("out_dir"), [str(f) for f in cfg.formats])
    source = str(cfg.run_id or cfg.checkpoint)
    if cfg.get("run_id"):
        tracking.configure(cfg.tracking, must_exist=True)
    model = load_model(source)
    names = model.feature_names
    detector = DetectorModel.from_config(model.detector)
    max_tracks = int(getattr(model, "max_tracks", 0) or 64)
    settings = evaluation_settings(cfg.get("evaluate"))
    written: list[Path] = []
    for path, stem in zip(inputs, stems):
        events = read_events(str(path), label="unknown")
        calibrated = apply_calibration(events, resolve_calibration(cfg.get("calibration"), events, detector))
        tensors = build_event_tensors(calibrated, track_feature_names=names["track"],
                                      event_feature_names=names["event"], max_tracks=max_tracks,
                                      detector=detector)
        probs = predict_proba(model, tensors, batch_size=int(cfg.batch_size))
        out = write_predictions(probs, events, None, stem, settings["f_c"], settings["f_b"],
                                formats=list(cfg.formats), scheme=model_scheme(model))
        for p in out:
            log.info("wrote %s (%d events)", p, len(events))
            print(p)
        written.extend(out)
    return written
