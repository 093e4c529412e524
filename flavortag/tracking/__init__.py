"""MLflow bookkeeping: where runs go, one handle on a run, reading runs back.

The only package that imports MLflow: the pipelines and the library log,
search and load through it. :mod:`.store` (the tracking store and experiment,
a new SQLite store created atomically), :mod:`.runs` (:class:`RunHandle`:
params, metrics, artifacts, tags, status of one run, active here or not;
starting and creating runs), :mod:`.read` (runs, children, artifacts, a run's
config), :mod:`.models` (a tagger as a data-only MLflow model) and
:mod:`.tags` (:class:`Tag`: every tag name, spelled once). Only rank 0 of a
distributed job logs (see :func:`is_logging_rank`).
"""

from __future__ import annotations

import os

# MLflow's documented switch: no "Downloading artifacts" bars (15-41 lines a command) unless asked for
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from flavortag.tracking.models import MODEL_ARTIFACT_KEY, load_logged_model  # noqa: E402
from flavortag.tracking.read import (  # noqa: E402
    child_runs,
    download_artifact,
    finished_runs,
    get_run,
    load_run_config,
    load_text,
    run_exists,
    search_runs,
)
from flavortag.tracking.runs import (  # noqa: E402
    MAX_PARAM_LENGTH,
    RunHandle,
    active_run,
    analysis_settings,
    create_run,
    flatten_config,
    start_child_run,
    start_run,
    trainings_view_url,
    ui_links,
    where_written,
)
from flavortag.tracking.store import (  # noqa: E402
    EXPERIMENT_TAGS,
    configure,
    ensure_sqlite_store,
    git_commit,
    is_logging_rank,
    set_tracking_uri,
    sqlite_path,
    tracking_uri,
)
from flavortag.tracking.tags import ANALYSIS_KINDS, Kind, Tag, is_training  # noqa: E402

__all__ = [
    "ANALYSIS_KINDS", "EXPERIMENT_TAGS", "Kind", "analysis_settings", "is_training", "search_runs", "trainings_view_url", "ui_links", "where_written", "MAX_PARAM_LENGTH", "MODEL_ARTIFACT_KEY", "RunHandle", "Tag", "active_run",
    "child_runs", "configure", "create_run", "download_artifact", "ensure_sqlite_store", "finished_runs",
    "flatten_config", "get_run", "git_commit", "is_logging_rank", "load_logged_model", "load_run_config",
    "load_text", "run_exists", "set_tracking_uri", "sqlite_path", "start_child_run", "start_run",
    "tracking_uri",
]
