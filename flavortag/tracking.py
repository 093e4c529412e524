"""MLflow bookkeeping: where runs go and what every run records.

By default runs go to an embedded SQLite store in the working directory
(``sqlite:///mlflow.db``, artifacts under ``./mlartifacts``); set
``tracking.tracking_uri`` (or ``MLFLOW_TRACKING_URI``) for a shared server.
Only rank 0 of a distributed job logs (see :func:`is_logging_rank`).

This is the only module that imports MLflow: the apps and the library log,
search and load through the functions below.

A new SQLite store is created atomically (:func:`ensure_sqlite_store`): MLflow
needs seconds to create its tables, and jobs started together on a fresh store
(or one killed in that window) would otherwise leave a half-made database that
fails every later run. The tables are built under a temporary name in the same
directory and renamed into place, under a lock file, so a job sees either no
store (and builds it) or a complete one.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# MLflow's documented switch: no "Downloading artifacts" bars (15-41 lines a command) unless asked for
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import mlflow  # noqa: E402 - after the switch above

from flavortag.io.atomic import locked, remove_stale_temporaries, temporary_name
from flavortag.schema.groups import DEFAULT_TRACKING_URI, TrackingSettings

log = logging.getLogger("flavortag.tracking")

#: MLflow rejects parameter values longer than this (characters).
MAX_PARAM_LENGTH = 6000
#: Experiment tags set on every experiment we create: MLflow 3's UI opens a
#: "custom model development" experiment on its runs table, not the GenAI overview.
EXPERIMENT_TAGS: dict[str, str] = {"mlflow.experimentKind": "custom_model_development"}
_SQLITE_PREFIX = "sqlite:///"
_INIT_SUFFIX = "init"


class Tag:
    """The MLflow tag names flavortag sets and reads (the one place they are spelled)."""

    KIND = "flavortag.kind"  # evaluation, comparison, calibration, robustness[-child]; unset: training
    MODEL = "flavortag.model"
    DATA = "flavortag.data"
    GIT_COMMIT = "flavortag.git_commit"
    ORPHANED = "flavortag.orphaned"
    RESUME_CHANGES = "flavortag.resume_changes"  # + ".<n>", one per resume with changed settings
    STUDY = "flavortag.study"
    ROLE = "flavortag.role"
    TRIAL = "flavortag.trial"
    TRIAL_STATE = "flavortag.trial_state"
    PARENT_RUN = "mlflow.parentRunId"
    RUN_NAME = "mlflow.runName"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///...`` tracking URI (None for any other URI or in-memory)."""
    if not uri.startswith(_SQLITE_PREFIX):
        return None
    path = uri[len(_SQLITE_PREFIX):].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def _default_artifact_root(db_path: Path) -> str:
    return (db_path.resolve().parent / "mlartifacts").as_uri()


def _build_store(tmp: Path, artifact_root: str) -> None:
    """Create MLflow's tables (and the Default experiment) in the new database file ``tmp``."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    uri = f"{_SQLITE_PREFIX}{tmp}"
    store = SqlAlchemyStore(uri, artifact_root)
    store.engine.dispose()  # close the connections: the file is complete
    getattr(SqlAlchemyStore, "_engine_map", {}).pop(uri, None)  # MLflow caches engines by URI
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())


def ensure_sqlite_store(db_path: str | os.PathLike, artifact_root: str | None = None) -> bool:
    """Make sure the SQLite MLflow store ``db_path`` exists complete; returns True if this call made it.

    A missing store is built as ``.<name>.<pid>.<random>.init`` in the same
    directory and renamed into place (``os.replace``) once MLflow has created
    every table, all under an exclusive lock on ``.<name>.lock``: concurrent
    first users wait for one builder, and a builder killed half-way leaves no
    store (the next user builds it again and removes the dead builder's file).
    """
    path = Path(db_path)
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with locked(path.with_name(f".{path.name}.lock")):
        waited = time.monotonic() - started
        if path.exists():
            if waited > 1:
                log.info("%s: waited %.1f s for another job to create the store", path, waited)
            return False
        remove_stale_temporaries(path, suffix=_INIT_SUFFIX)
        for suffix in ("-journal", "-wal", "-shm"):  # of a dead builder's database, if any
            for leftover in path.parent.glob(f".{path.name}.*.{_INIT_SUFFIX}{suffix}"):
                if not leftover.with_name(leftover.name[: -len(suffix)]).exists():
                    leftover.unlink(missing_ok=True)
        tmp = temporary_name(path, _INIT_SUFFIX)
        log.info("%s: creating a new MLflow store", path)
        try:
            _build_store(tmp, artifact_root or _default_artifact_root(path))
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return True


def is_logging_rank() -> bool:
    """True on the process that writes to MLflow and checkpoints (rank 0 or no DDP)."""
    return int(os.environ.get("RANK", "0")) == 0


def configure(tracking_cfg: TrackingSettings | Mapping[str, Any], must_exist: bool = False) -> str:
    """Point MLflow at the configured store and experiment; return the experiment id.

    ``tracking_cfg`` (:data:`~flavortag.schema.groups.TrackingSettings`, or a
    ``tracking`` node): ``tracking_uri`` (None -> ``MLFLOW_TRACKING_URI`` or
    ``sqlite:///mlflow.db``), ``experiment_name``, ``artifact_location``
    (None -> ``./mlartifacts`` for a local SQLite store). ``must_exist``: a
    missing local SQLite store is an error (reading a run) instead of made.
    """
    settings = TrackingSettings.from_config(tracking_cfg)
    uri = settings.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    db_path = sqlite_path(str(uri))
    if db_path is not None:
        if must_exist and not db_path.is_file():
            raise FileNotFoundError(
                f"no MLflow store at {db_path} (working directory {Path.cwd()}): run where you trained, "
                "or give tracking.tracking_uri=sqlite:///<path of the store of the run>")
        ensure_sqlite_store(db_path)
    mlflow.set_tracking_uri(uri)
    name = settings.experiment_name
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = settings.artifact_location
    if location is None and db_path is not None:
        location = _default_artifact_root(db_path)
    try:
        return mlflow.create_experiment(name, artifact_location=location, tags=dict(EXPERIMENT_TAGS))
    except mlflow.exceptions.MlflowException:
        # created concurrently by another job
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def flatten_config(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten a nested config (plain data) into ``{"model.depth": "3", ...}`` string params."""
    container = dict(cfg)
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
    tracking_cfg: TrackingSettings | Mapping[str, Any],
    run_name: str | None = None,
    run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    nested: bool = False,
) -> Iterator[mlflow.ActiveRun]:
    """Start (or resume, with ``run_id``) an MLflow run in the configured experiment."""
    experiment_id = configure(tracking_cfg)
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
        yield run


def log_config(config: Mapping[str, Any]) -> None:
    """Log the resolved config (plain data) as params and as the artifact ``config.yaml``."""
    import yaml

    params = flatten_config(config)
    items = list(params.items())
    for start in range(0, len(items), 100):
        mlflow.log_params(dict(items[start : start + 100]))
    mlflow.log_text(yaml.safe_dump(dict(config), default_flow_style=False, allow_unicode=True, sort_keys=False),
                    "config.yaml")


def load_run_config(run_id: str) -> dict[str, Any]:
    """Download and parse the ``config.yaml`` of a run: the resolved train config as plain data."""
    import yaml

    config = yaml.safe_load(mlflow.artifacts.load_text(f"runs:/{run_id}/config.yaml"))
    if not isinstance(config, dict):
        raise ValueError(f"run {run_id}: its config.yaml holds no config")
    return config


# --------------------------------------------------------------------------- logging to the active run


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log scalar metrics to the active run."""
    mlflow.log_metrics(dict(metrics), step=step)


def log_params(params: Mapping[str, Any]) -> None:
    """Log parameters to the active run."""
    mlflow.log_params(dict(params))


def log_dict(obj: Any, artifact_file: str) -> None:
    """Log a JSON/YAML-serialisable object as an artifact file of the active run."""
    mlflow.log_dict(obj, artifact_file)


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    """Log one local file as an artifact of the active run."""
    mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_artifacts(directory: str | Path, artifact_path: str | None = None) -> None:
    """Log a local directory's files as artifacts of the active run."""
    mlflow.log_artifacts(str(directory), artifact_path=artifact_path)


def active_run_id() -> str:
    """The id of the run active in this process (``RuntimeError`` when none is)."""
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("no active MLflow run")
    return str(run.info.run_id)


def tracking_uri() -> str:
    """The tracking URI MLflow currently logs to."""
    return str(mlflow.get_tracking_uri())


def set_tracking_uri(uri: str) -> None:
    """Point MLflow at another store (for reading runs)."""
    mlflow.set_tracking_uri(uri)


#: The artifact key of a logged model's weights file (see :mod:`flavortag.tracking_pyfunc`).
MODEL_ARTIFACT_KEY = "checkpoint"


def log_model(model: Any, is_torch: bool) -> None:
    """Log a trained tagger as the run's MLflow model ``model``, in a format that holds data only.

    The weights go in as a data-only artifact (``checkpoint.pt``, written by
    :func:`flavortag.models.checkpoint_state`, or ``bdt.skops``) beside the code
    of :mod:`flavortag.tracking_pyfunc` (MLflow's "models from code"): no
    pickle of the model is logged, so loading it (:func:`load_logged_model`)
    runs nothing from the store.
    """
    import tempfile

    from flavortag import safe_load

    with warnings.catch_warnings():  # MLflow's own GenAI types warn about themselves on first import
        warnings.filterwarnings("ignore", message=".*Any type hint is inferred as AnyType")
        import mlflow.pyfunc
    with tempfile.TemporaryDirectory(prefix="flavortag-model-") as tmp:
        if is_torch:
            import torch

            from flavortag.models import checkpoint_state

            path = Path(tmp) / "checkpoint.pt"
            torch.save({"model": checkpoint_state(model.to("cpu").eval())}, path)
            requirements = ["torch", "flavortag"]
        else:
            path = Path(tmp) / f"bdt{safe_load.BDT_SUFFIX}"
            safe_load.save_bdt(model, path)
            requirements = ["scikit-learn", "skops", "flavortag"]
        mlflow.pyfunc.log_model(name="model", python_model=str(Path(__file__).with_name(
            "tracking_pyfunc.py")), artifacts={MODEL_ARTIFACT_KEY: str(path)},
            pip_requirements=requirements)


def log_dataset_input(
    name: str,
    digest: str,
    class_counts: Mapping[str, int],
    source: str,
    context: str,
) -> None:
    """Record a sample as a dataset input of the active run (the runs table's "Dataset" column).

    ``class_counts`` (events per class) become the dataset's features (one
    count per class) and input tags ``n_<class>``; ``context`` is the split
    ("training", "validation", "testing").
    """
    import numpy as np
    from mlflow.data.numpy_dataset import from_numpy

    counts = {str(k): int(v) for k, v in class_counts.items()}
    with warnings.catch_warnings():
        # local paths match two registered local-artifact sources; MLflow picks one, which is right
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        dataset = from_numpy(np.asarray(list(counts.values()), dtype=np.int64), source=source,
                             name=name, digest=digest)
    mlflow.log_input(dataset, context=context, tags={f"n_{k}": str(v) for k, v in counts.items()})


@contextmanager
def start_child_run(run_name: str, experiment_id: str, tags: Mapping[str, str]) -> Iterator[Any]:
    """A run nested in the active run, in ``experiment_id``."""
    with mlflow.start_run(run_name=run_name, nested=True, tags=dict(tags),
                          experiment_id=experiment_id) as run:
        yield run


# --------------------------------------------------------------------------- reading runs


def get_run(run_id: str) -> Any:
    """The MLflow run ``run_id`` (info, data.metrics, data.tags)."""
    return mlflow.get_run(run_id)


def finished_runs(experiment_name: str) -> list[Any]:
    """Finished runs of an experiment, newest first; ``ValueError`` if there is no such experiment."""
    experiment = mlflow.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise ValueError(f"no MLflow experiment named {experiment_name!r}")
    return list(mlflow.search_runs(
        experiment_ids=[experiment.experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"], output_format="list",
    ))


def download_artifact(run_id: str, artifact_path: str, dst_path: str) -> str:
    """Download one artifact of a run into ``dst_path``; returns the local path."""
    return str(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path,
                                                   dst_path=dst_path))


def load_text(uri: str) -> str:
    """The text of an artifact URI such as ``runs:/<id>/working_points.json``."""
    return str(mlflow.artifacts.load_text(uri))


def load_logged_model(uri: str) -> Any:
    """Load a logged tagger (``runs:/<id>/model`` or ``models:/...``) from its data-only artifact.

    Only the weights file is read, through :mod:`flavortag.safe_load`; the
    model's code is not run. A model logged in one of MLflow's pickle formats
    (by flavortag before 0.2) is refused: it could run any code when loaded.
    """
    import tempfile

    from flavortag import safe_load

    info = mlflow.models.get_model_info(uri)
    flavors = info.flavors
    if "python_function" not in flavors or "pytorch" in flavors or "sklearn" in flavors:
        raise safe_load.UnsafeFileError(
            f"{uri}: refused: this MLflow model was logged with pickle ({', '.join(sorted(flavors))} "
            "flavour), which can run any code when loaded; retrain it with this flavortag, or, if you "
            "trust the store, convert its checkpoint with `flavortag trust <run dir>/checkpoints/best.pt`")
    with tempfile.TemporaryDirectory(prefix="flavortag-model-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        files = sorted(p for p in (local / "artifacts").rglob("*") if p.suffix in safe_load.MODEL_SUFFIXES)
        if len(files) != 1:
            raise ValueError(f"{uri}: expected one weights file ({', '.join(safe_load.MODEL_SUFFIXES)}) among "
                             f"its artifacts, found {[p.name for p in files]}")
        return safe_load.load_model_file(files[0])


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


def set_run_tag(run_id: str, key: str, value: str) -> None:
    """Set a tag on a run that need not be active."""
    mlflow.MlflowClient().set_tag(run_id, key, value)


def end_orphaned_run(run_id: str, note: str) -> str | None:
    """Mark run ``run_id`` KILLED if it is still RUNNING (its job died); returns the status it had.

    ``note`` is set as the run's tag ``flavortag.orphaned`` (why it was ended
    and by what). None when the current store has no such run.
    """
    client = mlflow.MlflowClient()
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return None
    status = str(run.info.status)
    if status == "RUNNING":
        client.set_tag(run_id, Tag.ORPHANED, note)
        client.set_terminated(run_id, status="KILLED")
    return status


def end_active_run_stopped(note: str) -> None:
    """End the active run as KILLED with tag ``flavortag.stopped`` = ``note`` (a job stopped by a signal).

    The next job that resumes the checkpoint reopens the same run (RUNNING again).
    """
    if mlflow.active_run() is not None:
        mlflow.set_tag("flavortag.stopped", note)
        mlflow.end_run(status="KILLED")


# --------------------------------------------------------------------------- runs not active in this process
# (the parent run of an optuna study, shared by many workers; its trials' child runs)


def create_run(tracking_cfg: TrackingSettings | Mapping[str, Any], run_name: str, tags: Mapping[str, str]) -> str:
    """Create a run (RUNNING, not made active here) in the configured experiment; returns its id."""
    experiment_id = configure(tracking_cfg)
    all_tags = {Tag.GIT_COMMIT: git_commit(), Tag.RUN_NAME: run_name, **dict(tags)}
    run = mlflow.MlflowClient().create_run(experiment_id, run_name=run_name, tags=all_tags)
    return str(run.info.run_id)


def run_exists(run_id: str) -> bool:
    """True when the current store has run ``run_id`` (not deleted)."""
    try:
        return str(mlflow.MlflowClient().get_run(run_id).info.lifecycle_stage) == "active"
    except mlflow.exceptions.MlflowException:
        return False


def set_run_status(run_id: str, status: str) -> None:
    """Set a run's status: RUNNING (again), or FINISHED / FAILED / KILLED (ends it)."""
    client = mlflow.MlflowClient()
    if status == "RUNNING":
        client.update_run(run_id, status="RUNNING")
    else:
        client.set_terminated(run_id, status=status)


def set_run_tags(run_id: str, tags: Mapping[str, str]) -> None:
    """Set tags on a run that need not be active."""
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, str(value))


def log_run_params(run_id: str, params: Mapping[str, Any]) -> None:
    """Log params (strings, cut to MLflow's limit) to a run that need not be active."""
    from mlflow.entities import Param

    items = [Param(str(k), str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()]
    client = mlflow.MlflowClient()
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start: start + 100])


def log_run_metrics(run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
    """Log metrics to a run that need not be active."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    mlflow.MlflowClient().log_batch(run_id, metrics=[Metric(str(k), float(v), now, step)
                                                      for k, v in metrics.items()])


def log_run_artifact(run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
    """Log one local file as an artifact of a run that need not be active."""
    mlflow.MlflowClient().log_artifact(run_id, str(path), artifact_path=artifact_path)


def log_run_dict(run_id: str, obj: Any, artifact_file: str) -> None:
    """Log a JSON/YAML-serialisable object as an artifact of a run that need not be active."""
    mlflow.MlflowClient().log_dict(run_id, obj, artifact_file)


def child_runs(parent_run_id: str) -> list[Any]:
    """The runs whose ``mlflow.parentRunId`` tag is ``parent_run_id`` (any status), oldest first."""
    parent = mlflow.MlflowClient().get_run(parent_run_id)
    return list(mlflow.search_runs(
        experiment_ids=[parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
        order_by=["attributes.start_time ASC"], output_format="list",
    ))
