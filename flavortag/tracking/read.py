"""Reading runs back: runs, their children, artifacts and the resolved config of a training run."""

from __future__ import annotations

from typing import Any

import mlflow

from flavortag.tracking.tags import Tag


def get_run(run_id: str) -> Any:
    """The MLflow run ``run_id`` (info, data.metrics, data.tags)."""
    return mlflow.get_run(run_id)


def finished_runs(experiment_name: str) -> list[Any]:
    """Finished runs of an experiment, newest first; ``ValueError`` if there is no such experiment."""
    return search_runs(experiment_name)


def search_runs(experiment_name: str, filter_string: str = "", finished: bool = True) -> list[Any]:
    """Runs of an experiment that match an MLflow filter string, newest first (``ValueError``: a bad filter).

    ``finished``: only runs that ended well (status FINISHED).
    """
    experiment = mlflow.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise ValueError(f"no MLflow experiment named {experiment_name!r} in {mlflow.get_tracking_uri()}")
    clauses = [c for c in (filter_string.strip(), "attributes.status = 'FINISHED'" if finished else "") if c]
    try:
        return list(mlflow.search_runs(experiment_ids=[experiment.experiment_id],
                                       filter_string=" and ".join(clauses),
                                       order_by=["attributes.start_time DESC"], output_format="list"))
    except mlflow.exceptions.MlflowException as err:
        raise ValueError(f"filter {filter_string!r}: {str(err).splitlines()[0]}") from None


def download_artifact(run_id: str, artifact_path: str, dst_path: str) -> str:
    """Download one artifact of a run into ``dst_path``; returns the local path."""
    return str(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path,
                                                   dst_path=dst_path))


def load_text(uri: str) -> str:
    """The text of an artifact URI such as ``runs:/<id>/working_points.json``."""
    return str(mlflow.artifacts.load_text(uri))


def load_run_config(run_id: str) -> dict[str, Any]:
    """Download and parse the ``config.yaml`` of a run: the resolved train config as plain data."""
    import yaml

    config = yaml.safe_load(mlflow.artifacts.load_text(f"runs:/{run_id}/config.yaml"))
    if not isinstance(config, dict):
        raise ValueError(f"run {run_id}: its config.yaml holds no config")
    return config


def run_exists(run_id: str) -> bool:
    """True when the current store has run ``run_id`` (not deleted)."""
    try:
        return str(mlflow.MlflowClient().get_run(run_id).info.lifecycle_stage) == "active"
    except mlflow.exceptions.MlflowException:
        return False


def child_runs(parent_run_id: str) -> list[Any]:
    """The runs whose ``mlflow.parentRunId`` tag is ``parent_run_id`` (any status), oldest first."""
    parent = mlflow.MlflowClient().get_run(parent_run_id)
    return list(mlflow.search_runs(
        experiment_ids=[parent.info.experiment_id],
        filter_string=f"tags.{Tag.PARENT_RUN} = '{parent_run_id}'",
        order_by=["attributes.start_time ASC"], output_format="list",
    ))
