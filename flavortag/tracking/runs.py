"""One handle on an MLflow run: everything flavortag records in a run goes through :class:`RunHandle`.

A handle names a run by its id; the run need not be active in this process
(the parent run of a study shared by many workers is not). Runs are started
(:func:`start_run`, :func:`start_child_run`: active here, ended when the
block ends) or created (:func:`create_run`: left RUNNING for others).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param

from flavortag.schema.groups import TrackingSettings
from flavortag.tracking.store import TRAININGS_VIEW, configure, git_commit, set_tracking_uri
from flavortag.tracking.tags import ANALYSES_SUFFIX, ANALYSIS_KINDS, Tag

#: MLflow rejects parameter values longer than this (characters).
MAX_PARAM_LENGTH = 6000
#: Params and metrics sent to the store at a time.
_BATCH = 100


def flatten_config(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten a nested config (plain data) into ``{"model.depth": "3", ...}`` string params."""
    flat: dict[str, str] = {}

    def visit(node: Any, key: str) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                visit(v, f"{key}.{k}" if key else str(k))
        else:
            text = json.dumps(node) if isinstance(node, list | tuple) else str(node)
            flat[key] = text[:MAX_PARAM_LENGTH]

    visit(dict(cfg), prefix)
    return flat


@dataclass(frozen=True)
class RunHandle:
    """An MLflow run (``run_id``), active in this process or not: what is logged to it, its tags, its end."""

    run_id: str

    @property
    def _client(self) -> mlflow.MlflowClient:
        return mlflow.MlflowClient()

    @property
    def info(self) -> Any:
        """MLflow's ``RunInfo`` of the run (``run_id``, ``experiment_id``, ``status``, ...)."""
        return self._client.get_run(self.run_id).info

    @property
    def experiment_id(self) -> str:
        """The id of the run's experiment."""
        return str(self.info.experiment_id)

    def _require_active(self, what: str) -> None:
        active = mlflow.active_run()
        if active is None or active.info.run_id != self.run_id:
            raise RuntimeError(f"{what} needs run {self.run_id} active in this process")

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params (strings, cut to MLflow's limit)."""
        items = [Param(str(k), str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()]
        for start in range(0, len(items), _BATCH):
            self._client.log_batch(self.run_id, params=items[start: start + _BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log scalar metrics (at ``step``; None: step 0)."""
        now = int(time.time() * 1000)
        items = [Metric(str(k), float(v), now, step or 0) for k, v in metrics.items()]
        for start in range(0, len(items), _BATCH):
            self._client.log_batch(self.run_id, metrics=items[start: start + _BATCH])

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        """Log a JSON/YAML-serialisable object as an artifact file (by its suffix)."""
        self._client.log_dict(self.run_id, obj, artifact_file)

    def log_table(self, columns: Mapping[str, list[Any]], artifact_file: str) -> None:
        """Log a table (``{column: values}``) as a JSON artifact that the MLflow UI shows as a table."""
        import pandas as pd

        mlflow.log_table(pd.DataFrame(dict(columns)), artifact_file, run_id=self.run_id)

    def set_note(self, markdown: str) -> None:
        """The run's description in the MLflow UI (``mlflow.note.content``), Markdown."""
        self.set_tags({Tag.NOTE: markdown})

    def log_text(self, text: str, artifact_file: str) -> None:
        """Log a text as an artifact file."""
        self._client.log_text(self.run_id, text, artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Log one local file as an artifact."""
        self._client.log_artifact(self.run_id, str(path), artifact_path=artifact_path)

    def log_artifacts(self, directory: str | Path, artifact_path: str | None = None) -> None:
        """Log a local directory's files as artifacts."""
        self._client.log_artifacts(self.run_id, str(directory), artifact_path=artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set tags (names: :class:`~flavortag.tracking.tags.Tag`)."""
        client = self._client
        for key, value in tags.items():
            client.set_tag(self.run_id, key, str(value))

    def tags(self) -> dict[str, str]:
        """The run's tags as they are now in the store."""
        return dict(self._client.get_run(self.run_id).data.tags)

    def set_status(self, status: str) -> None:
        """RUNNING (again), or FINISHED / FAILED / KILLED (ends the run)."""
        if status == "RUNNING":
            self._client.update_run(self.run_id, status="RUNNING")
        else:
            self._client.set_terminated(self.run_id, status=status)

    def log_config(self, config: Mapping[str, Any]) -> None:
        """Log the resolved config (plain data) as params and as the artifact ``config.yaml``."""
        import yaml

        self.log_params(flatten_config(config))
        self.log_text(yaml.safe_dump(dict(config), default_flow_style=False, allow_unicode=True,
                                     sort_keys=False), "config.yaml")

    def log_calibration(self, calibration: Any, path: str | Path | None = None) -> None:
        """Log a resolution calibration: scales as metrics, the file (or its dict) as artifact."""
        self.log_metrics({
            "calibration/d0_scale": float(calibration.d0_scale),
            "calibration/d0_scale_err": float(calibration.d0_scale_error),
            "calibration/z0_scale": float(calibration.z0_scale),
            "calibration/z0_scale_err": float(calibration.z0_scale_error),
        })
        if path is not None:
            self.log_artifact(path, artifact_path="calibration")
        else:
            self.log_dict(calibration.to_dict(), "calibration/calibration.json")

    def log_dataset_input(self, name: str, digest: str, class_counts: Mapping[str, int], source: str,
                          context: str) -> None:
        """Record a sample as a dataset input (the runs table's "Dataset" column); the run must be active.

        ``class_counts`` (events per class) become the dataset's features (one
        count per class) and input tags ``n_<class>``; ``context`` is the split
        ("training", "validation", "testing").
        """
        import numpy as np
        from mlflow.data.numpy_dataset import from_numpy

        self._require_active("a dataset input")
        counts = {str(k): int(v) for k, v in class_counts.items()}
        with warnings.catch_warnings():
            # local paths match two registered local-artifact sources; MLflow picks one, which is right
            warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
            dataset = from_numpy(np.asarray(list(counts.values()), dtype=np.int64), source=source,
                                 name=name, digest=digest)
        mlflow.log_input(dataset, context=context, tags={f"n_{k}": str(v) for k, v in counts.items()})

    def log_model(self, model: Any, is_torch: bool) -> None:
        """Log a trained tagger as the run's MLflow model (:func:`flavortag.tracking.models.log_model`)."""
        from flavortag.tracking.models import log_model

        self._require_active("logging a model")
        log_model(model, is_torch)

    def end_stopped(self, note: str) -> None:
        """End the run as KILLED with tag ``flavortag.stopped`` = ``note`` (a job stopped by a signal).

        The next job that resumes the checkpoint reopens the same run (RUNNING again).
        """
        self.set_tags({Tag.STOPPED: note})
        active = mlflow.active_run()
        if active is not None and active.info.run_id == self.run_id:
            mlflow.end_run(status="KILLED")
        else:
            self.set_status("KILLED")

    def end_orphaned(self, note: str) -> str | None:
        """Mark the run KILLED if it is still RUNNING (its job died); returns the status it had.

        ``note`` is set as the run's tag ``flavortag.orphaned`` (why it was ended
        and by what). None when the current store has no such run.
        """
        try:
            status = str(self.info.status)
        except mlflow.exceptions.MlflowException:
            return None
        if status == "RUNNING":
            self.set_tags({Tag.ORPHANED: note})
            self.set_status("KILLED")
        return status


def active_run() -> RunHandle:
    """The run active in this process (``RuntimeError`` when none is)."""
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("no active MLflow run")
    return RunHandle(str(run.info.run_id))


@contextmanager
def start_run(
    tracking_cfg: TrackingSettings | Mapping[str, Any],
    run_name: str | None = None,
    run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    nested: bool = False,
) -> Iterator[RunHandle]:
    """Start (or resume, with ``run_id``) a run in the configured experiment, active in the block.

    A new run of an analysis kind (:data:`~flavortag.tracking.tags.ANALYSIS_KINDS`:
    comparison, calibration, robustness) goes to ``<experiment>-analyses``, so
    that the experiment's runs table holds the trainings.
    """
    experiment_id = configure(analysis_settings(tracking_cfg) if run_id is None and
                              (tags or {}).get(Tag.KIND) in ANALYSIS_KINDS else tracking_cfg)
    all_tags = {Tag.GIT_COMMIT: git_commit()}
    all_tags.update(tags or {})
    kwargs: dict[str, Any] = {"nested": nested}
    if run_id is not None:
        kwargs["run_id"] = run_id
    else:
        kwargs["experiment_id"] = experiment_id
        kwargs["run_name"] = run_name
    with mlflow.start_run(**kwargs) as run:
        mlflow.set_tags(all_tags)
        yield RunHandle(str(run.info.run_id))


def analysis_settings(tracking_cfg: TrackingSettings | Mapping[str, Any]) -> TrackingSettings:
    """The tracking settings of an analysis run: the experiment ``<experiment>-analyses`` in the same store."""
    settings = TrackingSettings.from_config(tracking_cfg)
    return replace(settings, experiment_name=settings.experiment_name + ANALYSES_SUFFIX)


@contextmanager
def start_child_run(parent: RunHandle, run_name: str, tags: Mapping[str, str]) -> Iterator[RunHandle]:
    """A run nested in the active run ``parent``, in its experiment, active in the block."""
    with mlflow.start_run(run_name=run_name, nested=True, tags=dict(tags),
                          experiment_id=parent.experiment_id) as run:
        yield RunHandle(str(run.info.run_id))


def create_run(tracking_cfg: TrackingSettings | Mapping[str, Any], run_name: str,
               tags: Mapping[str, str]) -> RunHandle:
    """Create a run (RUNNING, not made active here) in the configured experiment."""
    experiment_id = configure(tracking_cfg)
    all_tags = {Tag.GIT_COMMIT: git_commit(), Tag.RUN_NAME: run_name, **dict(tags)}
    run = mlflow.MlflowClient().create_run(experiment_id, run_name=run_name, tags=all_tags)
    return RunHandle(str(run.info.run_id))


#: Where ``make ui`` (``mlflow ui``) serves the store: the links the commands print.
UI_ADDRESS = "http://127.0.0.1:5000"
#: MLflow 3.17's UI opens in its GenAI mode unless told (URL ``workflowType``; then kept per browser).
_ML_MODE = "workflowType=machine_learning"


def where_written(folder: str | Path, run: RunHandle) -> str:
    """One line for the user: the output folder, the MLflow run and its experiment, and its page in the UI."""
    experiment = mlflow.get_experiment(run.experiment_id)
    return (f"outputs in {Path(folder).resolve()}; MLflow run {run.run_id} (experiment {experiment.name}, "
            f"{mlflow.get_tracking_uri()}): "
            f"{UI_ADDRESS}/#/experiments/{run.experiment_id}/runs/{run.run_id}?{_ML_MODE}")


def trainings_view_url(experiment_id: str) -> str:
    """The runs table of an experiment's trainings with their key figures (``make ui`` serves it)."""
    return f"{UI_ADDRESS}/#/experiments/{experiment_id}/runs?{_ML_MODE}&viewStateShareKey={TRAININGS_VIEW}"


def ui_links(tracking_uri: str) -> list[str]:
    """One line per experiment of the store that has trainings: its name and its trainings view.

    ``make ui`` prints them before it starts the server (the UI's own first page opens in
    MLflow's GenAI mode, without the figures).
    """
    set_tracking_uri(tracking_uri)
    lines = []
    for experiment in mlflow.search_experiments(order_by=["last_update_time DESC"]):
        if experiment.name.endswith(ANALYSES_SUFFIX) or experiment.name == "Default":
            continue
        lines.append(f"  {experiment.name}: {trainings_view_url(experiment.experiment_id)}")
    return lines
