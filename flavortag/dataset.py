"""Samples for training and evaluation: which files, which events, which split.

Turns a ``data`` config node into an awkward event array (through
:mod:`flavortag.io`) and a reproducible, class-stratified train / validation /
test split. No torch here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
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


def resolve_paths(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """The files named by ``paths`` (one or a list; glob patterns allowed), each resolved as in
    :func:`resolve_path`; missing files are an error (:func:`flavortag.io.api.expand_paths`)."""
    from flavortag.io.api import expand_paths

    items = [paths] if isinstance(paths, str | Path) else list(paths)
    return expand_paths([str(resolve_path(p)) for p in items])


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
                         f"{'events: uds, cc, bb' if level == 'event' else 'jets: light, c, b[, g]'}")
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


def load_sample(data_cfg: Mapping[str, Any], report: ReadReport | None = None) -> ak.Array:
    """Read the events named by a ``data`` config node.

    Keys: ``paths`` (list of files), ``label`` (class for text files, or None
    to take it from the file name / label branch), ``label_rules``,
    ``on_error`` ("raise" | "skip"), ``max_events_per_class`` (None = all;
    the first events of each class are kept, so the choice is reproducible),
    ``classes`` (the class scheme, :func:`data_scheme`: labels become its
    output indices, other classes are dropped).
    With ``on_error="skip"``, ``report`` (if given) counts what was dropped.
    """
    from flavortag.io import read_events

    paths = resolve_paths(data_cfg["paths"])
    scheme = data_scheme(data_cfg)
    events = to_scheme(read_events([str(p) for p in paths], **reader_options(data_cfg), report=report),
                       scheme)
    limit = data_cfg.get("max_events_per_class")
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


def split_indices(
    labels: np.ndarray, fractions: Mapping[str, float], seed: int
) -> dict[str, np.ndarray]:
    """Class-stratified random split of event indices into train / val / test.

    ``fractions`` maps split names to fractions summing to 1 (within 1e-6).
    The same labels, fractions and seed always give the same split; each
    returned index array is sorted.
    """
    total = sum(float(fractions.get(name, 0.0)) for name in SPLIT_NAMES)
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got {dict(fractions)}")
    labels = np.asarray(labels)
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
