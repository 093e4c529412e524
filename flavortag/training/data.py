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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flavortag.augment import augment_events
from flavortag.batching import (
    EventTensors,
    build_event_tensors,
    concat_event_tensors,
)
from flavortag.calibration_function import fit_training_resolution
from flavortag.classes import EVENT_SCHEME, N_LABELS, ClassScheme
from flavortag.dataset import load_sample, load_split_sample, resolve_paths, to_scheme
from flavortag.detector import DetectorModel
from flavortag.io.errors import ReadReport

if TYPE_CHECKING:
    from flavortag.training.settings import TrainJob

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
    #: applied to each streamed chunk (a jet scheme: labels -> its output indices; None for events)
    records: Callable[[Any], Any] | None = None


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
    #: per split: (digest, events per class, source) of the events it was made of (:func:`sample_records`)
    records: dict[str, tuple[str, dict[str, int], str]] = field(default_factory=dict)

    def n_events(self) -> dict[str, int]:
        """Number of events per split (streamed training events included)."""
        sizes = {name: len(t.labels) for name, t in self.tensors.items()}
        if self.stream is not None:
            sizes = {"train": self.stream.n_events, **sizes}
        return sizes


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


def prepare_data(job: TrainJob, keep_events: bool = False) -> PreparedData:
    """Read the sample, split it (stratified, seeded) and build feature tensors per split.

    With ``data.streaming`` the training events stay on disk (see
    :func:`prepare_streaming_data`).
    """
    data = job.data
    if data.streaming:
        return prepare_streaming_data(job, keep_events)
    report = ReadReport()
    sample = load_split_sample(data, report=report)
    events, indices, scheme = sample.events, sample.indices, data.scheme
    detector = job.detector
    track_names, event_names = list(job.track_features), list(job.event_features)
    labels = np.asarray(events["label"])
    check_classes(np.bincount(labels[indices["train"]], minlength=len(scheme)), sample.paths,
                  "training events", scheme)
    tensors: dict[str, EventTensors] = {}
    training_resolution = fit_training_resolution(events[indices["train"]], detector)
    augment = job.augment
    # the test split stays as simulated: it measures the nominal performance; so does the validation
    # split when a fully re-smeared copy of it is scored beside it (augment.shifted_validation)
    smeared = ("train",) if augment.shifted_validation else ("train", "val")
    splits = list(indices.items())
    if augment.shifted_validation and len(indices.get("val", [])):
        splits.append(("val_shifted", indices["val"]))
    for k, (name, idx) in enumerate(splits):
        if len(idx) == 0:
            continue
        split_events = events[idx]
        if augment.enabled and name in smeared:
            split_events = augment_events(split_events, augment, detector, seed_offset=k)
            log.info("%s split re-smeared: resolution scale in [%.2f, %.2f] for %.0f%% of the events",
                     name, augment.scale_min, augment.scale_max, 100 * augment.fraction)
        elif name == "val_shifted":
            split_events = augment_events(split_events, replace(augment, fraction=1.0), detector, seed_offset=k)
            log.info("val_shifted: the validation split with every event re-smeared (resolution scale in "
                     "[%.2f, %.2f], tails, bias, losses, fakes as augment)", augment.scale_min, augment.scale_max)
        tensors[name] = build_event_tensors(
            split_events,
            track_feature_names=track_names,
            event_feature_names=event_names,
            max_tracks=data.max_tracks,
            detector=detector,
            sort_by=data.sort_by,
        )
    for name, t in tensors.items():
        log.info("%s split: %d events, %d tracks truncated at max_tracks=%d",
                 name, len(t.labels), t.n_truncated, data.max_tracks)
    prepared = PreparedData(tensors, indices, track_names, event_names, detector,
                            events if keep_events else None, read_report=report, scheme=scheme,
                            training_resolution=training_resolution)
    prepared.records = sample_records(prepared, {split: sample.paths for split in tensors if split in indices})
    return prepared


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


def prepare_streaming_data(job: TrainJob, keep_events: bool = False) -> PreparedData:
    """Streaming set-up: count the training files, read the normalisation events, load val / test."""
    import awkward as ak

    from flavortag.io import count_events
    from flavortag.io.api import parse_step_size

    data = job.data
    if job.augment.enabled:
        raise ValueError("augment (resolution augmentation) works on in-memory samples only: "
                         "set data.streaming=false or augment=none")
    if not data.val_paths:
        raise ValueError("data.streaming=true needs data.val_paths: the validation events come "
                         "from their own files (data.split is not used when streaming)")
    if data.max_events_per_class is not None:
        log.warning("data.max_events_per_class is ignored when streaming")
    detector = job.detector
    track_names, event_names = list(job.track_features), list(job.event_features)
    io_options = data.reader_options()
    step_size = data.step_size
    parse_step_size(step_size)  # a bad value fails here, not in the first epoch
    max_tracks = data.max_tracks

    def tensors_of(events: Any) -> EventTensors:
        return build_event_tensors(events, track_feature_names=track_names,
                                   event_feature_names=event_names, max_tracks=max_tracks,
                                   detector=detector, sort_by=data.sort_by)

    train_paths = [str(p) for p in data.files()]
    t0 = time.perf_counter()
    report = ReadReport()
    scheme = data.scheme
    records = None
    if scheme.is_event_scheme:
        n_train, class_counts = count_events(train_paths, **io_options, report=report)
    else:  # jets: every label code counted, then the scheme's classes (s counts as light without s)
        n_all, code_counts = count_events(train_paths, **io_options, report=report, n_codes=N_LABELS)
        index = scheme.indices_of(np.arange(N_LABELS))
        class_counts = np.bincount(index[index >= 0], weights=code_counts[index >= 0],
                                   minlength=len(scheme)).astype(np.int64)
        n_train = n_all - int(code_counts[index < 0].sum())
        records = partial(to_scheme, scheme=scheme)
    if n_train == 0:
        raise ValueError(f"no training events in {train_paths}")
    check_classes(class_counts, train_paths, "training files", scheme)
    log.info("streaming %d training events from %d file(s) (%s; counted in %.1f s)", n_train,
             len(train_paths), ", ".join(f"class {c}: {n}" for c, n in enumerate(class_counts)),
             time.perf_counter() - t0)
    first = _read_first_events(train_paths, data.normalisation_events, io_options)
    first = [records(part) for part in first] if records is not None else first
    normalisation = concat_event_tensors([tensors_of(part) for part in first])
    training_resolution = fit_training_resolution(ak.concatenate(first), detector) if first else None
    log.info("input normalisation from %d events (the first of each training file)", len(normalisation))

    split_events: dict[str, Any] = {}
    for name, paths in (("val", data.val_paths), ("test", data.test_paths)):
        if paths:
            split_events[name] = load_sample(data.with_paths(paths), report=report)
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
    stream = StreamingSource(train_paths, n_train, class_counts, step_size, data.shuffle_buffer,
                             io_options, normalisation, records)
    prepared = PreparedData(tensors, indices, track_names, event_names, detector, events, stream,
                            read_report=report, scheme=scheme, training_resolution=training_resolution)
    files = {"train": train_paths, **{name: [str(p) for p in resolve_paths(paths)]
                                      for name, paths in (("val", data.val_paths), ("test", data.test_paths))
                                      if paths}}
    prepared.records = sample_records(prepared, files)
    return prepared


#: MLflow dataset-input context of each split.
SPLIT_CONTEXT: dict[str, str] = {"train": "training", "val": "validation", "test": "testing"}


def _file_identity(path: str | Path) -> bytes:
    """Name, size and the first 64 KiB of a file: enough to tell samples apart, cheap for big files."""
    p = Path(path)
    with p.open("rb") as fh:
        head = fh.read(65536)
    return f"{p.name}:{p.stat().st_size}:".encode() + head


def sample_records(data: PreparedData, files: dict[str, list[str]]) -> dict[str, tuple[str, dict[str, int], str]]:
    """Per split: ``(digest, events per class, source)`` describing the events it was made of.

    ``files``: the files each split was read from. The digest (10 hex digits)
    hashes the files (name, size, first 64 KiB) and the split's event
    positions, so the same files split the same way give the same digest;
    ``source`` lists the files.
    """
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
