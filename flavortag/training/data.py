"""Training data: the sample read, split and turned into feature tensors per split.

In memory (the default) the whole sample is read and split (stratified,
seeded). Streaming (``data.streaming=true``, torch models only) is for training
files larger than memory: the training events stay on disk and are counted once
(for the schedule and the class weights); the input standardisation is fitted on
``data.normalisation_events`` events from the start of every training file;
validation and test events come from ``data.val_paths`` / ``data.test_paths``.

Training data of fewer than two classes is refused here, before any training
(:func:`check_classes`); with ``data.on_error=skip`` the events the readers
dropped are counted in :attr:`PreparedData.read_report`, which the job logs
with the run.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from flavortag.augment import ResolutionAugmentation, augment_events
from flavortag.batching import (
    EventTensors,
    build_event_tensors,
    concat_event_tensors,
)
from flavortag.calibration_function import fit_training_resolution
from flavortag.classes import EVENT_SCHEME, ClassScheme
from flavortag.dataset import data_scheme, load_sample, reader_options, resolve_paths, split_indices
from flavortag.detector import DetectorModel
from flavortag.features import expand_feature_names
from flavortag.io.errors import ReadReport

log = logging.getLogger("flavortag.train")


@dataclass
class StreamingSource:
    """Training events read from files each epoch (``data.streaming``) instead of held in memory.

    ``n_events`` / ``class_counts`` [N_CLASSES] come from one counting pass
    before training; ``normalisation`` holds the events the input
    standardisation is fitted on (the first of every file).
    """

    paths: list[str]
    n_events: int
    class_counts: np.ndarray
    step_size: int | str
    shuffle_buffer: int
    io_options: dict[str, Any]
    normalisation: EventTensors


@dataclass
class PreparedData:
    """Feature tensors of each split plus what is needed to reproduce them.

    In memory, ``tensors`` holds train / val / test, ``events`` (if kept) the
    whole sample and ``indices[split]`` the split's positions in it. When
    streaming, ``stream`` describes the training files, ``tensors`` holds only
    val (and test) and ``events`` (if kept) the val events followed by the test
    events, ``indices`` giving their positions.
    """

    tensors: dict[str, EventTensors]
    indices: dict[str, np.ndarray]
    track_names: list[str]
    event_names: list[str]
    detector: DetectorModel
    events: Any = None
    stream: StreamingSource | None = None
    #: the classes the tagger learns (``data.classes``; default the event classes)
    scheme: ClassScheme = EVENT_SCHEME
    #: what the readers kept and dropped (``data.on_error=skip``); when streaming, the
    #: validation / test files and the counting pass of text training files
    read_report: ReadReport | None = None
    #: the resolution functions fitted on the (unaugmented) training events, stored with the model
    #: (``flavortag.calibration_function``; None: too few tracks)
    training_resolution: dict[str, Any] | None = None

    def n_events(self) -> dict[str, int]:
        """Number of events per split (streamed training events included)."""
        sizes = {name: len(t.labels) for name, t in self.tensors.items()}
        if self.stream is not None:
            sizes = {"train": self.stream.n_events, **sizes}
        return sizes


def feature_names(features_cfg: Mapping[str, Any] | None) -> tuple[list[str], list[str]]:
    """Track and event feature names of a ``features`` config node (None -> library defaults)."""
    node = features_cfg or {}
    return (list(expand_feature_names("track", node.get("track"))),
            list(expand_feature_names("event", node.get("event"))))


def check_classes(class_counts: np.ndarray, paths: list[str], what: str = "training data",
                  scheme: ClassScheme = EVENT_SCHEME) -> None:
    """Refuse training data of fewer than two classes (naming the classes and files); warn when one is missing."""
    counts = np.asarray(class_counts)
    CLASS_NAMES, N_CLASSES = scheme.names, len(scheme)  # noqa: N806 -- the names of the messages
    present = [k for k in range(N_CLASSES) if counts[k] > 0]
    found = ", ".join(f"{CLASS_NAMES[k]}: {int(counts[k])} events" for k in present) or "no events"
    files = ", ".join(paths)
    if len(present) < 2:
        raise ValueError(
            f"the {what} hold {len(present)} class only ({found}) from {files}: a tagger learns "
            f"to tell classes apart and needs events of at least two of {', '.join(CLASS_NAMES)}; "
            "add the files of the other classes to data.paths (or check data.label / "
            "data.label_rules, which give the class of files without a label)")
    if len(present) < N_CLASSES:
        missing = ", ".join(CLASS_NAMES[k] for k in range(N_CLASSES) if k not in present)
        log.warning("the %s hold no %s events (%s, from %s): the tagger will never predict %s "
                    "and its AUCs involving it are undefined", what, missing, found, files, missing)


def prepare_data(cfg: DictConfig, keep_events: bool = False) -> PreparedData:
    """Read the sample, split it (stratified, seeded) and build feature tensors per split.

    With ``data.streaming`` the training events stay on disk (see
    :func:`prepare_streaming_data`).
    """
    if cfg.data.get("streaming", False):
        if not data_scheme(cfg.data).is_event_scheme:
            raise ValueError("data.streaming reads the event classes uds, cc, bb only: "
                             "set data.streaming=false for data.classes=" + str(list(cfg.data.classes)))
        return prepare_streaming_data(cfg, keep_events)
    report = ReadReport()
    events = load_sample(cfg.data, report=report)
    detector = DetectorModel.from_config(OmegaConf.to_container(cfg.detector, resolve=True))  # type: ignore[arg-type]
    track_names, event_names = feature_names(cfg.get("features"))
    labels = np.asarray(events["label"])
    fractions = {str(k): float(v) for k, v in cfg.data.split.items()}
    indices = split_indices(labels, fractions, int(cfg.data.get("split_seed", cfg.seed)))
    scheme = data_scheme(cfg.data)
    check_classes(np.bincount(labels[indices["train"]], minlength=len(scheme)),
                  [str(p) for p in resolve_paths(cfg.data.paths)], "training events", scheme)
    tensors: dict[str, EventTensors] = {}
    training_resolution = fit_training_resolution(events[indices["train"]], detector)
    augment = ResolutionAugmentation.from_config(plain_dict(cfg.augment) if cfg.get("augment") else None)
    for k, (name, idx) in enumerate(indices.items()):
        if len(idx) == 0:
            continue
        split_events = events[idx]
        if augment.enabled and name in ("train", "val"):
            # the test split stays as simulated: it measures the nominal performance
            split_events = augment_events(split_events, augment, detector, seed_offset=k)
            log.info("%s split re-smeared: resolution scale in [%.2f, %.2f] for %.0f%% of the events",
                     name, augment.scale_min, augment.scale_max, 100 * augment.fraction)
        tensors[name] = build_event_tensors(
            split_events,
            track_feature_names=track_names,
            event_feature_names=event_names,
            max_tracks=int(cfg.data.max_tracks),
            detector=detector,
            sort_by=cfg.data.get("sort_by", "E"),
        )
    for name, t in tensors.items():
        log.info("%s split: %d events, %d tracks truncated at max_tracks=%d",
                 name, len(t.labels), t.n_truncated, int(cfg.data.max_tracks))
    return PreparedData(tensors, indices, track_names, event_names, detector,
                        events if keep_events else None, read_report=report, scheme=scheme,
                        training_resolution=training_resolution)


def _read_first_events(paths: list[str], n_events: int, io_options: Mapping[str, Any]) -> list[Any]:
    """About ``n_events`` events from the start of the files: the first ``n_events / len(paths)`` of each."""
    from flavortag.io import iter_events

    per_file = max(1, math.ceil(n_events / len(paths)))
    parts = []
    for path in paths:
        chunks = iter_events(path, step_size=per_file, **io_options)
        first = next(chunks, None)
        del chunks  # the rest of the file is not read
        if first is not None and len(first):
            parts.append(first)
    return parts


def prepare_streaming_data(cfg: DictConfig, keep_events: bool = False) -> PreparedData:
    """Streaming set-up: count the training files, read the normalisation events, load val / test."""
    import awkward as ak

    from flavortag.io import count_events
    from flavortag.io.api import parse_step_size

    data_cfg = cfg.data
    if cfg.get("augment") and cfg.augment.get("enabled", False):
        raise ValueError("augment (resolution augmentation) works on in-memory samples only: "
                         "set data.streaming=false or augment=none")
    if not data_cfg.get("val_paths"):
        raise ValueError("data.streaming=true needs data.val_paths: the validation events come "
                         "from their own files (data.split is not used when streaming)")
    if data_cfg.get("max_events_per_class") is not None:
        log.warning("data.max_events_per_class is ignored when streaming")
    detector = DetectorModel.from_config(OmegaConf.to_container(cfg.detector, resolve=True))  # type: ignore[arg-type]
    track_names, event_names = feature_names(cfg.get("features"))
    io_options = reader_options(data_cfg)
    step_size: int | str = data_cfg.get("step_size") or "16 MB"
    parse_step_size(step_size)  # a bad value fails here, not in the first epoch
    shuffle_buffer = int(data_cfg.get("shuffle_buffer") or 50_000)
    max_tracks = int(data_cfg.max_tracks)
    sort_by = data_cfg.get("sort_by", "E")

    def tensors_of(events: Any) -> EventTensors:
        return build_event_tensors(events, track_feature_names=track_names,
                                   event_feature_names=event_names, max_tracks=max_tracks,
                                   detector=detector, sort_by=sort_by)

    train_paths = [str(p) for p in resolve_paths(data_cfg.paths)]
    t0 = time.perf_counter()
    report = ReadReport()
    n_train, class_counts = count_events(train_paths, **io_options, report=report)
    if n_train == 0:
        raise ValueError(f"no training events in {train_paths}")
    check_classes(class_counts, train_paths, "training files")
    log.info("streaming %d training events from %d file(s) (%s; counted in %.1f s)", n_train,
             len(train_paths), ", ".join(f"class {c}: {n}" for c, n in enumerate(class_counts)),
             time.perf_counter() - t0)
    n_norm = int(data_cfg.get("normalisation_events") or 20_000)
    first = _read_first_events(train_paths, n_norm, io_options)
    normalisation = concat_event_tensors([tensors_of(part) for part in first])
    training_resolution = fit_training_resolution(ak.concatenate(first), detector) if first else None
    log.info("input normalisation from %d events (the first of each training file)", len(normalisation))

    plain = {**plain_dict(data_cfg), "max_events_per_class": None}
    split_events: dict[str, Any] = {}
    for name, key in (("val", "val_paths"), ("test", "test_paths")):
        if data_cfg.get(key):
            split_events[name] = load_sample({**plain, "paths": data_cfg.get(key)}, report=report)
    tensors = {name: tensors_of(events) for name, events in split_events.items()}
    indices: dict[str, np.ndarray] = {}
    start = 0
    for name, events in split_events.items():
        indices[name] = np.arange(start, start + len(events))
        start += len(events)
    for name, t in tensors.items():
        log.info("%s split: %d events, %d tracks truncated at max_tracks=%d",
                 name, len(t.labels), t.n_truncated, max_tracks)
    if "test" not in tensors:
        log.info("no data.test_paths: the run will not be evaluated on a test split")
    events = ak.concatenate(list(split_events.values())) if keep_events else None
    stream = StreamingSource(train_paths, n_train, class_counts, step_size, shuffle_buffer,
                             io_options, normalisation)
    return PreparedData(tensors, indices, track_names, event_names, detector, events, stream,
                        read_report=report, training_resolution=training_resolution)


def plain_dict(node: Any) -> dict[str, Any]:
    """A config node as a plain dict with string keys."""
    container = OmegaConf.to_container(node, resolve=True)
    assert isinstance(container, dict)
    return {str(k): v for k, v in container.items()}


#: MLflow dataset-input context of each split.
SPLIT_CONTEXT: dict[str, str] = {"train": "training", "val": "validation", "test": "testing"}


def _file_identity(path: str | Path) -> bytes:
    """Name, size and the first 64 KiB of a file: enough to tell samples apart, cheap for big files."""
    p = Path(path)
    with p.open("rb") as fh:
        head = fh.read(65536)
    return f"{p.name}:{p.stat().st_size}:".encode() + head


def sample_records(cfg: DictConfig, data: PreparedData) -> dict[str, tuple[str, dict[str, int], str]]:
    """Per split: ``(digest, events per class, source)`` describing the events it was made of.

    The digest (10 hex digits) hashes the files (name, size, first 64 KiB) and
    the split's event positions, so the same files split the same way give the
    same digest; ``source`` lists the files.
    """
    data_cfg = cfg.data
    files: dict[str, list[str]] = {}
    if data.stream is not None:
        files["train"] = list(data.stream.paths)
        for split, key in (("val", "val_paths"), ("test", "test_paths")):
            if data_cfg.get(key):
                files[split] = [str(p) for p in resolve_paths(data_cfg.get(key))]
    else:
        paths = [str(p) for p in resolve_paths(data_cfg.paths)]
        files = {split: paths for split in data.tensors}
    out: dict[str, tuple[str, dict[str, int], str]] = {}
    for split, paths in files.items():
        digest = hashlib.sha256()
        for path in paths:
            digest.update(_file_identity(path))
        if split in data.tensors:
            labels = data.tensors[split].labels
            counts = np.bincount(labels, minlength=len(data.scheme))
            if data.stream is None:
                digest.update(np.asarray(data.indices[split], dtype=np.int64).tobytes())
        else:
            assert data.stream is not None
            counts = np.asarray(data.stream.class_counts)
        out[split] = (digest.hexdigest()[:10],
                      {name: int(counts[k]) for k, name in enumerate(data.scheme.names)},
                      ",".join(paths))
    return out
