"""The evaluate stage: ``flavortag evaluate run_id=...`` (Hydra, ``configs/evaluate.yaml``).

Scores a sample with a trained tagger (any kind: mlp, bdt, deepsets,
transformer) and records, in MLflow, what flavour-tagging physicists look at:
accuracy, AUCs, c/uds rejection at fixed b efficiency and b/uds rejection at
fixed c efficiency (``test/rej_c_at_b80``, ``test/rej_uds_at_c50``, ...), ROC and
rejection curves, discriminant distributions, the confusion matrix, training
curves, working points (JSON) and per-event predictions (Parquet and ROOT).

Evaluating a run on its own test split adds to that run; evaluating it on
other data makes a child run (``eval-<data name>``) so the MLflow compare
view shows both.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import awkward as ak
import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from flavortag import metrics as ftm
from flavortag import plots, tracking

log = logging.getLogger("flavortag.evaluate")

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")
PREDICTION_FIELDS: tuple[str, ...] = ("prob_uds", "prob_cc", "prob_bb", "D_b", "D_c")


def evaluation_settings(eval_cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    cfg = dict(eval_cfg or {})
    return {
        "f_c": ftm.DEFAULT_F_C if cfg.get("f_c") is None else float(cfg["f_c"]),
        "f_b": ftm.DEFAULT_F_B if cfg.get("f_b") is None else float(cfg["f_b"]),
        "efficiencies": tuple(float(e) for e in (cfg.get("efficiencies") or ftm.DEFAULT_EFFICIENCIES)),
        "write_predictions": bool(cfg.get("write_predictions", True)),
    }


def prediction_table(probs: np.ndarray, f_c: float, f_b: float) -> dict[str, np.ndarray]:
    """Per-event output columns: class probabilities and the b / c discriminants."""
    return {
        "prob_uds": probs[:, 0].astype(np.float32),
        "prob_cc": probs[:, 1].astype(np.float32),
        "prob_bb": probs[:, 2].astype(np.float32),
        "D_b": ftm.discriminant_b(probs, f_c).astype(np.float32),
        "D_c": ftm.discriminant_c(probs, f_b).astype(np.float32),
    }


def write_predictions(
    probs: np.ndarray,
    events: ak.Array | None,
    labels: np.ndarray | None,
    path_stem: str | Path,
    f_c: float,
    f_b: float,
    formats: Sequence[str] = ("parquet", "root"),
) -> list[Path]:
    """Write per-event predictions, in input order, as ``<stem>.parquet`` / ``<stem>.root``.

    With ``events`` the original events are written with the prediction
    fields added (readable by :func:`flavortag.io.read_events`); without,
    a flat table of the predictions and ``label``.
    """
    from flavortag.io import write_events

    columns = prediction_table(probs, f_c, f_b)
    if events is not None:
        out = events
        for name, values in columns.items():
            out = ak.with_field(out, values, name)
    else:
        fields = dict(columns)
        if labels is not None:
            fields["label"] = np.asarray(labels, dtype=np.int32)
        out = ak.zip(fields, depth_limit=1)
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        suffix = {"parquet": ".parquet", "root": ".root"}[fmt]
        target = stem.with_name(stem.name + suffix)
        if events is not None:
            write_events(out, target, format=fmt)
        else:
            _write_table(out, target, fmt)
        written.append(target)
    return written


def _write_table(table: ak.Array, path: Path, fmt: str) -> None:
    from flavortag.io.atomic import atomic_output

    with atomic_output(path) as tmp:
        if fmt == "parquet":
            ak.to_parquet(table, tmp)
        else:
            import uproot

            columns = {name: ak.to_numpy(table[name]) for name in table.fields}
            with uproot.recreate(tmp) as fh:
                # mktree: a TTree (plain assignment would write an RNTuple in uproot >= 5.7)
                fh.mktree("predictions", {name: col.dtype for name, col in columns.items()})
                fh["predictions"].extend(columns)


def report(
    probs: np.ndarray,
    labels: np.ndarray,
    eval_cfg: Mapping[str, Any] | None,
    out_dir: str | Path,
    prefix: str = "test/",
    history: Mapping[str, Sequence[float]] | None = None,
    events: ak.Array | None = None,
    caption: str | None = None,
    log_to_mlflow: bool = True,
) -> dict[str, float]:
    """Compute metrics, make plots, working points and predictions; log them to the active run.

    Returns the flat metrics (``test/acc``, ``test/rej_c_at_b80``, ...).
    """
    settings = evaluation_settings(eval_cfg)
    out = Path(out_dir)
    plot_dir = out / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    result = ftm.evaluate_predictions(probs, labels, efficiencies=settings["efficiencies"],
                                      f_c=settings["f_c"], f_b=settings["f_b"])
    # zero mistag: log the 95% CL lower limit rather than inf (stays finite in MLflow and JSON)
    flat = result.flat_metrics(prefix, infinite_rejection="limit")
    plots.plot_rejection({caption or "model": result}, plot_dir / "rejection_b", tagger="b", caption=caption)
    plots.plot_rejection({caption or "model": result}, plot_dir / "rejection_c", tagger="c", caption=caption)
    plots.plot_roc(result, plot_dir / "roc", caption=caption)
    plots.plot_discriminants(probs, labels, plot_dir / "discriminants",
                             f_c=settings["f_c"], f_b=settings["f_b"], caption=caption)
    plots.plot_confusion(result, plot_dir / "confusion", caption=caption)
    if history:
        curves = {k: v for k, v in history.items() if "loss" in k or "acc" in k}
        if curves and max(len(v) for v in curves.values()) > 1:
            plots.plot_training_curves(curves, plot_dir / "training_curves", caption=caption)
    wp = result.working_points()
    (out / "working_points.json").write_text(json.dumps(wp, indent=2))
    (out / "metrics.json").write_text(
        json.dumps({k: (v if np.isfinite(v) else None) for k, v in flat.items()}, indent=2))
    pred_paths: list[Path] = []
    if settings["write_predictions"]:
        pred_paths = write_predictions(probs, events, labels, out / "predictions" / "predictions",
                                       settings["f_c"], settings["f_b"])
    log.info("%s\n%s", caption or "evaluation",
             ftm.format_comparison_table({caption or "model": flat}, prefix=prefix))
    if log_to_mlflow:
        import mlflow

        # every key is logged (nan errors included) so all runs share one metric set
        mlflow.log_metrics(flat)
        mlflow.log_artifacts(str(plot_dir), artifact_path="plots")
        mlflow.log_dict(wp, "working_points.json")
        mlflow.log_artifact(str(out / "metrics.json"))
        for path in pred_paths:
            mlflow.log_artifact(str(path), artifact_path="predictions")
    return flat


def evaluate_split(model: Any, data: Any, split: str, cfg: DictConfig, run_dir: Path,
                   history: Mapping[str, Sequence[float]] | None = None) -> dict[str, float]:
    """Evaluate a freshly trained model on one split of the training sample (inside its run)."""
    from flavortag.inference import predict_proba

    tensors = data.tensors[split]
    probs = predict_proba(model, tensors)
    events = data.events[data.indices[split]] if data.events is not None else None
    return report(probs, tensors.labels, cfg.get("evaluate"), run_dir / "evaluation",
                  prefix=f"{split}/", history=history, events=events, caption=str(cfg.run_name))


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Evaluate a run (``run_id``) or a checkpoint (``checkpoint``) on a sample."""
    from flavortag.batching import build_event_tensors
    from flavortag.calibration import apply_calibration, resolve_calibration
    from flavortag.dataset import load_sample, split_indices
    from flavortag.detector import DetectorModel
    from flavortag.inference import load_model, predict_proba

    tracking.configure(cfg.tracking)
    run_id = cfg.get("run_id")
    checkpoint = cfg.get("checkpoint")
    if bool(run_id) == bool(checkpoint):
        raise ValueError("give exactly one of run_id=<mlflow run id> or checkpoint=<path>")
    if run_id:
        model = load_model(str(run_id))
        train_cfg = tracking.load_run_config(str(run_id))
    else:
        import torch

        model = load_model(str(checkpoint))
        blob = torch.load(str(checkpoint), map_location="cpu", weights_only=False) \
            if str(checkpoint).endswith(".pt") else {}
        train_cfg = OmegaConf.create(blob.get("config", {}))
    own_data = cfg.get("data") is None
    if own_data and "data" not in train_cfg:
        raise ValueError("this checkpoint carries no data config: pass data=<config group>")
    data_cfg = train_cfg.data if own_data else cfg.data
    split = str(cfg.split)
    streamed = own_data and bool(train_cfg.data.get("streaming", False))
    if streamed:
        # a streaming run's held-out events are its test files, not a split of data.paths
        if not train_cfg.data.get("test_paths"):
            raise ValueError("this run was trained with data.streaming=true and no data.test_paths: "
                             "pass data=<config group> split=all to evaluate it")
        data_cfg = OmegaConf.merge(train_cfg.data, {"paths": train_cfg.data.test_paths})
    events = load_sample(data_cfg)
    if split == "test" and own_data and not streamed:
        fractions = {str(k): float(v) for k, v in train_cfg.data.split.items()}
        idx = split_indices(np.asarray(events["label"]), fractions,
                            int(train_cfg.data.get("split_seed", train_cfg.get("seed", 0))))["test"]
        events = events[idx]
    elif split not in ("all", "test"):
        raise ValueError(f"split must be 'test' (the run's held-out events) or 'all', not {split!r}")
    names = model.feature_names
    max_tracks = int(train_cfg.data.max_tracks) if "data" in train_cfg else int(data_cfg.max_tracks)
    detector = DetectorModel.from_config(model.detector)
    calibration = resolve_calibration(cfg.get("calibration"), events, detector)
    if calibration is not None:
        log.info("significances with the calibrated resolution: d0 x %.3f, z0 x %.3f",
                 calibration.d0_scale, calibration.z0_scale)
    tensors = build_event_tensors(apply_calibration(events, calibration),
                                  track_feature_names=names["track"],
                                  event_feature_names=names["event"], max_tracks=max_tracks,
                                  detector=detector,
                                  sort_by=data_cfg.get("sort_by", "E"))
    probs = predict_proba(model, tensors)
    model_name = str(train_cfg.get("run_name", "model")) if "run_name" in train_cfg else "model"
    out_dir = Path(str(cfg.output_dir))
    data_name = str(data_cfg.get("name", "data"))
    caption = f"{model_name} on {data_name}" + (" (test split)" if split == "test" else "")
    import mlflow

    tags = {"flavortag.kind": "evaluation", "flavortag.data": data_name,
            "flavortag.model": str(train_cfg.get("model", {}).get("name", "unknown"))}
    with ExitStack() as stack:
        if run_id:
            parent_run = stack.enter_context(tracking.start_run(cfg.tracking, run_id=str(run_id)))
            if not own_data:
                # other data: a child run, in the parent's experiment (not the default one)
                stack.enter_context(mlflow.start_run(run_name=f"eval-{data_name}", nested=True, tags=tags,
                                                     experiment_id=parent_run.info.experiment_id))
                mlflow.log_params({"eval.data": data_name, "eval.split": split,
                                   "eval.source_run": str(run_id)})
        else:
            stack.enter_context(tracking.start_run(
                cfg.tracking, run_name=f"eval-{Path(str(checkpoint)).stem}-{data_name}", tags=tags))
            mlflow.log_params({"eval.data": data_name, "eval.split": split,
                               "eval.checkpoint": str(checkpoint)})
        if calibration is not None:
            tracking.log_calibration(calibration)
        return report(probs, tensors.labels, cfg.get("evaluate"), out_dir, prefix="test/",
                      events=events, caption=caption)


@hydra.main(config_path=CONFIG_DIR, config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``flavortag evaluate``."""
    flat = evaluate(cfg)
    print(ftm.format_comparison_table({"model": flat}))


__all__ = ["PREDICTION_FIELDS", "evaluate", "evaluate_split", "prediction_table",
           "report", "write_predictions"]


if __name__ == "__main__":
    main()
