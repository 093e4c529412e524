"""The robustness pipeline: the report of ``flavortag robustness`` (``configs/robustness.yaml``).

Each run is scored on its own held-out test split (nominal) and on every
shifted sample, with the calibration modes asked for; ablations retrain each
run without one feature group first (their own MLflow runs, tagged
``flavortag.ablation_of``). Everything lands in one MLflow parent run
(tables as Markdown and CSV, overlay plots, the fitted calibrations) with a
child run per (tagger, sample) holding ``nominal/``, ``shifted/``, ``kept/`` and
``sf/`` (scale factors at the nominal working points) metrics, and ``ceiling/`` /
``of_ceiling/`` where ``ceilings`` names a tagger trained on that sample's own
detector (scored there without calibration: what a tagger that knows that detector reaches). A sample's
calibration fit is made once and reused for every tagger; a refused fit leaves
that sample out of the mode's rows, with a log line.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flavortag import robustness as rb
from flavortag import tracking
from flavortag.calibration import MIN_TRACKS, CalibrationError
from flavortag.dataset import DataSettings
from flavortag.evaluation import held_out_events
from flavortag.io.api import EVENT_SUFFIXES
from flavortag.schema.groups import TrackingSettings, is_bdt

log = logging.getLogger("flavortag.robustness")


@dataclass(frozen=True)
class RobustnessSettings:
    """The ``robustness`` command's settings (``configs/robustness.yaml``)."""

    runs: tuple[str, ...]
    samples: tuple[Any, ...]
    output_dir: Path
    tracking: TrackingSettings
    calibration: str = "none"
    calibration_min_tracks: int = MIN_TRACKS
    ceilings: tuple[tuple[str, str], ...] = ()
    ablations: tuple[str, ...] = ()
    ablation_epochs: int | None = None
    max_events_per_class: int | None = None
    run_name: str = "robustness"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RobustnessSettings:
        """Parse a resolved ``robustness`` config (a plain mapping)."""
        epochs, cap = config.get("ablation_epochs"), config.get("max_events_per_class")
        return cls(runs=tuple(str(r) for r in config.get("runs") or ()),
                   samples=tuple(config.get("samples") or ()), output_dir=Path(str(config.get("output_dir"))),
                   tracking=TrackingSettings.from_config(config.get("tracking")),
                   calibration=str(config.get("calibration", "none")),
                   calibration_min_tracks=int(config.get("calibration_min_tracks") or MIN_TRACKS),
                   ceilings=ceiling_pairs(config.get("ceilings")),
                   ablations=tuple(str(a) for a in config.get("ablations") or ()),
                   ablation_epochs=None if epochs is None else int(epochs),
                   max_events_per_class=None if cap is None else int(cap),
                   run_name=str(config.get("run_name") or "robustness"))


def ceiling_pairs(entries: Any) -> tuple[tuple[str, str], ...]:
    """``(sample, run id)`` of ``ceilings`` (``["<sample>:<run id>", ...]`` or a mapping)."""
    if isinstance(entries, Mapping):
        return tuple((str(s), str(r)) for s, r in entries.items())
    pairs = []
    for entry in entries or ():
        sample, sep, run_id = str(entry).partition(":")
        if not sep or not sample or not run_id:
            raise ValueError(f"ceilings entry {entry!r}: write it <sample name>:<run id>, e.g. "
                             "ceilings=[combined:0a1b2c...]")
        pairs.append((sample, run_id))
    return tuple(pairs)


def merged(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged in (nested mappings merged key by key, anything else replaced)."""
    out = dict(base)
    for key, value in changes.items():
        old = out.get(key)
        out[key] = merged(old, value) if isinstance(old, Mapping) and isinstance(value, Mapping) else value
    return out


def sample_specs(entries: Any) -> list[tuple[str, list[str]]]:
    """``(name, files)`` of each ``samples`` entry (directory, file, glob or ``{name, paths}``)."""
    specs: list[tuple[str, list[str]]] = []
    for entry in list(entries or []):
        if isinstance(entry, Mapping):
            name, paths = str(entry["name"]), [str(p) for p in entry["paths"]]
        else:
            path = Path(str(entry))
            if path.is_dir():
                paths = sorted(str(p) for p in path.iterdir()
                               if p.is_file() and str(p).endswith(EVENT_SUFFIXES))
                if not paths:
                    raise FileNotFoundError(f"{path} is a directory without event files "
                                            f"({', '.join(EVENT_SUFFIXES)})")
                name = path.name
            else:
                paths = sorted(glob.glob(str(path))) if any(c in str(path) for c in "*?[") else [str(path)]
                if not paths or not Path(paths[0]).exists():
                    raise FileNotFoundError(f"no sample at {path}: make one with e.g. `flavortag "
                                            f"generate detector.ip_resolution_scale=1.5 out={path}`")
                name = path.stem.split(".")[0] if path.is_file() else path.parent.name
        specs.append((name, paths))
    names = [n for n, _ in specs]
    if len(set(names)) != len(names) or "nominal" in names:
        raise ValueError(f"sample names must be unique and not 'nominal': {names}; "
                         "use {name: ..., paths: [...]} entries")
    return specs


def _retrain_without(run_id: str, group: str, settings: RobustnessSettings, out_dir: Path) -> str:
    """Train the run's tagger again without ablation ``group``; returns the new run id."""
    from flavortag.pipelines.train import train
    from flavortag.scoring.inference import load_model
    from flavortag.training.settings import TrainJob

    train_cfg = tracking.load_run_config(run_id)
    names = load_model(run_id).feature_names
    features = {"track": rb.ablation_features(group, "track", names["track"]),
                "event": rb.ablation_features(group, "event", names["event"])}
    model_name, run_name = str(train_cfg["model"]["name"]), str(train_cfg["run_name"])
    if (is_bdt(model_name) or model_name == "mlp") and not features["event"]:
        raise ValueError(f"{run_name} has no event features left without {group}")
    overrides: dict[str, Any] = {
        "features": features, "run_name": f"{run_name}-no_{group}",
        "output_dir": str(out_dir / f"{run_name}-no_{group}"),
        "tracking": dataclasses.asdict(settings.tracking),
        "evaluate_after_training": True,
    }
    pair = train_cfg["model"].get("pair_features")
    if group == "impact_parameters" and pair is not None:
        # the pairs' distance of closest approach is built from the track positions
        overrides["model"] = {"pair_features": [p for p in pair if p != "ln_dca"]}
    if settings.ablation_epochs is not None:
        overrides["trainer"] = {"max_epochs": settings.ablation_epochs}
    log.info("retraining %s without %s (%d track, %d event features)", run_name, group,
             len(features["track"]), len(features["event"]))
    result = train(TrainJob.from_config(merged(train_cfg, overrides)))
    tracking.RunHandle(str(result["run_id"])).set_tags({tracking.Tag.ABLATION_OF: run_id,
                                                       tracking.Tag.KIND: tracking.Kind.ABLATION})
    return str(result["run_id"])


def robustness(settings: RobustnessSettings) -> dict[str, Any]:
    """Build the report (see the module doc); returns the tables and the parent run id."""
    from flavortag.dataset import load_sample
    from flavortag.reporting.sample import sample_info
    from flavortag.scoring.inference import load_model

    runs = list(settings.runs)
    if not runs:
        raise ValueError("give the taggers to study: runs=[<run id>,...] (MLflow run ids)")
    specs = sample_specs(settings.samples)
    if not specs:
        raise ValueError("give the shifted samples: samples=[<directory or files>,...]")
    mode = settings.calibration
    modes = list(rb.CALIBRATION_GROUPS.get(mode, (mode,)))
    for m in modes:
        if m not in rb.CALIBRATION_MODES:
            raise ValueError(f"calibration must be one of {', '.join(rb.CALIBRATION_MODES)}, "
                             f"{' or '.join(rb.CALIBRATION_GROUPS)}, not {mode!r}")
    unknown = sorted({s for s, _ in settings.ceilings} - {n for n, _ in specs})
    if unknown:
        raise ValueError(f"ceilings name samples not in samples=: {', '.join(unknown)}; the samples are "
                         f"{', '.join(n for n, _ in specs)}")
    ablations = list(settings.ablations)
    for a in ablations:
        if a not in rb.ABLATION_GROUPS:
            raise ValueError(f"unknown ablation {a!r}; known: {sorted(rb.ABLATION_GROUPS)}")
    out_dir = settings.output_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    tracking.configure(settings.tracking)

    taggers: list[tuple[str, str]] = []  # (label, run id)
    for run_id in runs:
        name = str(tracking.load_run_config(run_id).get("run_name", run_id[:8]))
        taggers.append((name, run_id))
        for group in ablations:
            taggers.append((f"{name} -{group}", _retrain_without(run_id, group, settings, out_dir)))

    cap = settings.max_events_per_class
    shifted_events = {name: load_sample(DataSettings(paths=tuple(paths), max_events_per_class=cap))
                      for name, paths in specs}
    scored: dict[str, dict[str, rb.Scored]] = {}
    fits: dict[tuple[str, str, str], Any] = {}  # (sample, mode, detector[, reference]) -> the sample's fit
    nominal_info = None
    for label, run_id in taggers:
        model = load_model(run_id)
        train_cfg = tracking.load_run_config(run_id)
        nominal_events = held_out_events(DataSettings.of_run(train_cfg))
        if nominal_info is None:
            nominal_info = sample_info(train_cfg["data"], train_cfg.get("detector"), n_events=len(nominal_events))
        for m in modes:
            key = label if len(modes) == 1 else f"{label} [calib {m}]"
            entry: dict[str, rb.Scored] = {}
            for sample, events in [("nominal", nominal_events), *shifted_events.items()]:
                # auto chooses against the tagger's own training fit: its fit is the tagger's alone
                reference = getattr(model, "training_resolution", None) if m == "auto" else None
                fit_key = (sample, m, json.dumps([getattr(model, "detector", None), reference], sort_keys=True))
                try:
                    if isinstance(fits.get(fit_key), CalibrationError):
                        raise fits[fit_key]
                    probs, labels, calib = rb.score_events(
                        model, events, fits.get(fit_key, m), min_tracks=settings.calibration_min_tracks)
                except CalibrationError as err:
                    log.warning("%s on %s: %s", key, sample, err)
                    if sample != "nominal":
                        fits[fit_key] = err
                    continue
                if sample != "nominal" and calib is not None:
                    fits[fit_key] = rb.without_reference(calib)
                entry[sample] = rb.Scored(key, sample, rb.evaluate_scores(probs, labels), calib, probs, labels)
                log.info("%s on %s: acc %.3f%s", key, sample, entry[sample].result.accuracy,
                         f" (d0 scale {calib.d0_scale:.3f})" if calib else "")
            scored[key] = entry

    ceilings: dict[str, rb.Scored] = {}
    for sample, run_id in settings.ceilings:
        ceilings[sample] = rb.score_ceiling(load_model(run_id), shifted_events[sample], sample,
                                            f"ceiling {run_id[:8]}")
        log.info("ceiling on %s (run %s): acc %.3f", sample, run_id, ceilings[sample].result.accuracy)
    tables = rb.robustness_rows(scored)
    ceiling_tables = rb.ceiling_rows(scored, ceilings) if ceilings else {}
    text = rb.report_markdown(scored, tables, ceiling_tables)
    (out_dir / "robustness.md").write_text(text)
    rb.write_csv(tables, out_dir / "robustness.csv")
    plots = rb.plot_overlay(scored, out_dir / "plots" / "overlay_b_tagger", tagger="b", sample=nominal_info)
    plots += rb.plot_overlay(scored, out_dir / "plots" / "overlay_c_tagger", tagger="c", sample=nominal_info)
    calibrations = {f"{t}/{s}": item.calibration.to_dict() for t, by in scored.items()
                    for s, item in by.items() if item.calibration is not None}
    (out_dir / "calibrations.json").write_text(json.dumps(calibrations, indent=2))

    with tracking.start_run(settings.tracking, run_name=settings.run_name,
                            tags={tracking.Tag.KIND: "robustness"}) as parent:
        parent.log_params({"runs": ",".join(runs), "samples": ",".join(n for n, _ in specs),
                             "ceilings": ",".join(f"{s}:{r}" for s, r in settings.ceilings) or "none",
                             "calibration": mode, "ablations": ",".join(ablations) or "none"})
        for name in ("robustness.md", "robustness.csv", "calibrations.json"):
            parent.log_artifact(out_dir / name)
        for path in plots:
            parent.log_artifact(path, artifact_path="plots")
        for tagger, by_sample in scored.items():
            for sample, item in by_sample.items():
                if sample == "nominal":
                    continue
                with tracking.start_child_run(parent, f"{tagger} on {sample}",
                                              {tracking.Tag.KIND: "robustness-child"}) as child:
                    child.log_params({"tagger": tagger, "sample": sample})
                    if "nominal" not in by_sample:
                        continue
                    if sample in ceilings:
                        child.log_metrics(rb.ceiling_metrics(item, ceilings[sample]))
                    child.log_metrics(rb.kept_metrics(by_sample["nominal"], item))
                    child.log_metrics(rb.scale_factor_metrics_of(by_sample["nominal"], item))
                    if item.calibration is not None:
                        child.log_metrics({"calibration/d0_scale": item.calibration.d0_scale,
                                              "calibration/z0_scale": item.calibration.z0_scale})
        parent_id = parent.run_id
    return {"tables": tables, "ceiling_tables": ceiling_tables, "markdown": text, "parent_run_id": parent_id,
            "scored": scored}
