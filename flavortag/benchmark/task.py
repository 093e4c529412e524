"""Benchmark tasks: named, versioned YAML files that fix a dataset and how it is scored.

A task file (``flavortag/benchmark/tasks/<name>.yaml``, shipped in the package)
fixes everything a dataset and its official figures depend on: the process
and sqrt(s), the detector settings (written out in full, so a later change of
``configs/detector/`` cannot change the task), the generation seed and the
chunk size, the events per class of each split, the label definition, the
input fields, and the metrics (the f_c / f_b of the discriminants, the signal
efficiencies at which rejections are quoted, the headline figures).

Splits are blocks of the chunk list of each class (:mod:`flavortag.generate`):
chunk indices ``0 .. n_test/chunk_size - 1`` are the test split, then val, then
train, so enlarging the training split in a later version leaves the test
events unchanged. Each split is written in files of ``file_events`` events.

Plain dataclasses and ``yaml.safe_load``: no Hydra, no OmegaConf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from flavortag.detector import DetectorModel
from flavortag.errors import UsageError
from flavortag.metrics.working_points import efficiency_tag

#: The splits of every task, in the order their chunks are laid out per class.
SPLITS: tuple[str, ...] = ("test", "val", "train")
#: The keys a task file may have (unknown keys are an error naming the file).
_KEYS = {"name", "version", "description", "motivation", "process", "sqrt_s_gev", "isr", "pythia",
         "level", "n_jets", "classes", "label_definition", "detector", "seed", "chunk_size",
         "file_events", "splits", "input_fields", "truth_fields", "metrics", "licence",
         "intended_use", "known_limits"}
_METRIC_KEYS = {"f_c", "f_b", "efficiencies", "headline"}


class TaskError(UsageError):
    """A task that does not exist or a task file that cannot be used (names the file): exit code 2."""


@dataclass(frozen=True)
class MetricsSpec:
    """How a task is scored: discriminant fractions, efficiencies, headline figure names."""

    f_c: float
    f_b: float
    efficiencies: tuple[float, ...]
    headline: tuple[str, ...]


@dataclass(frozen=True)
class Task:
    """One benchmark task (see the module doc); ``source`` is the file it was read from."""

    name: str
    version: int
    description: str
    motivation: str
    process: str
    sqrt_s_gev: float
    isr: bool
    pythia: tuple[str, ...]
    classes: tuple[str, ...]
    label_definition: str
    detector: DetectorModel
    seed: int
    chunk_size: int
    file_events: int
    splits: dict[str, int]
    input_fields: dict[str, tuple[str, ...]]
    truth_fields: tuple[str, ...]
    metrics: MetricsSpec
    licence: str
    intended_use: str
    known_limits: tuple[str, ...]
    source: str = ""
    level: str = "event"
    n_jets: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def n_files(self, split: str) -> int:
        """Files per class of ``split``."""
        return max(1, math.ceil(self.splits[split] / self.file_events))

    def first_chunk(self, split: str) -> int:
        """Index of the first chunk of ``split`` in each class's chunk list."""
        start = 0
        for name in SPLITS:
            if name == split:
                return start
            start += self.splits[name] // self.chunk_size
        raise KeyError(split)

    def headline_names(self) -> tuple[str, ...]:
        """The headline figures, e.g. ``rej_uds_at_b70`` (names of :meth:`EvaluationResult.flat_metrics`)."""
        return self.metrics.headline


def tasks_dir() -> Path:
    """The folder of the shipped task files."""
    return Path(str(resources.files("flavortag.benchmark") / "tasks"))


def list_tasks() -> list[Task]:
    """Every shipped task, by name."""
    return [load_task(path) for path in sorted(tasks_dir().glob("*.yaml"))]


def load_task(name_or_path: str | Path) -> Task:
    """The task of a shipped name (``zpole-3class-ild-v1``) or of a task file's path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = tasks_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            known = ", ".join(p.stem for p in sorted(tasks_dir().glob("*.yaml")))
            raise TaskError(f"no benchmark task {str(name_or_path)!r}; the tasks are: {known} "
                            "(or give the path of a task file)")
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise TaskError(f"{path}: cannot read the task file: {err}") from None
    if not isinstance(raw, dict):
        raise TaskError(f"{path}: a task file is a mapping of keys, not {type(raw).__name__}")
    return _task_from_dict(raw, path)


def _need(raw: dict[str, Any], key: str, path: Path) -> Any:
    if key not in raw:
        raise TaskError(f"{path}: the task file has no {key!r}")
    return raw[key]


def _task_from_dict(raw: dict[str, Any], path: Path) -> Task:
    unknown = set(raw) - _KEYS
    if unknown:
        raise TaskError(f"{path}: unknown keys {sorted(unknown)}; known: {sorted(_KEYS)}")
    metrics = dict(_need(raw, "metrics", path))
    if set(metrics) - _METRIC_KEYS:
        raise TaskError(f"{path}: unknown metrics keys {sorted(set(metrics) - _METRIC_KEYS)}")
    splits = {str(k): int(v) for k, v in dict(_need(raw, "splits", path)).items()}
    if set(splits) != set(SPLITS):
        raise TaskError(f"{path}: splits must be exactly {list(SPLITS)}, not {sorted(splits)}")
    chunk_size, file_events = int(_need(raw, "chunk_size", path)), int(_need(raw, "file_events", path))
    for split, n in splits.items():
        if n < chunk_size or n % chunk_size:
            raise TaskError(f"{path}: splits.{split} = {n} must be a positive multiple of chunk_size "
                            f"= {chunk_size}")
    if file_events < chunk_size or file_events % chunk_size:
        raise TaskError(f"{path}: file_events = {file_events} must be a multiple of chunk_size = {chunk_size}")
    try:
        detector = DetectorModel.from_config(dict(_need(raw, "detector", path)))
    except (TypeError, ValueError) as err:
        raise TaskError(f"{path}: detector: {err}") from None
    name = str(_need(raw, "name", path))
    if path.suffix == ".yaml" and path.stem != name:
        raise TaskError(f"{path}: the file of task {name!r} must be named {name}.yaml")
    efficiencies = tuple(float(e) for e in _need(metrics, "efficiencies", path))
    headline = tuple(str(h) for h in _need(metrics, "headline", path))
    tags = {efficiency_tag(e) for e in efficiencies}
    for figure in headline:
        if figure.startswith("rej_") and figure.rsplit("_at_", 1)[-1][1:] not in tags:
            raise TaskError(f"{path}: headline {figure!r} is at an efficiency not in {list(efficiencies)}")
    inputs = {str(k): tuple(str(f) for f in v) for k, v in dict(_need(raw, "input_fields", path)).items()}
    return Task(
        name=name,
        version=int(_need(raw, "version", path)),
        description=str(_need(raw, "description", path)).strip(),
        motivation=str(raw.get("motivation", "")).strip(),
        process=str(_need(raw, "process", path)),
        sqrt_s_gev=float(_need(raw, "sqrt_s_gev", path)),
        isr=bool(raw.get("isr", False)),
        pythia=tuple(str(s) for s in raw.get("pythia") or ()),
        classes=tuple(str(c) for c in _need(raw, "classes", path)),
        label_definition=str(_need(raw, "label_definition", path)).strip(),
        detector=detector,
        seed=int(_need(raw, "seed", path)),
        chunk_size=chunk_size,
        file_events=file_events,
        splits=splits,
        input_fields=inputs,
        truth_fields=tuple(str(f) for f in raw.get("truth_fields") or ()),
        metrics=MetricsSpec(float(_need(metrics, "f_c", path)), float(_need(metrics, "f_b", path)),
                            efficiencies, headline),
        licence=str(_need(raw, "licence", path)).strip(),
        intended_use=str(_need(raw, "intended_use", path)).strip(),
        known_limits=tuple(str(s).strip() for s in raw.get("known_limits") or ()),
        source=str(path),
        level=str(raw.get("level", "event")),
        n_jets=None if raw.get("n_jets") is None else int(raw["n_jets"]),
        raw=raw,
    )


def default_data_dir(task: Task) -> Path:
    """Where a task's dataset goes by default: ``$FLAVORTAG_SAMPLES/benchmark/<task>`` (``samples/...``)."""
    import os

    return Path(os.environ.get("FLAVORTAG_SAMPLES") or "samples") / "benchmark" / task.name
