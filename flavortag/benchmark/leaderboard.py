"""``leaderboard``: every scored submission of a task as a Markdown table and an MLflow experiment.

The table (``<data_dir>/leaderboard.md``) lists, best first by the task's first
headline figure: the entry, its model, parameters, training events, inference
cost per event, and each headline figure with its statistical error. The same
entries go to one MLflow experiment per task, ``benchmark-<task>``, one run
per submission (params: model, parameters, training events, inference cost;
metrics: every official figure; the submission JSON as an artifact), through
:mod:`flavortag.tracking`. A submission already logged with the same
predictions checksum is not logged again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flavortag.benchmark.score import Submission, load_submissions
from flavortag.benchmark.task import Task
from flavortag.io.atomic import atomic_output

LEADERBOARD_MD = "leaderboard.md"
#: MLflow run tags of a submission (beside flavortag.kind = "benchmark").
SUBMISSION_TAG = "flavortag.submission"
PREDICTIONS_TAG = "flavortag.predictions_sha256"


def experiment_name(task: Task) -> str:
    """The MLflow experiment of a task's leaderboard."""
    return f"benchmark-{task.name}"


def _headline(sub: Submission, name: str) -> tuple[float, float]:
    value, err = sub.score["headline"][name]
    return float(value), float(err)


def ranked(task: Task, submissions: Sequence[Submission]) -> list[Submission]:
    """Submissions best first by the first headline figure (higher is better for rejections and acc)."""
    first = task.metrics.headline[0]
    return sorted(submissions, key=lambda s: -_headline(s, first)[0] if math.isfinite(_headline(s, first)[0])
                  else -math.inf)


def _figure(value: float, err: float, limit: float | None = None) -> str:
    if not math.isfinite(value):
        return f"> {limit:.0f} (95% CL)" if limit is not None and value > 0 else str(value)
    if not math.isfinite(err) or err == 0:
        return f"{value:.4g}"
    digits = max(0, 1 - int(math.floor(math.log10(err))))  # two significant digits of the error
    return f"{value:.{digits}f} ± {err:.{digits}f}"


def _count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def leaderboard_markdown(task: Task, submissions: Sequence[Submission]) -> str:
    """The Markdown table of a task's submissions (see the module doc)."""
    heads = list(task.metrics.headline)
    lines = [f"# Leaderboard: {task.name} (version {task.version})", "",
             f"Discriminants with f_c = {task.metrics.f_c}, f_b = {task.metrics.f_b}; rejections with "
             "binomial errors (background statistics) on the task's whole test split.", "",
             "| # | entry | model | parameters | training events | inference µs/event | "
             + " | ".join(heads) + " |",
             "|---:|---|---|---:|---:|---:|" + "---:|" * len(heads)]
    for rank, sub in enumerate(ranked(task, submissions), 1):
        cost = "-" if sub.inference_us_per_event is None else f"{sub.inference_us_per_event:.0f} ({sub.inference_device})"
        limits = sub.score.get("limits", {})
        figures = " | ".join(_figure(*_headline(sub, h), limits.get(h)) for h in heads)
        lines.append(f"| {rank} | {sub.name} | {sub.model} | {_count(sub.n_parameters)} | "
                     f"{_count(sub.train_events)} | {cost} | {figures} |")
    notes = [f"- **{s.name}**: {s.description}" for s in submissions if s.description]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def write_leaderboard(task: Task, data_dir: str | Path) -> tuple[Path, str]:
    """Write ``leaderboard.md`` of a dataset folder; returns its path and text."""
    text = leaderboard_markdown(task, load_submissions(data_dir))
    path = Path(data_dir) / LEADERBOARD_MD
    with atomic_output(path) as tmp:
        Path(tmp).write_text(text)
    return path, text


def log_to_mlflow(task: Task, data_dir: str | Path, tracking_uri: str | None = None) -> list[str]:
    """Log every submission not yet in ``benchmark-<task>`` as a run; returns the new run ids."""
    from flavortag import tracking

    cfg: dict[str, Any] = {"tracking_uri": tracking_uri, "experiment_name": experiment_name(task)}
    tracking.configure(cfg)
    logged = {(r.data.tags.get(SUBMISSION_TAG), r.data.tags.get(PREDICTIONS_TAG))
              for r in tracking.finished_runs(experiment_name(task))}
    new = []
    for sub in load_submissions(data_dir):
        key = (sub.name, sub.score["predictions_sha256"])
        if key in logged:
            continue
        run = tracking.create_run(cfg, sub.name, {tracking.Tag.KIND: "benchmark", SUBMISSION_TAG: sub.name,
                                                      PREDICTIONS_TAG: key[1], tracking.Tag.MODEL: sub.model})
        run.log_params({
            "task": task.name, "task_version": task.version, "model": sub.model,
            "n_parameters": _count(sub.n_parameters), "train_events": _count(sub.train_events),
            "inference_us_per_event": sub.inference_us_per_event, "inference_device": sub.inference_device,
            "n_test_events": sub.score["n_events"], "url": sub.url})
        figures = {k: float(v) for k, v in sub.score["figures"].items() if _finite(v)}
        if sub.inference_us_per_event is not None:
            figures["inference_us_per_event"] = float(sub.inference_us_per_event)
        run.log_metrics(figures)
        run.log_dict({"name": sub.name, "model": sub.model, "score": sub.score}, "submission.json")
        run.set_status("FINISHED")
        new.append(run.run_id)
    return new


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
