"""MLflow bookkeeping: where runs go and what every run records.

By default runs go to an embedded SQLite store in the working directory
(``sqlite:///mlflow.db``, artifacts under ``./mlartifacts``); set
``tracking.tracking_uri`` (or ``MLFLOW_TRACKING_URI``) for a shared server.
Only rank 0 of a distributed job logs (see :func:`is_logging_rank`).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from omegaconf import DictConfig, OmegaConf

#: MLflow rejects parameter values longer than this (characters).
MAX_PARAM_LENGTH = 6000


def is_logging_rank() -> bool:
    """True on the process that writes to MLflow and checkpoints (rank 0 or no DDP)."""
    return int(os.environ.get("RANK", "0")) == 0


def configure(tracking_cfg: Mapping[str, Any]) -> str:
    """Point MLflow at the configured store and experiment; return the experiment id.

    ``tracking_cfg`` keys: ``tracking_uri`` (None -> ``MLFLOW_TRACKING_URI`` or
    ``sqlite:///mlflow.db``), ``experiment_name``, ``artifact_location``
    (None -> ``./mlartifacts`` for a local SQLite store).
    """
    uri = tracking_cfg.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    mlflow.set_tracking_uri(uri)
    name = str(tracking_cfg.get("experiment_name") or "flavortag")
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = tracking_cfg.get("artifact_location")
    if location is None and uri.startswith("sqlite:///"):
        db_path = Path(uri.removeprefix("sqlite:///"))
        location = (db_path.resolve().parent / "mlartifacts").as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:
        # created concurrently by another job
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def flatten_config(cfg: DictConfig | Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten a nested config into ``{"model.depth": "3", ...}`` string params."""
    container = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    flat: dict[str, str] = {}

    def visit(node: Any, key: str) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                visit(v, f"{key}.{k}" if key else str(k))
        else:
            text = json.dumps(node) if isinstance(node, list | tuple) else str(node)
            flat[key] = text[:MAX_PARAM_LENGTH]

    visit(container, prefix)
    return flat


def git_commit() -> str:
    """Commit hash of the source tree (``+dirty`` if modified), or ``unknown``."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@contextmanager
def start_run(
    tracking_cfg: Mapping[str, Any],
    run_name: str | None = None,
    run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    nested: bool = False,
) -> Iterator[mlflow.ActiveRun]:
    """Start (or resume, with ``run_id``) an MLflow run in the configured experiment."""
    experiment_id = configure(tracking_cfg)
    all_tags = {"flavortag.git_commit": git_commit()}
    all_tags.update(tags or {})
    kwargs: dict[str, Any] = {"nested": nested}
    if run_id is not None:
        kwargs["run_id"] = run_id
    else:
        kwargs["experiment_id"] = experiment_id
        kwargs["run_name"] = run_name
    with mlflow.start_run(**kwargs) as run:
        mlflow.set_tags(all_tags)
        yield run


def log_config(cfg: DictConfig) -> None:
    """Log the resolved config as params and as the artifact ``config.yaml``."""
    params = flatten_config(cfg)
    items = list(params.items())
    for start in range(0, len(items), 100):
        mlflow.log_params(dict(items[start : start + 100]))
    mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")


def load_run_config(run_id: str) -> DictConfig:
    """Download and parse the ``config.yaml`` of a run."""
    text = mlflow.artifacts.load_text(f"runs:/{run_id}/config.yaml")
    cfg = OmegaConf.create(text)
    assert isinstance(cfg, DictConfig)
    return cfg


def log_calibration(calibration: Any, path: str | Path | None = None) -> None:
    """Log a resolution calibration to the active run: scales as metrics, the file as artifact."""
    mlflow.log_metrics({
        "calibration/d0_scale": float(calibration.d0_scale),
        "calibration/d0_scale_err": float(calibration.d0_scale_error),
        "calibration/z0_scale": float(calibration.z0_scale),
        "calibration/z0_scale_err": float(calibration.z0_scale_error),
    })
    if path is not None:
        mlflow.log_artifact(str(path), artifact_path="calibration")
    else:
        mlflow.log_dict(calibration.to_dict(), "calibration/calibration.json")
