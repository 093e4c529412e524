"""Shared tasks: versioned open datasets, data cards, official scoring and a leaderboard.

:mod:`.task` (the task files in ``tasks/``), :mod:`.make` (the dataset: files,
checksums, event ids), :mod:`.card` (data card, ``generation.yaml``),
:mod:`.score` (checks and official figures of any tagger's predictions),
:mod:`.leaderboard` (Markdown table, one MLflow experiment per task).
``flavortag benchmark`` (:mod:`flavortag.apps.benchmark`) is the command;
docs/BENCHMARK.md the schema. No torch, Hydra or OmegaConf here.
"""

from flavortag.benchmark.task import (
    SPLITS,
    Task,
    TaskError,
    default_data_dir,
    list_tasks,
    load_task,
)

__all__ = ["SPLITS", "Task", "TaskError", "default_data_dir", "list_tasks", "load_task"]
