"""One training job from a composed config: data, fit, checkpoints and the MLflow record."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from flavortag import tracking
from flavortag.models import count_parameters
from flavortag.training.bdt import fit_bdt
from flavortag.training.checkpoint import find_resume_checkpoint
from flavortag.training.data import SPLIT_CONTEXT, PreparedData, prepare_data, sample_records
from flavortag.training.loop import fit_torch
from flavortag.training.runtime import Distributed
from flavortag.training.settings import TrainerSettings

log = logging.getLogger("flavortag.train")


def log_samples(cfg: DictConfig, data: PreparedData) -> None:
    """Log each split of the training sample as an MLflow dataset input (name, digest, class counts)."""
    name = str(cfg.data.get("name") or "data")
    for split, (digest, counts, source) in sample_records(cfg, data).items():
        tracking.log_dataset_input(f"{name}/{split}", digest, counts, source, context=SPLIT_CONTEXT[split])


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job from a composed config; returns run id, history and test metrics."""
    run_dir = Path(str(cfg.get("output_dir") or "outputs/train")).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    is_torch = str(cfg.model.name) != "bdt"
    if not is_torch and cfg.data.get("streaming", False):
        raise ValueError("model=bdt trains on the whole sample in memory: data.streaming=true "
                         "is for the torch models")
    dist = Distributed(bool(cfg.trainer.get("distributed", False)), str(cfg.trainer.get("backend", "auto")))
    try:
        data = prepare_data(cfg, keep_events=bool(cfg.get("evaluate_after_training", False)))
        # The run to log into: a fresh one, or the run of the checkpoint being resumed.
        resume_path = find_resume_checkpoint(TrainerSettings.from_config(cfg.trainer).resume, run_dir / "checkpoints") if is_torch else None
        resume_run_id = None
        if resume_path is not None:
            resume_run_id = torch.load(resume_path, map_location="cpu", weights_only=False)["train_state"].get("run_id")
        if not dist.is_main:
            model, state = fit_torch(cfg, data, run_dir, dist)
            return {"run_id": None, "history": state.history, "metrics": {}}
        with tracking.start_run(cfg.tracking, run_name=str(cfg.run_name), run_id=resume_run_id,
                                tags={"flavortag.model": str(cfg.model.name),
                                      "flavortag.data": str(cfg.data.get("name", ""))}) as run:
            if resume_run_id is None:
                tracking.log_config(cfg)
                log_samples(cfg, data)
                tracking.log_dict({"track": data.track_names, "event": data.event_names}, "features.json")
                tracking.log_dict(data.detector.to_dict(), "detector.json")
                tracking.log_params({f"n_{k}_events": n for k, n in data.n_events().items()})
            if is_torch:
                model, state = fit_torch(cfg, data, run_dir, dist, run_id=run.info.run_id)
                if resume_run_id is None:
                    tracking.log_params({"n_parameters": count_parameters(model)})
                for name in ("best.pt", "last.pt"):
                    path = run_dir / "checkpoints" / name
                    if path.exists():
                        tracking.log_artifact(path, artifact_path="checkpoints")
            else:
                model, state = fit_bdt(cfg, data)
                ckpt = run_dir / "checkpoints" / "bdt.pkl"
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                with open(ckpt, "wb") as fh:
                    pickle.dump(model, fh)
                tracking.log_artifact(ckpt, artifact_path="checkpoints")
            tracking.log_metrics({"best/val_loss": state.best_val_loss, "best/epoch": state.best_epoch})
            tracking.log_dict(state.history, "history.json")
            tracking.log_model(model, is_torch)
            metrics: dict[str, float] = {}
            if cfg.get("evaluate_after_training", False) and "test" in data.tensors:
                from flavortag.evaluation import evaluate_split

                metrics = evaluate_split(model, data, "test", cfg, run_dir, history=state.history)
            log.info("MLflow run %s (%s) in %s", run.info.run_id, cfg.run_name,
                     tracking.tracking_uri())
            return {"run_id": run.info.run_id, "history": state.history, "metrics": metrics}
    finally:
        dist.close()
