"""Samples for training and evaluation: which files, which events, which split.

:class:`DataSettings` is the ``data`` config node as typed values (defaults:
the schema's, :class:`flavortag.schema.groups.DataSchema`), built once by an
app and passed down. :func:`load_sample` turns it into an awkward event
array (through :mod:`flavortag.io`), :func:`split_indices` into a
reproducible, class-stratified train / validation / test split. No torch here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np

from flavortag.classes import ClassScheme, class_scheme

if TYPE_CHECKING:
    from flavortag.io.errors import ReadReport

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")


def _data_defaults() -> dict[str, Any]:
    from flavortag.schema import defaults
    from flavortag.schema.groups import DataSchema

    return defaults(DataSchema)


_D = _data_defaults()
PathList = tuple[str, ...]


def as_paths(value: Any) -> PathList:
    """A ``paths`` value (one name or pattern, a list of them, or null) as a tuple of strings."""
    if value is None:
        return ()
    return (str(value),) if isinstance(value, str | Path) else tuple(str(p) for p in value)


@dataclass(frozen=True)
class DataSettings:
    """The ``data`` node as typed values (see ``configs/data/zpole_embedded.yaml`` for their meaning).

    Built once (:meth:`from_config`) from a plain mapping; defaults and ranges
    are those of the schema. ``split`` holds checked fractions (``{}`` when
    streaming: the split is not used then).
    """

    paths: PathList = ()
    name: str | None = _D["name"]
    recipe: str | None = _D["recipe"]
    label: str | int | None = _D["label"]
    label_rules: Mapping[str, str] | None = _D["label_rules"]
    on_error: str = _D["on_error"]
    max_events_per_class: int | None = _D["max_events_per_class"]
    split: Mapping[str, float] = dataclasses.field(default_factory=lambda: dict(_D["split"]))
    split_seed: int = _D["split_seed"]
    max_tracks: int = _D["max_tracks"]
    sort_by: str | None = _D["sort_by"]
    streaming: bool = _D["streaming"]
    step_size: str | int = _D["step_size"]
    shuffle_buffer: int = _D["shuffle_buffer"]
    val_paths: PathList = ()
    test_paths: PathList = ()
    normalisation_events: int = _D["normalisation_events"]
    level: str = _D["level"]
    classes: tuple[str, ...] | None = None
    edm4hep: Mapping[str, Any] | None = None
    #: the classes the sample is read as (:func:`data_scheme`), from ``level`` and ``classes``
    scheme: ClassScheme = dataclasses.field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # classes of the other level fail here, when the settings are made
        object.__setattr__(self, "scheme", data_scheme({"level": self.level, "classes": self.classes}))

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | DataSettings | None,
                    split_seed: int | None = None) -> DataSettings:
        """A ``data`` node (a plain mapping; missing keys: the schema's defaults) as settings.

        ``split_seed``: the seed of a node without its own (an old run's config:
        the run's ``seed``). Bad split fractions are refused (:func:`split_fractions`).
        """
        if isinstance(node, DataSettings):
            return node
        given = {str(k): v for k, v in dict(node or {}).items()}
        if split_seed is not None and given.get("split_seed") is None:
            given["split_seed"] = split_seed
        values = {**_D, **{k: v for k, v in given.items() if k in _FIELDS and v is not None or k in _NULLABLE}}
        streaming = bool(values["streaming"])
        classes = values.get("classes")
        settings = cls(
            paths=as_paths(values["paths"]), name=None if values["name"] is None else str(values["name"]),
            recipe=None if values["recipe"] is None else str(values["recipe"]),
            label=values["label"], label_rules=dict(values["label_rules"]) if values["label_rules"] else None,
            on_error=str(values["on_error"] or "raise"),
            max_events_per_class=None if values["max_events_per_class"] is None
            else int(values["max_events_per_class"]),
            split=split_fractions(values["split"], streaming), split_seed=int(values["split_seed"]),
            max_tracks=int(values["max_tracks"]), sort_by=values["sort_by"], streaming=streaming,
            step_size=values["step_size"] or _D["step_size"],
            shuffle_buffer=int(values["shuffle_buffer"] or _D["shuffle_buffer"]),
            val_paths=as_paths(values["val_paths"]), test_paths=as_paths(values["test_paths"]),
            normalisation_events=int(values["normalisation_events"] or _D["normalisation_events"]),
            level=str(values["level"] or "event"),
            classes=None if classes is None else tuple(str(c) for c in classes),
            edm4hep=dict(values["edm4hep"]) if values["edm4hep"] else None,
        )
        return settings

    @classmethod
    def of_run(cls, config: Mapping[str, Any]) -> DataSettings:
        """The data settings of a run's resolved train config (its ``data`` node; split seed: its ``seed``)."""
        if "data" not in config:
            raise ValueError("this checkpoint carries no data config: pass data=<config group>")
        seed = config.get("seed")
        return cls.from_config(config["data"], split_seed=None if seed is None else int(seed))

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain ``data`` node (lists, dicts, no tuples)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in out.items()}
        for key in ("paths", "val_paths", "test_paths", "classes"):
            out[key] = None if out[key] is None else list(out[key])
        out["split"] = dict(self.split)
        return out

    def reader_options(self) -> dict[str, Any]:
        """The :mod:`flavortag.io` reader arguments (:func:`reader_options`)."""
        return reader_options(self.to_dict())

    def with_paths(self, paths: Any, name: str | None = None) -> DataSettings:
        """The same reading and padding of other files (every event of them: no per-class limit)."""
        return dataclasses.replace(self, paths=as_paths(paths), name=self.name if name is None else name,
                                   recipe=None, max_events_per_class=None, streaming=False)

    def files(self) -> list[Path]:
        """The files of ``paths`` (:func:`resolve_paths`); a missing sample names its ``recipe``."""
        return resolve_paths(self.paths, recipe=self.recipe)

    def check_files(self) -> None:
        """Refuse a missing file of ``paths``, ``val_paths`` or ``test_paths`` (as reading would, earlier)."""
        if self.paths:
            self.files()
        for paths in (self.val_paths, self.test_paths):
            if paths:
                resolve_paths(paths)


_FIELDS = frozenset(f.name for f in dataclasses.fields(DataSettings) if f.init)
#: Keys whose null means something (no limit, no label, no sort): taken as given.
_NULLABLE = frozenset({"name", "recipe", "label", "label_rules", "max_events_per_class", "sort_by", "classes",
                       "edm4hep", "paths", "val_paths", "test_paths"})


def split_fractions(split: Any, streaming: bool = False, training: bool = True) -> dict[str, float]:
    """The ``data.split`` fractions, checked; ``{}`` when streaming (the split is not used then).

    Each of ``train`` and ``val`` must be in (0, 1), ``test`` in [0, 1), only
    these three keys, summing to 1: a run needs training events and
    validation events (for the loss curve, early stopping and the best
    checkpoint). ``training=False`` (any split of events, :func:`split_indices`):
    each fraction in [0, 1], summing to 1.
    """
    if streaming:
        return {}
    if not isinstance(split, Mapping) or not split:
        raise ValueError(f"data.split must map train, val (and test) to fractions, not {split!r}")
    unknown = sorted(str(k) for k in split if str(k) not in SPLIT_NAMES)
    if unknown:
        raise ValueError(f"data.split: unknown split(s) {unknown}; the splits are train, val, test")
    fractions: dict[str, float] = {}
    for name in SPLIT_NAMES:
        value = split.get(name, 0.0)
        try:
            fraction = float(value if value is not None else 0.0)
        except (TypeError, ValueError):
            raise ValueError(f"data.split.{name} must be a fraction, not {value!r}") from None
        low_ok = name == "test" or not training
        if not (0.0 <= fraction and (fraction < 1.0 or not training) and fraction <= 1.0
                and (low_ok or fraction > 0.0)):
            words = "in [0, 1)" if low_ok else "in (0, 1): training needs " + (
                "training events" if name == "train" else "validation events (loss curve, early "
                "stopping, best checkpoint)")
            raise ValueError(f"data.split.{name} must be {words}, not {value!r}")
        fractions[name] = fraction
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"data.split fractions must sum to 1, not {total:g} ({fractions})")
    return fractions


def resolve_path(path: str | Path) -> Path:
    """Resolve a data path: as given if it exists, else relative to the project root.

    A glob pattern (``samples/zpole/*.parquet``) is kept as a pattern: as given
    if it matches a file from the working directory, else under the project root
    if it matches there.
    """
    import glob

    candidate = Path(path).expanduser()
    if candidate.exists() or candidate.is_absolute():
        return candidate
    in_project = PROJECT_ROOT / candidate
    if any(c in str(path) for c in "*?["):
        if not glob.glob(str(candidate)) and glob.glob(str(in_project)):
            return in_project
        return candidate
    return in_project if in_project.exists() else candidate


def resolve_paths(paths: str | Path | Sequence[str | Path], recipe: str | None = None) -> list[Path]:
    """The files named by ``paths`` (one or a list; glob patterns allowed), each resolved as in
    :func:`resolve_path`; missing files are an error (:func:`flavortag.io.api.expand_paths`),
    which names ``recipe``, the command that makes them, where given."""
    from flavortag.io.api import expand_paths

    items = [paths] if isinstance(paths, str | Path) else list(paths)
    return expand_paths([str(resolve_path(p)) for p in items], recipe=recipe)


def reader_options(data_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The :mod:`flavortag.io` reader arguments of a ``data`` node: ``label``, ``label_rules``, ``on_error``.

    ``on_error`` (default "raise") must be "raise" or "skip", as the readers require.
    """
    from flavortag.io.errors import check_on_error

    rules = data_cfg.get("label_rules")
    edm4hep = data_cfg.get("edm4hep")
    return {
        "label": data_cfg.get("label"),
        "label_rules": dict(rules) if rules else None,
        "on_error": check_on_error(str(data_cfg.get("on_error") or "raise")),
        "level": str(data_cfg.get("level") or "event"),  # EDM4hep files: events or the jets of their Jet collection
        "edm4hep": dict(edm4hep) if edm4hep else None,
    }


def data_scheme(data_cfg: Mapping[str, Any]) -> ClassScheme:
    """The classes of a ``data`` node: ``classes`` (e.g. ``[light, c, b, g]``), else by ``level``.

    ``level: event`` (the default) tags events as uds, cc, bb; ``level: jet``
    tags jets as light, c, b unless ``classes`` says otherwise (``[light, c, b, g]``).
    Classes of the other level are a ``ValueError`` naming both keys.
    """
    level = str(data_cfg.get("level") or "event")
    if level not in ("event", "jet"):
        raise ValueError(f"data.level must be event or jet, not {level!r}")
    classes = data_cfg.get("classes")
    if classes is None:
        return class_scheme(["light", "c", "b"] if level == "jet" else None)
    scheme = class_scheme([str(c) for c in classes])
    if scheme.is_event_scheme != (level == "event"):
        raise ValueError(f"data.classes={list(scheme.names)} are not {level} classes (data.level={level}); "
                         f"{'events: uds, cc, bb' if level == 'event' else 'jets: light, c, b[, g][, s]'}")
    return scheme


def to_scheme(events: ak.Array, scheme: ClassScheme) -> ak.Array:
    """Events whose label is a class of ``scheme``, labels turned into its output indices.

    Records of another class (a g jet for ``[light, c, b]``) are dropped, with
    a log line; unknown labels (-1) are kept as -1. The event scheme on event
    files changes nothing.
    """
    labels = np.asarray(events["label"])
    index = scheme.indices_of(labels)
    outside = (labels >= 0) & (index < 0)
    if outside.any():
        log.info("dropped %d records of classes outside %s", int(outside.sum()), list(scheme.names))
        events, labels, index = events[~outside], labels[~outside], index[~outside]
    if not np.array_equal(index[labels >= 0], labels[labels >= 0]):
        events = ak.with_field(events, np.where(labels >= 0, index, labels).astype(np.int32), "label")
    return events


def load_sample(data: DataSettings | Mapping[str, Any], report: ReadReport | None = None) -> ak.Array:
    """Read the events named by the data settings (or a plain ``data`` node).

    ``paths`` (files or glob patterns), ``label`` (class for text files, or
    None to take it from the file name / label branch), ``label_rules``,
    ``on_error`` ("raise" | "skip"), ``max_events_per_class`` (None = all;
    the first events of each class are kept, so the choice is reproducible),
    ``classes`` (the class scheme, :func:`data_scheme`: labels become its
    output indices, other classes are dropped).
    With ``on_error="skip"``, ``report`` (if given) counts what was dropped.
    """
    from flavortag.io import read_events

    settings = DataSettings.from_config(data)
    paths = settings.files()
    scheme = settings.scheme
    events = to_scheme(read_events([str(p) for p in paths], **settings.reader_options(), report=report),
                       scheme)
    limit = settings.max_events_per_class
    if limit is not None:
        labels = np.asarray(events["label"])
        keep = np.concatenate([np.flatnonzero(labels == c)[: int(limit)] for c in range(len(scheme))])
        events = events[np.sort(keep)]
    labels = np.asarray(events["label"])
    counts = np.bincount(labels[labels >= 0], minlength=len(scheme))
    log.info(
        "read %d records from %d file(s): %s",
        len(events), len(paths), ", ".join(f"{n}={c}" for n, c in zip(scheme.names, counts)),
    )
    return events


@dataclass(frozen=True)
class SplitSample:
    """A training sample read and split: the events, each split's positions in them, the files read."""

    events: ak.Array
    indices: dict[str, np.ndarray]
    paths: list[str]


def load_split_sample(data: DataSettings, report: ReadReport | None = None) -> SplitSample:
    """Read the sample of ``data`` and split it (class-stratified, seeded by ``data.split_seed``)."""
    events = load_sample(data, report=report)
    indices = split_indices(np.asarray(events["label"]), data.split, data.split_seed, groups=event_groups(events))
    return SplitSample(events, indices, [str(p) for p in data.files()])


def event_groups(records: ak.Array) -> np.ndarray | None:
    """The event of each jet record, as a group number (None for event records).

    Jet records carry ``event``, their event's number in its file; the jets of one
    event are neighbours in every jet file (docs/FORMAT.md), so a new group starts
    wherever ``event`` changes from one record to the next (also where a file ends).
    """
    if "event" not in records.fields or "jet" not in records.fields:
        return None
    event = np.asarray(records["event"], dtype=np.int64)
    return np.cumsum(np.concatenate([[0], event[1:] != event[:-1]])).astype(np.int64)


def split_indices(
    labels: np.ndarray, fractions: Mapping[str, float], seed: int, groups: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Class-stratified random split of event indices into train / val / test.

    ``fractions`` maps split names to fractions summing to 1 (checked by :func:`split_fractions`).
    ``groups`` (one number per record, e.g. :func:`event_groups`): records of one group stay
    in one split (the jets of an event), drawn group by group, stratified by each group's
    first record's label. The same labels, groups, fractions and seed always give the same
    split; each returned index array is sorted.
    """
    fractions = split_fractions(fractions, training=False)
    labels = np.asarray(labels)
    if groups is not None:
        groups = np.asarray(groups, dtype=np.int64)
        unique, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
        by_group = split_indices(labels[first], fractions, seed)
        split_of = np.empty(len(unique), np.int64)
        for k, name in enumerate(SPLIT_NAMES):
            split_of[by_group[name]] = k
        record_split = split_of[inverse.reshape(-1)]
        return {name: np.flatnonzero(record_split == k) for k, name in enumerate(SPLIT_NAMES)}
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLIT_NAMES}
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(len(idx))]
        edges = np.cumsum([float(fractions.get(name, 0.0)) for name in SPLIT_NAMES])
        cuts = np.round(edges * len(idx)).astype(int)
        start = 0
        for name, stop in zip(SPLIT_NAMES, cuts):
            parts[name].append(idx[start:stop])
            start = stop
    return {name: np.sort(np.concatenate(chunks)) if chunks else np.empty(0, np.int64)
            for name, chunks in parts.items()}
