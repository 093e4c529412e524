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

Schema versions (``schema:`` in the file; absent means 1). Schema 2 adds, without
changing what a schema-1 file means (its sha256 and its dataset stay the same):

* ``test_variants``: shifted test sets (``zpole-robustness-v1``). Each names its
  ``events`` per class, ``detector`` changes (keys of :class:`DetectorModel`) and
  extra ``pythia`` lines; its events are chunks ``0 ..`` of each class made with
  the task's seed and those changes, so a detector variant holds the same Pythia
  events as the start of the nominal test split, seen by another detector. A
  variant is written under ``shifted/<name>/`` and scored beside ``test``.
* ``metrics.robustness``: the figures whose fraction kept (variant / nominal on
  the same chunks) ``score`` reports for each variant.

Plain dataclasses and ``yaml.safe_load``: no Hydra, no OmegaConf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from flavortag.classes import ClassScheme, class_scheme
from flavortag.detector import DetectorModel
from flavortag.errors import UsageError
from flavortag.metrics.working_points import efficiency_tag

#: The splits of every task, in the order their chunks are laid out per class.
SPLITS: tuple[str, ...] = ("test", "val", "train")
#: The newest task-file schema this flavortag reads (see the module doc).
TASK_SCHEMA: int = 2
#: The keys a task file may have, by schema (unknown keys are an error naming the file).
_KEYS_V1 = {"name", "version", "description", "motivation", "process", "sqrt_s_gev", "isr", "pythia",
            "level", "n_jets", "classes", "label_definition", "detector", "seed", "chunk_size",
            "file_events", "splits", "input_fields", "truth_fields", "metrics", "licence",
            "intended_use", "known_limits"}
_KEYS = {1: _KEYS_V1 | {"schema"}, 2: _KEYS_V1 | {"schema", "test_variants"}}
_METRIC_KEYS = {1: {"f_c", "f_b", "efficiencies", "headline"},
                2: {"f_c", "f_b", "efficiencies", "headline", "robustness"}}
_VARIANT_KEYS = {"description", "events", "detector", "pythia"}
#: Folder (and split name prefix) of the shifted test sets.
SHIFTED = "shifted"
#: Prefixes of the robustness figures: per variant ``<variant>/kept_<figure>``, ``<variant>/nominal_<figure>``;
#: over the variants ``mean_kept_<figure>``.
KEPT, NOMINAL, MEAN_KEPT = "kept_", "nominal_", "mean_kept_"


class TaskError(UsageError):
    """A task that does not exist or a task file that cannot be used (names the file): exit code 2."""


@dataclass(frozen=True)
class MetricsSpec:
    """How a task is scored: discriminant fractions, efficiencies, headline figure names."""

    f_c: float
    f_b: float
    efficiencies: tuple[float, ...]
    headline: tuple[str, ...]
    #: figures whose fraction kept on each shifted test set is reported (schema 2)
    robustness: tuple[str, ...] = ()


@dataclass(frozen=True)
class TestVariant:
    """A shifted test set: the first ``n_events`` per class of the test chunks, made differently."""

    __test__ = False  # not a pytest class

    name: str
    description: str
    n_events: int
    detector: DetectorModel
    #: the task's Pythia lines followed by the variant's own
    pythia: tuple[str, ...]
    #: the variant's number (1, 2, ... in file order): part of its event ids
    code: int
    #: the detector keys the variant changes, with their values
    detector_changes: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def split(self) -> str:
        """Its split name and folder: ``shifted/<name>``."""
        return f"{SHIFTED}/{self.name}"


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
    schema: int = 1
    test_variants: tuple[TestVariant, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def flavours(self) -> tuple[str, ...]:
        """The generated classes (file names): ``uds, cc, bb`` (events), ``uds, cc, bb, gg`` (H decays)."""
        from flavortag.generate.pythia_setup import flavour_name

        return tuple(flavour_name(c) for c in self.classes)

    @property
    def scheme(self) -> ClassScheme:
        """The :class:`ClassScheme` of the task's classes (what the predictions' columns are)."""
        return class_scheme(self.classes)

    def all_splits(self) -> tuple[str, ...]:
        """Every split of the dataset: test, val, train, then ``shifted/<variant>`` of each variant."""
        return (*SPLITS, *(v.split for v in self.test_variants))

    def scored_splits(self) -> tuple[str, ...]:
        """What ``score`` needs predictions for: test and every shifted test set."""
        return ("test", *(v.split for v in self.test_variants))

    def variant(self, name: str) -> TestVariant:
        """The test variant called ``name`` (``KeyError`` if none)."""
        for v in self.test_variants:
            if v.name == name:
                return v
        raise KeyError(name)

    def split_events(self, split: str) -> int:
        """Events per class of ``split`` (a split of :data:`SPLITS` or ``shifted/<variant>``)."""
        if split.startswith(f"{SHIFTED}/"):
            return self.variant(split.split("/", 1)[1]).n_events
        return self.splits[split]

    def n_files(self, split: str) -> int:
        """Files per class of ``split``."""
        return max(1, math.ceil(self.split_events(split) / self.file_events))

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


def task_from_record(raw: Any, where: str | Path) -> Task:
    """The task recorded in a dataset's ``generation.yaml`` (``where`` names that file in errors).

    Checked as a task file is, except that the name need not match the file's.
    """
    if not isinstance(raw, dict):
        raise TaskError(f"{where}: the recorded task is a mapping of keys, not {type(raw).__name__}")
    return _task_from_dict(raw, Path(where), check_name=False)


def _need(raw: dict[str, Any], key: str, path: Path) -> Any:
    if key not in raw:
        raise TaskError(f"{path}: the task file has no {key!r}")
    return raw[key]


def _task_from_dict(raw: dict[str, Any], path: Path, check_name: bool = True) -> Task:
    schema = raw.get("schema", 1)
    if schema not in _KEYS:
        raise TaskError(f"{path}: task schema {schema!r} is not one this flavortag reads (1 .. {TASK_SCHEMA}); "
                        "a newer schema needs a newer flavortag")
    unknown = set(raw) - _KEYS[schema]
    if unknown:
        raise TaskError(f"{path}: unknown keys {sorted(unknown)} for task schema {schema}; "
                        f"known: {sorted(_KEYS[schema])}")
    metrics = dict(_need(raw, "metrics", path))
    if set(metrics) - _METRIC_KEYS[schema]:
        raise TaskError(f"{path}: unknown metrics keys {sorted(set(metrics) - _METRIC_KEYS[schema])} "
                        f"for task schema {schema}")
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
    if check_name and path.suffix == ".yaml" and path.stem != name:
        raise TaskError(f"{path}: the file of task {name!r} must be named {name}.yaml")
    classes = tuple(str(c) for c in _need(raw, "classes", path))
    try:
        scheme = class_scheme(classes)
    except ValueError as err:
        raise TaskError(f"{path}: classes: {err}") from None
    if tuple(c.lower() for c in classes) not in (scheme.names, tuple(n.lower() for n in scheme.names)):
        raise TaskError(f"{path}: classes {list(classes)} must be in the order {list(scheme.names)}")
    pythia = tuple(str(s) for s in raw.get("pythia") or ())
    variants = _variants(raw.get("test_variants") or {}, path, detector, pythia, splits["test"], chunk_size)
    efficiencies = tuple(float(e) for e in _need(metrics, "efficiencies", path))
    headline = tuple(str(h) for h in _need(metrics, "headline", path))
    robustness = tuple(str(h) for h in metrics.get("robustness") or ())
    if variants and not robustness:
        raise TaskError(f"{path}: a task with test_variants names its metrics.robustness figures")
    tags = {efficiency_tag(e) for e in efficiencies}
    names = {v.name for v in variants}
    for figure in robustness:
        _check_figure(figure, figure, tags, path)
    for figure in headline:
        base = figure
        if "/" in base:
            variant, base = base.split("/", 1)
            if variant not in names:
                raise TaskError(f"{path}: headline {figure!r} names no test variant (variants: {sorted(names)})")
        for prefix in (MEAN_KEPT, KEPT, NOMINAL):
            if base.startswith(prefix):
                base = base[len(prefix):]
                if base not in robustness:
                    raise TaskError(f"{path}: headline {figure!r}: {base!r} is not in metrics.robustness")
                break
        _check_figure(figure, base, tags, path)
    inputs = {str(k): tuple(str(f) for f in v) for k, v in dict(_need(raw, "input_fields", path)).items()}
    level = str(raw.get("level", "event"))
    n_jets = None if raw.get("n_jets") is None else int(raw["n_jets"])
    if level not in ("event", "jet") or (level == "jet") != (n_jets is not None):
        raise TaskError(f"{path}: level {level!r} with n_jets {n_jets}: use level: event (no n_jets) "
                        "or level: jet with n_jets")
    return Task(
        name=name,
        version=int(_need(raw, "version", path)),
        description=str(_need(raw, "description", path)).strip(),
        motivation=str(raw.get("motivation", "")).strip(),
        process=str(_need(raw, "process", path)),
        sqrt_s_gev=float(_need(raw, "sqrt_s_gev", path)),
        isr=bool(raw.get("isr", False)),
        pythia=pythia,
        classes=classes,
        label_definition=str(_need(raw, "label_definition", path)).strip(),
        detector=detector,
        seed=int(_need(raw, "seed", path)),
        chunk_size=chunk_size,
        file_events=file_events,
        splits=splits,
        input_fields=inputs,
        truth_fields=tuple(str(f) for f in raw.get("truth_fields") or ()),
        metrics=MetricsSpec(float(_need(metrics, "f_c", path)), float(_need(metrics, "f_b", path)),
                            efficiencies, headline, robustness),
        licence=str(_need(raw, "licence", path)).strip(),
        intended_use=str(_need(raw, "intended_use", path)).strip(),
        known_limits=tuple(str(s).strip() for s in raw.get("known_limits") or ()),
        source=str(path),
        level=level,
        n_jets=n_jets,
        schema=int(schema),
        test_variants=variants,
        raw=raw,
    )


def _check_figure(figure: str, base: str, tags: set[str], path: Path) -> None:
    """A rejection figure must be at one of the task's efficiencies."""
    if base.startswith("rej_") and base.rsplit("_at_", 1)[-1][1:] not in tags:
        raise TaskError(f"{path}: figure {figure!r} is at an efficiency not in the task's efficiencies")


#: Variants get the codes 1 .. this (5 bits of the event id).
MAX_VARIANTS: int = 31


def _variants(spec: Any, path: Path, detector: DetectorModel, pythia: tuple[str, ...],
              n_test: int, chunk_size: int) -> tuple[TestVariant, ...]:
    """The ``test_variants`` of a task file, checked."""
    import dataclasses
    import re

    if not isinstance(spec, dict):
        raise TaskError(f"{path}: test_variants is a mapping name -> variant, not {type(spec).__name__}")
    if len(spec) > MAX_VARIANTS:
        raise TaskError(f"{path}: at most {MAX_VARIANTS} test_variants")
    out = []
    for code, (name, entry) in enumerate(spec.items(), 1):
        where = f"{path}: test_variants.{name}"
        if not re.fullmatch(r"[a-z0-9][a-z0-9_]*", str(name)):
            raise TaskError(f"{where}: a variant name uses a-z, 0-9 and _")
        entry = dict(entry or {})
        if set(entry) - _VARIANT_KEYS:
            raise TaskError(f"{where}: unknown keys {sorted(set(entry) - _VARIANT_KEYS)}; known: {sorted(_VARIANT_KEYS)}")
        n = int(_need(entry, "events", Path(where)))
        if n < chunk_size or n % chunk_size or n > n_test:
            raise TaskError(f"{where}: events = {n} must be a positive multiple of chunk_size = {chunk_size}, "
                            f"at most the test split's {n_test}")
        changes = dict(entry.get("detector") or {})
        try:
            shifted = dataclasses.replace(detector, **changes)
        except (TypeError, ValueError) as err:
            raise TaskError(f"{where}: detector: {err}") from None
        extra = tuple(str(s) for s in entry.get("pythia") or ())
        if not changes and not extra:
            raise TaskError(f"{where}: changes neither the detector nor the Pythia settings")
        out.append(TestVariant(str(name), str(entry.get("description", "")).strip(), n, shifted, pythia + extra,
                               code, changes))
    return tuple(out)


def default_data_dir(task: Task) -> Path:
    """Where a task's dataset goes by default: ``$FLAVORTAG_SAMPLES/benchmark/<task>`` (``samples/...``)."""
    import os

    return Path(os.environ.get("FLAVORTAG_SAMPLES") or "samples") / "benchmark" / task.name
