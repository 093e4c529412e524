"""Where runs go: the tracking store and experiment (a new SQLite store created atomically).

By default runs go to an embedded SQLite store in the working directory
(``sqlite:///mlflow.db``, artifacts under ``./mlartifacts``); set
``tracking.tracking_uri`` (or ``MLFLOW_TRACKING_URI``) for a shared server.

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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow

from flavortag.io.atomic import locked, remove_stale_temporaries, temporary_name
from flavortag.schema.groups import DEFAULT_TRACKING_URI, TrackingSettings
from flavortag.tracking.tags import Kind, Tag

log = logging.getLogger("flavortag.tracking")

#: The runs-table view that the commands link to (``?viewStateShareKey=trainings``): MLflow 3's UI
#: reads a shared view from the experiment tag ``mlflow.sharedViewState.<key>`` (search facets and
#: UI state as JSON): the trainings only, best headline figure first, the key figures (with their
#: errors, lower limits marked: the ``fig.*`` tags) and the description as columns.
TRAININGS_VIEW = "trainings"
_TRAININGS_VIEW_STATE: dict[str, Any] = {
    "searchFilter": f"tags.`{Tag.KIND}` = '{Kind.TRAINING}'",
    "orderByKey": "metrics.`test/rej_uds_at_c50`", "orderByAsc": False,
    "selectedColumns": ["attributes.`Dataset`", "attributes.`Description`",
                        *(f"tags.`fig.{name}`" for name in ("rej_uds_at_c50", "rej_b_at_c50", "rej_c_at_b70",
                                                            "rej_uds_at_b70", "acc"))],
    "compareRunsMode": "TABLE",
}
#: Experiment tags set on every experiment we use: MLflow 3's UI opens a "custom model
#: development" experiment on its runs table, not the GenAI overview; the trainings view.
EXPERIMENT_TAGS: dict[str, str] = {
    "mlflow.experimentKind": "custom_model_development",
    f"mlflow.sharedViewState.{TRAININGS_VIEW}": json.dumps(_TRAININGS_VIEW_STATE),
}
_SQLITE_PREFIX = "sqlite:///"
_INIT_SUFFIX = "init"


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
    every table, all under an exclusive lock on ``.<name>.lock`` (removed once the store is made): concurrent
    first users wait for one builder, and a builder killed half-way leaves no
    store (the next user builds it again and removes the dead builder's file).
    """
    path = Path(db_path)
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    lock = path.with_name(f".{path.name}.lock")
    with locked(lock):
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
        # no lock file left in the working folder: anyone waiting on it finds the store made, and
        # later users see the store before they would take the lock
        lock.unlink(missing_ok=True)
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
        if must_exist:
            _check_store(db_path)
        ensure_sqlite_store(db_path)
    mlflow.set_tracking_uri(uri)
    name = settings.experiment_name
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        for key, value in EXPERIMENT_TAGS.items():  # experiments made before these tags
            if experiment.tags.get(key) != value:
                mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, key, value)
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


def git_commit() -> str:
    """Commit hash of the source tree (``+dirty`` if modified), or ``unknown``."""
    root = Path(__file__).resolve().parents[2]
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


def tracking_uri() -> str:
    """The tracking URI MLflow currently logs to."""
    return str(mlflow.get_tracking_uri())


def set_tracking_uri(uri: str) -> None:
    """Point MLflow at another store (for reading runs): a missing local SQLite store is an
    error, not made (an empty store in the working folder would only hide the mistake)."""
    db_path = sqlite_path(uri)
    if db_path is not None:
        _check_store(db_path)
    mlflow.set_tracking_uri(uri)


def _check_store(db_path: Path) -> None:
    """A local SQLite store that must exist (a run is read from it)."""
    if not db_path.is_file():
        raise FileNotFoundError(
            f"no MLflow store at {db_path} (working directory {Path.cwd()}): run where you trained, "
            "or give tracking.tracking_uri=sqlite:///<path of the store of the run>")
