"""The entry points: :func:`read_events`, :func:`iter_events`, :func:`write_events`.

Formats come from the file name (``.txt``, ``.dat``, ``.txt.gz``, ``.gz`` ->
text; ``.root``; ``.parquet``, ``.pq``) unless ``format=`` says otherwise; a
``.root`` file whose ``events`` tree holds EDM4hep collections is read as
``"edm4hep"`` (:mod:`flavortag.io.edm4hep`: records built from the
reconstructed particles, tracks and MC record; ``level="jet"`` reads its jets). The
class of a text file comes from ``label`` (a name such as ``"bb"``, an index,
or ``"unknown"`` for -1) or else from the file name through ``label_rules``
(regex -> class, see :func:`flavortag.classes.label_from_path`). ROOT and
Parquet files keep their stored ``label``; ``label`` / the file name only
serve those that have none.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from flavortag.classes import CLASS_NAMES, LABEL_NAMES, class_index, label_from_path
from flavortag.io.atomic import atomic_output
from flavortag.io.columns import UNKNOWN_LABEL, EventColumns, describe_signature
from flavortag.io.errors import OnError, ReadReport, check_on_error, log, log_file_report
from flavortag.io.parquet import iter_parquet_columns, write_parquet_chunks
from flavortag.io.root import iter_root_columns, write_root_chunks
from flavortag.io.shard_set import check_shard_files
from flavortag.io.text import DEFAULT_CHUNK_BYTES, iter_text_columns
from flavortag.io.text_write import write_text_chunks

PathsLike = str | os.PathLike | Sequence[str | os.PathLike]
FORMATS: tuple[str, ...] = ("text", "root", "parquet", "edm4hep")
#: The formats a file name can say (and flavortag writes); EDM4hep is told from a ROOT file's contents.
NAMED_FORMATS: tuple[str, ...] = ("text", "root", "parquet")
_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".txt.gz", "text"), (".dat.gz", "text"), (".txt", "text"), (".dat", "text"), (".gz", "text"),
    (".root", "root"), (".parquet", "parquet"), (".pq", "parquet"),
)
#: Suffixes of event files, longest first (the one list every module uses).
EVENT_SUFFIXES: tuple[str, ...] = tuple(suffix for suffix, _ in _SUFFIXES)
#: Default chunk of :func:`iter_events`: bytes of text, uproot's memory size, Parquet bytes.
DEFAULT_STEP_SIZE: str = "16 MB"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([kMGT]i?)?B\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


class UnknownFormatError(ValueError):
    """A file format that is not given and cannot be told from the name, or is not one of ``FORMATS``.

    ``path`` is the file, ``option`` the argument that sets its format
    (``format`` or ``output_format``): a command line names its own option instead.
    """

    def __init__(self, path: str | os.PathLike | None, option: str, given: str | None = None) -> None:
        self.path, self.option, self.given = path, option, given
        super().__init__(self.describe(f"{option}="))

    def describe(self, option: str) -> str:
        """The message, the fix spelt with ``option``: ``"format="`` (Python) or ``"--from "`` (a command)."""
        python = option.endswith("=")
        names = [repr(f) if python else f for f in NAMED_FORMATS]
        choices = f"{', '.join(names[:-1])} or {names[-1]}"
        if self.given is not None:
            return f"{option.strip(' =')} must be one of {', '.join(FORMATS)}, not {self.given!r}"
        known = ", ".join(s for s, _ in _SUFFIXES)
        return (f"{self.path}: cannot tell the format from the file name (known suffixes: {known}); "
                f"give {option}{choices}")


def detect_format(path: str | os.PathLike, format: str | None = None, option: str = "format") -> str:
    """``"text"``, ``"root"`` or ``"parquet"``: ``format`` if given, else from the file name.

    ``UnknownFormatError`` (a ``ValueError``) otherwise; ``option`` names the
    caller's argument in its message. :func:`input_format` also tells EDM4hep
    files from the contents.
    """
    if format is not None:
        if format not in FORMATS:
            raise UnknownFormatError(path, option, given=format)
        return format
    name = Path(path).name.lower()
    for suffix, fmt in _SUFFIXES:
        if name.endswith(suffix):
            return fmt
    raise UnknownFormatError(path, option)


def input_format(path: str | os.PathLike, format: str | None = None, option: str = "format") -> str:
    """The format of a file to read: :func:`detect_format`, and ``"edm4hep"`` for a ROOT file of EDM4hep collections."""
    fmt = detect_format(path, format, option)
    if format is None and fmt == "root" and os.path.isfile(path):
        from flavortag.io.edm4hep import is_edm4hep

        return "edm4hep" if is_edm4hep(path) else fmt
    return fmt


def expand_paths(paths: PathsLike, recipe: str | None = None) -> list[Path]:
    """The files named by ``paths`` (one or a list; glob patterns allowed), in order.

    Raises ``FileNotFoundError`` listing every name that matches nothing (with
    ``recipe``, the command that makes a missing sample, where given),
    ``IsADirectoryError`` for a directory, and
    :class:`~flavortag.io.shard_set.IncompleteShardSetError` for shards of a set
    that ``flavortag shard`` did not finish (:func:`~flavortag.io.shard_set.check_shard_files`).
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise ValueError("no input files given")
    found: list[Path] = []
    missing: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            raise IsADirectoryError(
                f"{item}: is a directory, not an event file (name the files in it, e.g. {path / '*.parquet'})"
            )
        if path.is_file():
            found.append(path)
        elif isinstance(item, str) and any(c in item for c in "*?[") and glob.glob(item):
            found.extend(Path(p) for p in sorted(glob.glob(item)))
        else:
            missing.append(str(item))
    if missing:
        raise FileNotFoundError(_missing_message(missing, recipe))
    check_shard_files(found)
    return found


def _missing_message(missing: Sequence[str], recipe: str | None = None) -> str:
    """What is missing and how to make it: ``recipe`` (the data config's own command), else for a
    generated sample's directory a plain ``generate`` line."""
    parents = {Path(m).parent for m in missing}
    stems = {Path(m).name.split(".", 1)[0] for m in missing}
    out = re.search(r"(?:^|\s)out=(\S+)", recipe or "")
    if out and len(parents) == 1 and _same_folder(next(iter(parents)), out.group(1)):
        return f"no sample at {parents.pop()}: make it with `{recipe}`"
    if len(parents) == 1 and stems <= set(CLASS_NAMES):
        sample = parents.pop()
        if not sample.is_dir() or not any(sample.glob(f"{c}.*") for c in CLASS_NAMES):
            size = re.search(r"_(\d+)k$", sample.name)
            n_events = f" n_events={int(size.group(1)) * 1000}" if size else ""
            return (f"no sample at {sample}: make it with "
                    f"`flavortag generate{n_events} out={sample}`")
    if len(missing) == 1:
        return f"no such file: {missing[0]} (working directory {Path.cwd()})"
    return f"no such files: {', '.join(missing)} (working directory {Path.cwd()})"


def _same_folder(folder: Path, out: str) -> bool:
    """``folder`` is the recipe's ``out=`` (relative names compared by their trailing parts)."""
    parts = Path(out).parts
    return folder.parts[-len(parts):] == parts


def resolve_label(
    label: int | str | None, path: str | os.PathLike, label_rules: Mapping[str, str] | None = None
) -> int:
    """Class index for a file: ``label`` (name, index or ``"unknown"`` -> -1) or from the file name."""
    if label is None:
        return label_from_path(path, label_rules)
    if label == UNKNOWN_LABEL or (isinstance(label, str) and label.strip().lower() == "unknown"):
        return UNKNOWN_LABEL
    return class_index(label)


def parse_step_size(step_size: int | str) -> tuple[int | None, int | None]:
    """``(events, None)`` for an int, ``(None, bytes)`` for a size such as ``"16 MB"`` / ``"1 GiB"``."""
    if isinstance(step_size, (int, np.integer)) and not isinstance(step_size, bool):
        if step_size < 1:
            raise ValueError(f"step_size must be >= 1 event, not {step_size}")
        return int(step_size), None
    match = _SIZE.match(str(step_size)) if isinstance(step_size, str) else None
    if match is None:
        raise ValueError(
            f"step_size must be a number of events (int) or a size like '16 MB', not {step_size!r}"
        )
    n_bytes = int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])
    if n_bytes < 1:
        raise ValueError(f"step_size must be at least 1 byte, not {step_size!r}")
    return None, n_bytes


@dataclass
class _Source:
    path: Path
    format: str
    label: int | None  # text: resolved up front, so a bad name fails before any reading; edm4hep: given or None
    label_fallback: Callable[[], int]
    edm4hep: Any = None  # EDM4hepOptions of an EDM4hep file


def plan_sources(
    paths: PathsLike,
    label: int | str | None,
    label_rules: Mapping[str, str] | None,
    format: str | None,
    level: str | None = None,
    edm4hep: Any = None,
) -> list[_Source]:
    """Files, formats and (for text) classes, checked before anything is read.

    ``level`` (``"event"`` / ``"jet"``) and ``edm4hep`` (:class:`~flavortag.io.edm4hep.EDM4hepOptions`
    or a mapping of its fields) serve EDM4hep files only: the other formats
    hold their records (events or jets) as written.
    """
    sources = []
    options = None
    for path in expand_paths(paths):
        fmt = input_format(path, format)
        given: int | None
        if fmt == "text":
            given = resolve_label(label, path, label_rules)
        elif fmt == "edm4hep":
            from flavortag.io.edm4hep import EDM4hepOptions

            options = options or EDM4hepOptions.of(edm4hep, level)
            given = None if label is None else resolve_label(label, path, label_rules)
        else:
            given = None
        sources.append(_Source(path, fmt, given, partial(resolve_label, label, path, label_rules), options))
    return sources


def iter_source_columns(
    sources: Sequence[_Source],
    on_error: OnError,
    tree: str,
    report: ReadReport,
    step_size: int | str | None,
    progress: Callable[[int], object] | None = None,
) -> Iterator[EventColumns]:
    """Yield the event chunks of all files in order (some may be empty).

    ``step_size`` None reads each file at once (text is still read and
    parsed piece by piece, then joined). ``progress`` is called with the number of input bytes consumed
    since its previous call. Raises ``ValueError`` if files hold different fields.
    """
    events_step, bytes_step = (None, None) if step_size is None else parse_step_size(step_size)
    first: tuple[tuple, Path] | None = None
    for source in sources:
        file_report = ReadReport(n_files=1)
        shown = str(source.path)
        if source.format == "text":
            # A whole-file read gathers all pieces and joins them once.
            block = bytes_step or (DEFAULT_CHUNK_BYTES if step_size is not None else 1 << 62)
            assert source.label is not None  # resolved by plan_sources
            chunks = iter_text_columns(shown, source.label, on_error, file_report, block)
        elif source.format == "root":
            step = events_step if events_step else (f"{bytes_step} B" if bytes_step else None)
            chunks = iter_root_columns(shown, tree, source.label_fallback, on_error, file_report, step)
        elif source.format == "edm4hep":
            from flavortag.io.edm4hep import iter_edm4hep_columns

            step = events_step if events_step else (f"{bytes_step} B" if bytes_step else None)
            chunks = iter_edm4hep_columns(shown, tree, source.label, on_error, file_report, step, source.edm4hep)
        else:
            chunks = iter_parquet_columns(
                shown, source.label_fallback, on_error, file_report, events_step, bytes_step
            )
        done = 0
        try:
            for cols, position in chunks:
                if first is None:
                    first = (cols.signature, source.path)
                elif cols.signature != first[0]:
                    raise ValueError(
                        f"{source.path} holds {describe_signature(cols.signature)} but {first[1]} holds "
                        f"{describe_signature(first[0])}: files read together must hold the same fields"
                    )
                file_report.n_events += len(cols)
                if progress is not None:
                    progress(position - done)
                done = position
                yield cols
            if progress is not None:
                progress(os.path.getsize(source.path) - done)
        finally:
            log_file_report(shown, file_report)
            report.merge(file_report)


def rechunk(chunks: Iterable[EventColumns], n_events: int) -> Iterator[EventColumns]:
    """Regroup chunks into chunks of exactly ``n_events`` events (the last one may be shorter)."""
    pending: list[EventColumns] = []
    n_pending = 0
    for cols in chunks:
        if not len(cols):
            continue
        pending.append(cols)
        n_pending += len(cols)
        if n_pending >= n_events:
            merged = EventColumns.concat(pending)
            stop = (n_pending // n_events) * n_events
            for start in range(0, stop, n_events):
                yield merged.slice(start, start + n_events)
            pending = [merged.slice(stop, n_pending)] if stop < n_pending else []
            n_pending -= stop
    if n_pending:
        yield EventColumns.concat(pending)


def read_events(
    paths: PathsLike,
    label: int | str | None = None,
    *,
    label_rules: Mapping[str, str] | None = None,
    on_error: OnError = "raise",
    format: str | None = None,
    tree: str = "events",
    report: ReadReport | None = None,
    level: str | None = None,
    edm4hep: Any = None,
) -> ak.Array:
    """Read all events of one or more files into one awkward Array (the layout: docs/FORMAT.md).

    ``paths``: one or more text (``.txt``, ``.dat``, ``.gz``), ROOT or Parquet
    files; glob patterns allowed. Returns one record per event:

    * ``axis``: 3 * float32, the unit thrust axis;
    * ``tracks``: var * record, one per charged track: ``E`` (GeV, pion mass),
      ``px, py, pz`` (GeV), ``x, y, z`` (mm, the reference point: production
      vertex or point of closest approach to the beam axis), all float32; files
      made by ``flavortag generate`` (Parquet, ROOT) add the truth fields
      ``charge`` (int8, e), ``vx, vy, vz`` (float32, mm: true production
      vertex), ``pdg`` (int32 PDG id, 0 for a fake track) and ``origin`` (int8:
      2 b-hadron decay chain, 1 c hadron, 0 prompt/light, -1 fake track);
    * ``label``: int32 class, 0 uds, 1 cc, 2 bb, -1 unknown;
    * any extra per-event fields of the file (e.g. ``prob_bb``, ``D_b``).

    ``label`` / ``label_rules``: the class of files that do not store it (text),
    by default from the file name (``bb.txt`` -> bb). ``on_error="raise"`` stops at the first
    bad event with :class:`~flavortag.io.EventFormatError` (file, line, what);
    ``"skip"`` drops broken events, logs a warning per file and fills in
    ``report`` (a :class:`~flavortag.io.ReadReport`) if one is passed.

    EDM4hep files (``format="edm4hep"`` or detected): ``level="jet"`` gives one
    record per jet of the file's ``Jet`` collection; ``edm4hep``, an
    :class:`~flavortag.io.edm4hep.EDM4hepOptions` or a mapping of its fields
    (``bz_tesla``, ``neutrals_in_axis``, ``neutrals``); ``label`` only serves
    files without MC record (else -1). Both are ignored for the other formats.
    """
    on_error = check_on_error(on_error)
    sources = plan_sources(paths, label, label_rules, format, level, edm4hep)
    report = ReadReport() if report is None else report
    parts = list(iter_source_columns(sources, on_error, tree, report, None))
    return EventColumns.concat([p for p in parts if len(p)] or parts[:1]).to_awkward()


def iter_events(
    paths: PathsLike,
    step_size: int | str = DEFAULT_STEP_SIZE,
    *,
    label: int | str | None = None,
    label_rules: Mapping[str, str] | None = None,
    on_error: OnError = "raise",
    format: str | None = None,
    tree: str = "events",
    report: ReadReport | None = None,
    level: str | None = None,
    edm4hep: Any = None,
) -> Iterator[ak.Array]:
    """Yield the events of one or more files chunk by chunk, with bounded memory.

    ``step_size``: an int gives chunks of exactly that many events (the last
    one shorter; chunks may span files); a size such as ``"16 MB"`` reads
    about that much at a time (text bytes per block, uproot's memory size,
    Parquet uncompressed bytes; whole row groups), one file at a time. Other
    arguments as :func:`read_events`; ``report`` fills in as the chunks go by.
    Arguments and files are checked when this is called, not at the first chunk.
    """
    on_error = check_on_error(on_error)
    events_step, _ = parse_step_size(step_size)
    sources = plan_sources(paths, label, label_rules, format, level, edm4hep)
    report = ReadReport() if report is None else report
    chunks = iter_source_columns(sources, on_error, tree, report, step_size)
    if events_step is not None:
        chunks = rechunk(chunks, events_step)
    return (cols.to_awkward() for cols in chunks if len(cols))


def write_columns(chunks: Iterable[EventColumns], path: str | os.PathLike, fmt: str, tree: str = "events") -> None:
    """Write event chunks to ``path`` atomically (temporary name in the same directory, then rename)."""
    if fmt == "edm4hep":
        raise ValueError(f"{path}: flavortag reads EDM4hep but does not write it; write text, root or parquet")
    with atomic_output(path) as tmp:
        if fmt == "text":
            compress = str(path).lower().endswith(".gz")
            write_text_chunks(_checked_for_text(chunks, Path(path)), tmp, compress=compress)
        elif fmt == "root":
            write_root_chunks(chunks, tmp, tree)
        else:
            write_parquet_chunks(chunks, tmp)


def write_events(
    events: ak.Array, path: str | os.PathLike, format: str | None = None, tree: str = "events"
) -> Path:
    """Write an event Array to ``path`` (format from the suffix unless given); returns the path.

    The write is atomic: a temporary file in the same directory, renamed at
    the end. Text holds one class per file and no extra fields (a warning
    says which fields are left out); ``.gz`` text is gzip-compressed.
    """
    fmt = detect_format(path, format)
    write_columns([EventColumns.from_awkward(events)], path, fmt, tree)
    return Path(path)


def _checked_for_text(chunks: Iterable[EventColumns], path: Path) -> Iterator[EventColumns]:
    """Pass chunks on, refusing mixed classes and warning (once) about fields text cannot hold."""
    try:
        named = label_from_path(path)
    except ValueError:
        named = None
    seen: int | None = None
    warned = False
    for cols in chunks:
        labels = np.unique(cols.label)
        if len(labels) > 1 or (len(labels) and seen is not None and labels[0] != seen):
            found = sorted({*labels.tolist(), *([] if seen is None else [seen])})
            raise ValueError(
                f"{path}: a text file holds one class, but the events have labels {found}; "
                "write one file per class"
            )
        if len(labels):
            seen = int(labels[0])
            if named is not None and seen not in (named, UNKNOWN_LABEL):
                raise ValueError(
                    f"{path}: the file name says {LABEL_NAMES[named]} but the events are "
                    f"labelled {LABEL_NAMES[seen] if 0 <= seen < len(LABEL_NAMES) else seen}"
                )
        dropped = [f"tracks.{k}" for k in list(cols.tracks)[7:]] + list(cols.extras)
        dropped += ["neutrals"] if cols.neutral_offsets is not None else []
        if dropped and not warned:
            log.warning("%s: the text format has no place for %s; they are not written", path, dropped)
            warned = True
        yield cols
