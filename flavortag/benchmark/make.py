"""``make``: a task's dataset, deterministic, sharded, parallel over processes and resumable.

Layout of ``out_dir`` (docs/BENCHMARK.md)::

    <split>/<class>-<k>-of-<n>.parquet   events (docs/FORMAT.md) + ``event_id`` (int64)
    shifted/<variant>/<class>-...        shifted test sets (task schema 2)
    checksums.json                       per file: sha256, events, tracks, label-purity counts
    SHA256SUMS                           the same sums for ``sha256sum -c``
    generation.yaml                      task, versions, Pythia settings, counts, wall time
    datacard.md / datacard.json          :mod:`flavortag.benchmark.card`

The chunks come from the generator (:func:`flavortag.generate.plan_chunks`,
:func:`flavortag.generate.production.iter_chunks`): a chunk's events depend only
on ``(seed, class, chunk index)`` and the task's settings, so the files are the
same bytes for any number of workers. Each file is written atomically, then
its sha256 is recorded in ``checksums.json`` (rewritten atomically after every
file): a killed make resumes where it stopped. A file already recorded is
verified, never rewritten; a recorded file that is missing is remade and must
come out with its recorded sha256 (remaking verifies the checksums).

Reuse (``reuse=``, ``make --reuse DIR``): a file whose plan (:class:`FileSpec`:
split, class, shard, chunks with every generation setting, variant) is the plan
of a file recorded in another made dataset is hard-linked from there (copied
where a link cannot be made) instead of generated, after its sha256 is checked
against the other dataset's ``checksums.json``; its entry is that record. So
``zpole-robustness-v1`` takes its test, val and train files from a made
``zpole-3class-ild-v1`` and generates only its shifted sets.

``event_id`` is a 63-bit hash (splitmix64) of ``(seed, class, chunk index,
position in the chunk, test variant)``: unique in the task, stable across
versions of the files, and silent about the class. Jet tasks: one id per jet
(position = event in the chunk * n_jets + jet).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from flavortag.benchmark.task import SPLITS, Task
from flavortag.classes import class_index
from flavortag.generate.events import ChunkColumns, ChunkSpec, events_from_chunks, plan_chunks
from flavortag.io.atomic import atomic_output
from flavortag.io.columns import EventColumns

log = logging.getLogger("flavortag.benchmark")

CHECKSUMS = "checksums.json"
SHA256SUMS = "SHA256SUMS"
GENERATION = "generation.yaml"
#: The per-event id column every benchmark file carries.
EVENT_ID = "event_id"
#: Heavy-flavour content of an event from its tracks' ``origin``: none, c, b (the data card's columns).
HEAVY_CONTENT: tuple[str, ...] = ("none", "c", "b")
_HASH_BLOCK = 1 << 22


class ChecksumError(RuntimeError):
    """A benchmark file whose sha256 is not the recorded one."""


@dataclass(frozen=True)
class FileSpec:
    """One file of a task: a block of chunks of one class in one split."""

    split: str
    flavour: str
    shard: int
    n_shards: int
    chunks: tuple[ChunkSpec, ...]
    #: 0 for test / val / train, the test variant's code for ``shifted/<variant>`` (part of the ids)
    variant: int = 0

    @property
    def relpath(self) -> str:
        """Path inside the dataset folder, e.g. ``test/bb-00001-of-00006.parquet``."""
        from flavortag.generate.production import output_path

        return output_path(self.split, self.flavour, "parquet", self.shard, self.n_shards).as_posix()

    @property
    def n_events(self) -> int:
        return sum(spec.n_events for spec in self.chunks)


def plan_files(task: Task) -> list[FileSpec]:
    """Every file of ``task``: split by split (test first, shifted test sets last), class by class, shard by shard."""
    total = sum(task.splits.values())
    files: list[FileSpec] = []
    for split in SPLITS:
        for flavour in task.flavours:
            chunks = plan_chunks(flavour, total, chunk_size=task.chunk_size, seed=task.seed,
                                 sqrt_s_gev=task.sqrt_s_gev, isr=task.isr, pythia_extra=task.pythia,
                                 detector=task.detector, process=task.process, n_jets=task.n_jets)
            first = task.first_chunk(split)
            files += _shards(task, split, flavour, chunks[first: first + task.splits[split] // task.chunk_size])
    for variant in task.test_variants:
        for flavour in task.flavours:
            chunks = plan_chunks(flavour, variant.n_events, chunk_size=task.chunk_size, seed=task.seed,
                                 sqrt_s_gev=task.sqrt_s_gev, isr=task.isr, pythia_extra=variant.pythia,
                                 detector=variant.detector, process=task.process, n_jets=task.n_jets)
            files += _shards(task, variant.split, flavour, chunks, variant.code)
    return files


def _shards(task: Task, split: str, flavour: str, chunks: Sequence[ChunkSpec], variant: int = 0) -> list[FileSpec]:
    per_file = task.file_events // task.chunk_size
    n_shards = task.n_files(split)
    return [FileSpec(split, flavour, shard, n_shards, tuple(chunks[shard * per_file: (shard + 1) * per_file]),
                     variant) for shard in range(n_shards)]


def _splitmix64(x: np.ndarray) -> np.ndarray:
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def event_ids(seed: int, flavour: str, chunk_index: int, n_records: int, variant: int = 0) -> np.ndarray:
    """The ``event_id`` of the records of one chunk (int64 >= 0; see the module doc).

    A jet task's records are the jets, ``n_jets`` per event in event order: the
    id of jet ``j`` of the chunk's event ``k`` hashes position ``k * n_jets + j``.
    ``variant``: 0, or a shifted test set's code (its ids differ from the nominal ones).
    """
    key = ((np.uint64(variant) << np.uint64(59)) | (np.uint64(class_index(flavour) + 1) << np.uint64(56))
           | (np.uint64(chunk_index) << np.uint64(24)) | np.arange(n_records, dtype=np.uint64))
    with np.errstate(over="ignore"):
        mixed = _splitmix64(key ^ _splitmix64(np.full(1, seed, np.uint64)))
    return (mixed >> np.uint64(1)).astype(np.int64)


def heavy_content(events: ak.Array) -> np.ndarray:
    """Per event: 0 no track from a c or b hadron, 1 one from a c hadron (none from b), 2 from a b hadron."""
    origin = ak.max(events["tracks"]["origin"], axis=1, initial=0)
    return np.clip(np.asarray(ak.fill_none(origin, 0), dtype=np.int64), 0, 2)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 4 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def ids_sha256(ids: np.ndarray) -> str:
    """sha256 of a set of event ids (sorted int64, little-endian): the fingerprint of a split."""
    return hashlib.sha256(np.sort(np.asarray(ids, dtype="<i8")).tobytes()).hexdigest()


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    """``checksums.json`` of a dataset folder ({} when there is none)."""
    path = Path(out_dir) / CHECKSUMS
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as err:
        raise ChecksumError(f"{path}: unreadable ({err}); delete it to remake (every file is rehashed)") from None


def _write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    with atomic_output(out_dir / CHECKSUMS) as tmp:
        Path(tmp).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    lines = [f"{entry['sha256']}  {name}\n" for name, entry in sorted(manifest["files"].items())]
    with atomic_output(out_dir / SHA256SUMS) as tmp:
        Path(tmp).write_text("".join(lines))


def task_sha256(task: Task) -> str:
    """sha256 of the task's content (keys and values, not comments): a dataset is made from one task."""
    return hashlib.sha256(json.dumps(task.raw, sort_keys=True).encode()).hexdigest()


@dataclass
class MakeResult:
    """What :func:`make_dataset` did: files made and verified, events made, wall time."""

    out_dir: Path
    made: list[str]
    verified: list[str]
    n_events_made: int
    wall_s: float
    workers: int
    #: files taken from another made dataset (``reuse``), and those datasets' folders
    reused: list[str] = field(default_factory=list)
    reused_from: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReuseSource:
    """A made dataset whose files another task may take: its folder and, by plan, each recorded file."""

    folder: Path
    files: dict[FileSpec, tuple[str, dict[str, Any]]]


def reuse_source(folder: str | Path) -> ReuseSource:
    """The files of the made dataset in ``folder``, keyed by their plan (its task from ``generation.yaml``)."""
    import yaml

    from flavortag.benchmark.task import task_from_record

    out = Path(folder)
    manifest, generation = read_manifest(out), out / GENERATION
    if not manifest or not generation.is_file():
        raise ChecksumError(f"{out}: not a made benchmark dataset (no {CHECKSUMS} or {GENERATION}); "
                            "--reuse takes the folder of one")
    task = task_from_record((yaml.safe_load(generation.read_text()) or {}).get("task"), generation)
    if task_sha256(task) != manifest.get("task_sha256"):
        raise ChecksumError(f"{generation}: the recorded task is not the one {out / CHECKSUMS} was made from")
    recorded = manifest["files"]
    files = {spec: (spec.relpath, recorded[spec.relpath]) for spec in plan_files(task) if spec.relpath in recorded}
    return ReuseSource(out, files)


def _reuse_file(spec: FileSpec, path: Path, sources: Sequence[ReuseSource],
                expected: dict[str, Any] | None) -> dict[str, Any] | None:
    """Link (or copy) the file planned as ``spec`` from a source to ``path``, its sha256 checked; its entry.

    ``expected``: this dataset's record of the file (a missing file being remade), which must agree.
    """
    for source in sources:
        hit = source.files.get(spec)
        if hit is None or not (source.folder / hit[0]).is_file():
            continue
        origin, entry = source.folder / hit[0], hit[1]
        if expected is not None and expected["sha256"] != entry["sha256"]:
            raise ChecksumError(f"{path}: recorded with sha256 {expected['sha256']}, but {origin} has "
                                f"{entry['sha256']}; make without --reuse")
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_name(f".{path.name}.reuse-{os.getpid()}")
        staged.unlink(missing_ok=True)
        try:
            os.link(origin, staged)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(origin, staged)
        got = file_sha256(staged)
        if got != entry["sha256"]:
            staged.unlink()
            raise ChecksumError(f"{origin}: sha256 {got} is not the one recorded in {source.folder / CHECKSUMS} "
                                f"({entry['sha256']}): not reused; repair that dataset or make without --reuse")
        os.replace(staged, path)
        return dict(entry)
    return None


def _file_chunks(spec: FileSpec, results: Iterator[ChunkColumns], stats: dict[str, Any],
                 task: Task) -> Generator[EventColumns, None, None]:
    purity = np.zeros((len(task.classes), len(HEAVY_CONTENT)), np.int64)
    ids: list[np.ndarray] = []
    for chunk_spec in spec.chunks:
        events = events_from_chunks([next(results)])
        chunk_ids = event_ids(task.seed, spec.flavour, chunk_spec.chunk_index, len(events), spec.variant)
        events = ak.with_field(events, chunk_ids, EVENT_ID)
        labels = np.asarray(events["label"])
        np.add.at(purity, (labels, heavy_content(events)), 1)
        stats["n_events"] += len(events)
        stats["n_tracks"] += int(ak.sum(ak.num(events["tracks"], axis=1)))
        ids.append(chunk_ids)
        yield EventColumns.from_awkward(events)
    stats["purity_counts"] = purity.tolist()
    stats["ids"] = np.concatenate(ids) if ids else np.zeros(0, np.int64)


def make_dataset(task: Task, out_dir: str | Path, workers: int | None = None, progress: bool = True,
                 start_method: str = "spawn", reuse: Sequence[str | Path] = ()) -> MakeResult:
    """Make (or resume, or verify) the dataset of ``task`` in ``out_dir``; see the module doc.

    ``reuse``: folders of made datasets whose identically planned files are linked, not generated.
    Two makes of one folder take turns (a lock file, ``.make.lock``): the second verifies.
    """
    from flavortag.io.atomic import locked

    out = Path(out_dir)
    sources = [reuse_source(folder) for folder in reuse]
    out.mkdir(parents=True, exist_ok=True)
    with locked(out / ".make.lock"):
        return _make_locked(task, out, workers, progress, start_method, sources)


def _make_locked(task: Task, out: Path, workers: int | None, progress: bool, start_method: str,
                 sources: Sequence[ReuseSource]) -> MakeResult:
    from tqdm.auto import tqdm

    from flavortag.generate.production import iter_chunks
    from flavortag.io.api import write_columns

    manifest = read_manifest(out)
    if manifest and manifest.get("task_sha256") != task_sha256(task):
        raise ChecksumError(f"{out}: made from another version of the task file than {task.source} "
                            f"(task sha256 {manifest.get('task_sha256')}); make it in a new folder")
    manifest = manifest or {"task": task.name, "task_sha256": task_sha256(task), "files": {}, "splits": {}}
    recorded: dict[str, Any] = manifest["files"]
    plan = plan_files(task)
    pending, verified = [], []
    for spec in plan:
        path = out / spec.relpath
        entry = recorded.get(spec.relpath)
        if entry is not None and path.is_file():
            got = file_sha256(path)
            if got != entry["sha256"]:
                raise ChecksumError(f"{path}: sha256 {got} is not the recorded {entry['sha256']} "
                                    f"({CHECKSUMS}): the file changed since it was made; delete it to remake it")
            verified.append(spec.relpath)
        else:
            pending.append(spec)
    workers = int(workers or os.cpu_count() or 1)
    start = time.perf_counter()
    reused: list[str] = []
    for spec in list(pending) if sources else []:
        entry = _reuse_file(spec, out / spec.relpath, sources, recorded.get(spec.relpath))
        if entry is None:
            continue
        recorded[spec.relpath] = entry
        _write_manifest(out, manifest)
        reused.append(spec.relpath)
        pending.remove(spec)
    chunks = [c for spec in pending for c in spec.chunks]
    made: list[str] = []
    if chunks:
        results = iter_chunks(chunks, workers, start_method)
        try:
            with tqdm(total=sum(c.n_events for c in chunks), unit="ev", desc=f"make {task.name}",
                      disable=not progress) as bar:
                for spec in pending:
                    path = out / spec.relpath
                    path.parent.mkdir(parents=True, exist_ok=True)
                    stats: dict[str, Any] = {"n_events": 0, "n_tracks": 0}
                    write_columns(_file_chunks(spec, results, stats, task), path, "parquet")
                    bar.update(stats["n_events"])
                    entry = {"sha256": file_sha256(path), "n_events": stats["n_events"],
                             "n_tracks": stats["n_tracks"], "purity_counts": stats["purity_counts"],
                             "ids_sha256": ids_sha256(stats["ids"])}
                    expected = recorded.get(spec.relpath)
                    if expected is not None and expected["sha256"] != entry["sha256"]:
                        raise ChecksumError(
                            f"{path}: remade with sha256 {entry['sha256']}, recorded {expected['sha256']}: "
                            "not reproduced (another Pythia, numpy or pyarrow version?); see generation.yaml")
                    recorded[spec.relpath] = entry
                    _write_manifest(out, manifest)
                    made.append(spec.relpath)
        finally:
            results.close()  # type: ignore[attr-defined]
    manifest["splits"] = _split_fingerprints(out, plan, recorded)
    _write_manifest(out, manifest)
    wall_s = time.perf_counter() - start
    return MakeResult(out, made, verified, sum(s.n_events for s in pending), wall_s, workers, reused,
                      [str(s.folder) for s in sources])


def _split_fingerprints(out: Path, plan: Sequence[FileSpec], recorded: dict[str, Any]) -> dict[str, Any]:
    """Per split: events, files and the sha256 of its sorted event ids (what ``score`` checks)."""
    import pyarrow.parquet as pq

    splits: dict[str, Any] = {}
    for split in sorted({spec.split for spec in plan}, key=[s.split for s in plan].index):
        names = [spec.relpath for spec in plan if spec.split == split]
        ids = np.concatenate([pq.read_table(out / name, columns=[EVENT_ID])[EVENT_ID].to_numpy()
                              for name in names])
        if len(np.unique(ids)) != len(ids):
            raise ChecksumError(f"{out}: split {split} has repeated event ids")
        splits[split] = {"files": names, "n_events": int(len(ids)), "ids_sha256": ids_sha256(ids)}
    return splits


def write_root_copies(out_dir: str | Path, step_size: int = 50_000) -> list[Path]:
    """ROOT copies of a made dataset's Parquet files, under ``root/`` (same names, ``.root``).

    Derived files: not in ``checksums.json`` (ROOT files are not byte-reproducible).
    """
    from flavortag.io import iter_events
    from flavortag.io.api import write_columns

    out = Path(out_dir)
    written = []
    for name in sorted(read_manifest(out)["files"]):
        target = (out / "root" / name).with_suffix(".root")
        target.parent.mkdir(parents=True, exist_ok=True)
        chunks = (EventColumns.from_awkward(c) for c in iter_events(str(out / name), step_size=step_size))
        write_columns(chunks, target, "root")
        written.append(target)
    return written
