"""EDM4hep (podio ROOT) files in, flavortag's event (or jet) records out: pure uproot + numpy.

One track per charged reconstructed particle that has a track (docs/FORMAT.md,
"EDM4hep"):

* ``E, px, py, pz``: the reconstructed particle's energy and momentum (GeV);
* ``x, y, z``: the point of closest approach (PCA) to the track state's
  reference point ``R`` (LCIO / EDM4hep convention, mm)::

      x = R_x - D0 sin(phi),   y = R_y + D0 cos(phi),   z = R_z + Z0

  from the track state at the IP (``location == AtIP``; else the track's first
  state: the Delphes productions write one state, ``location = AtOther``, at
  the IP). flavortag's ``d0 = (x py - y px) / pT`` is then ``-D0``;
* ``charge`` (int8, e), ``omega`` (float32, 1/mm, sign = charge sign for Bz > 0),
  ``sigma_d0``, ``sigma_z0`` (float32, mm: square roots of the covariance's
  (D0, D0) and (Z0, Z0) elements, numbers 0 and 9 of both the 15- and the
  21-element lower triangle), ``pid_pdg`` (int32, the particle's PDG
  hypothesis), ``dndx`` (float32, where the file has a RecDqdx collection;
  NaN for a track without one), and with ``track_truth`` (an MC record and
  its association needed) ``pdg`` (int32, the matched MC particle, 0 none) and
  ``origin`` (int8, as in generated files; -1 for a track without MC match).

Per event: ``axis`` = the thrust axis of the tracks (:func:`flavortag.generate.thrust.thrust_axis`,
as for generated samples; the neutral particles too with ``neutrals_in_axis``);
``label`` from the MC record (:mod:`flavortag.io.edm4hep_truth`), else the
``label`` given, else -1; ``bz_tesla`` (float32: ``magFieldBz`` of the file,
else ``bz_tesla=``, else NaN with a warning). ``level="jet"`` gives one record
per jet of the file's ``Jet`` collection instead (its charged constituents as
tracks, axis = jet direction, label from the constituents' MC ancestors).

Bad input (a relation index out of range, a track without track state,
non-finite track parameters, a negative variance) is an
:class:`~flavortag.io.EventFormatError` naming file, entry and collection, or
with ``on_error="skip"`` a dropped event counted in the :class:`~flavortag.io.ReadReport`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from flavortag.io.checks import screen_columns
from flavortag.io.columns import UNKNOWN_LABEL, EventColumns
from flavortag.io.edm4hep_layout import Layout, detect_layout, is_edm4hep_tree
from flavortag.io.edm4hep_relations import Chunk, Problems, resolve_relation
from flavortag.io.edm4hep_tracks import Particles, particles, track_fields
from flavortag.io.edm4hep_truth import TruthReader
from flavortag.io.errors import EventFormatError, OnError, ReadReport, log
from flavortag.io.root import _open_tree, truncation_message
from flavortag.ragged import event_index, offsets_from_counts

LEVELS: tuple[str, ...] = ("event", "jet")
#: Entries per chunk of a whole-file read (at least; whole baskets where the branches' baskets share
#: boundaries): reading the next chunk overlaps the work on this one.
PIPELINE_STEP_ENTRIES: int = 10_000


@dataclass(frozen=True)
class EDM4hepOptions:
    """How EDM4hep files are read (``data.edm4hep`` in the configs).

    ``level``: ``"event"`` (one record per event) or ``"jet"`` (one per jet of
    the ``Jet`` collection); ``bz_tesla``: the field when the file has no
    ``magFieldBz``; ``neutrals_in_axis``: thrust axis of tracks and neutral
    particles (photons, neutral hadrons) instead of tracks alone;
    ``neutrals``: keep the record's particles that are not tracks (per-record
    sums ``n_neutrals``, ``neutral_E/px/py/pz``; :func:`read_edm4hep` also
    gives them one by one as the field ``neutrals``); ``track_truth``: the
    per-track truth fields ``pdg`` and ``origin`` (the reco-MC links and the
    MC ancestry of the whole record, which an event-level read otherwise skips).
    """

    level: str = "event"
    bz_tesla: float | None = None
    neutrals_in_axis: bool = False
    neutrals: bool = False
    track_truth: bool = False

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level must be event or jet, not {self.level!r}")

    @classmethod
    def of(cls, value: EDM4hepOptions | dict[str, Any] | None, level: str | None = None) -> EDM4hepOptions:
        """Options from a mapping (config node) or None; ``level`` overrides the mapping's."""
        options = value if isinstance(value, EDM4hepOptions) else cls(**dict(value or {}))
        if level is not None and level != options.level:
            options = dataclasses.replace(options, level=level)
        return options


def is_edm4hep(path: str | os.PathLike, tree: str = "events") -> bool:
    """True when ``path`` is a ROOT file whose ``tree`` holds EDM4hep collections (or has ``podio_metadata``)."""
    import uproot

    try:
        with uproot.open(path) as file:
            if "podio_metadata" in file or any(name.startswith("edm4hep::") for name in file.file.streamers):
                return True  # the streamers are quick to read; the tree's branch list is not
            return tree in file and is_edm4hep_tree(file[tree])  # a copy written by uproot has no podio types
    except Exception:  # not ROOT, truncated, ...: the ROOT reader says what is wrong
        return False


def leaves_to_read(layout: Layout, options: EDM4hepOptions) -> list[str]:
    """Every leaf the reader needs (and the benchmark reads bare)."""
    P, T = layout.particles, layout.tracks
    leaves = [layout.leaf(P, m) for m in ("energy", "momentum.x", "momentum.y", "momentum.z", "charge",
                                           layout.pdg_member, "tracks_begin", "tracks_end")]
    leaves += [f"{layout.relation(P, 'tracks')}.{m}" for m in ("index", "collectionID")]
    leaves += [layout.leaf(T, m) for m in ("trackStates_begin", "trackStates_end")]
    leaves += [layout.state(m) for m in ("location", "D0", "phi", "omega", "Z0", "tanLambda", "referencePoint.x",
                                         "referencePoint.y", "referencePoint.z", layout.cov_member)]
    if layout.bz:
        leaves.append(layout.bz)
    if layout.dndx:
        leaves += [layout.leaf(layout.dndx, "dQdx.value")]
        leaves += [f"_{layout.dndx}_track.{m}" for m in ("index", "collectionID")]
    if options.level == "jet":
        if layout.jets is None:
            raise KeyError("jets")
        J = layout.jets
        leaves += [layout.leaf(J, m) for m in ("energy", "momentum.x", "momentum.y", "momentum.z", "mass",
                                               "particles_begin", "particles_end")]
        leaves += [f"{layout.relation(J, 'particles')}.{m}" for m in ("index", "collectionID")]
    leaves += TruthReader.leaves(layout, links=options.level == "jet" or options.track_truth)
    return list(dict.fromkeys(leaves))


def _iter_chunks(
    path: str | Path,
    tree_name: str,
    label: int | None,
    on_error: OnError,
    report: ReadReport,
    step_size: int | str | None,
    options: EDM4hepOptions | None,
) -> Iterator[tuple[tuple[EventColumns, EventColumns | None], int]]:
    """``((records, their neutrals), bytes consumed)`` chunk by chunk (neutrals as the tracks of a twin,
    with ``options.neutrals`` only)."""
    shown = str(path)
    options = options or EDM4hepOptions()
    file, tree = _open_tree(shown, tree_name)
    with file:
        layout = detect_layout(file, tree, shown)
        if options.level == "jet" and layout.jets is None:
            raise EventFormatError(shown, None, f"level=jet needs a {'Jet'} collection of reconstructed particles; "
                                   f"the file ({layout.name} layout) has none")
        if layout.bz is None and options.bz_tesla is None:
            log.warning("%s: no magFieldBz in the file and no bz_tesla given: bz_tesla is NaN", shown)
        wanted = leaves_to_read(layout, options)
        missing = [leaf for leaf in wanted if leaf not in layout.paths]
        if missing:
            raise EventFormatError(shown, None, f"{layout.name} layout without the branch(es) {missing}")
        branches = {leaf: tree[layout.paths[leaf]] for leaf in wanted}
        size = os.path.getsize(path)
        total = tree.num_entries
        if step_size is None:
            ranges = basket_ranges(branches, total, PIPELINE_STEP_ENTRIES)
        else:
            step = _entries_per_step(branches, total, step_size)
            ranges = [(start, min(start + step, total)) for start in range(0, total, max(step, 1))] or [(0, 0)]
        # Read chunk k + 1 in a thread while chunk k is turned into records: uproot's
        # decompression and numpy's work on large arrays both release the GIL.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(_read_leaves, branches, *ranges[0], shown)
            for k, (start, stop) in enumerate(ranges):
                arrays = pending.result()
                if k + 1 < len(ranges):
                    pending = pool.submit(_read_leaves, branches, *ranges[k + 1], shown)
                cols, neutrals = chunk_columns(Chunk(arrays, stop - start), layout, options, shown, start, label,
                                               on_error, report)
                try:
                    keep = screen_mask(cols, shown, on_error, report, start)
                except EventFormatError as err:  # the physics checks of every reader, with the collection
                    raise EventFormatError(shown, None, f"{layout.particles}: {err.reason}", entry=err.entry) from None
                if not keep.all():
                    cols, neutrals = cols.select(keep), _select(neutrals, keep)
                yield (cols, neutrals), size * stop // max(total, 1)


def basket_ranges(branches: dict[str, Any], total: int, step: int) -> list[tuple[int, int]]:
    """Entry ranges of about ``step`` entries (at least) that end where every branch's basket ends.

    Each basket is then decompressed once. Where the baskets of the branches share
    no boundary for more than ``4 * step`` entries, the range is cut there anyway.
    """
    common = set(range(0, total + 1)) if not branches else None
    for branch in branches.values():
        offsets = set(branch.entry_offsets)
        common = offsets if common is None else common & offsets
    bounds = sorted(b for b in (common or set()) if 0 < b < total) + [total]
    ranges, start = [], 0
    for bound in bounds:
        while bound - start > 4 * step:
            ranges.append((start, start + step))
            start += step
        if bound - start >= step or bound == total:
            ranges.append((start, bound))
            start = bound
    return ranges or [(0, 0)]


def _entries_per_step(branches: dict[str, Any], total: int, step_size: int | str) -> int:
    """Entries per chunk: ``step_size`` entries, or about that many uncompressed bytes of the branches read."""
    if isinstance(step_size, int):
        return step_size
    from flavortag.io.api import parse_step_size

    _, n_bytes = parse_step_size(step_size)
    per_entry = sum(b.uncompressed_bytes for b in branches.values()) / max(total, 1)
    return max(1, int((n_bytes or 0) // max(per_entry, 1.0)))


def _read_leaves(branches: dict[str, Any], start: int, stop: int, path: str) -> dict[str, ak.Array]:
    """Entries ``start:stop`` of each leaf, branch by branch (much quicker than ``tree.arrays`` on podio trees,
    whose name lookups dominate for small chunks); a truncated file said in words."""
    try:
        return {leaf: branch.array(entry_start=start, entry_stop=stop, library="ak")
                for leaf, branch in branches.items()}
    except (OSError, ValueError) as err:
        truncated = truncation_message(path)
        if truncated:
            raise EventFormatError(path, None, truncated) from err
        raise


def screen_mask(cols: EventColumns, path: str, on_error: OnError, report: ReadReport, first_entry: int) -> np.ndarray:
    """The records that pass the readers' physics checks (:func:`flavortag.io.checks.screen_columns`)."""
    marked = dataclasses.replace(cols, extras={"_row": np.arange(len(cols))})
    kept = screen_columns(marked, path, on_error, report, first_entry=first_entry)
    keep = np.zeros(len(cols), bool)
    keep[kept.extras["_row"]] = True
    return keep


def iter_edm4hep_columns(
    path: str | Path,
    tree_name: str,
    label: int | None,
    on_error: OnError,
    report: ReadReport,
    step_size: int | str | None = None,
    options: EDM4hepOptions | None = None,
) -> Iterator[tuple[EventColumns, int]]:
    """Yield ``(records, approximate bytes of the file consumed)`` of an EDM4hep file in steps of ``step_size``.

    ``label``: the class of records the file's MC record cannot label (None: -1).
    ``step_size``: entries (int) or an uproot memory size; None reads the whole tree.
    """
    for (cols, _), position in _iter_chunks(path, tree_name, label, on_error, report, step_size, options):
        yield cols, position


def chunk_columns(chunk: Chunk, layout: Layout, options: EDM4hepOptions, path: str, first_entry: int,
                  label: int | None, on_error: OnError, report: ReadReport) -> tuple[EventColumns, EventColumns | None]:
    """The records (events or jets) of one chunk of entries (module docstring), and their neutrals
    (``options.neutrals`` only, else None)."""
    from flavortag.generate.thrust import thrust_axis

    problems = Problems(chunk.n)
    parts = particles(chunk, layout, problems, path)
    truth = TruthReader(chunk, layout, parts.offsets, problems, path) if layout.mc else None
    bz = _bz(chunk, layout, options)
    if options.level == "jet":
        return _jet_columns(chunk, layout, parts, truth, problems, path, first_entry, label, on_error, report, bz,
                            options)
    rows = np.flatnonzero(parts.is_track)
    fields = track_fields(chunk, layout, parts, rows, problems, path)
    if truth is not None and truth.has_links and options.track_truth:
        fields.update(truth.track_fields(rows))
    counts = np.bincount(parts.event[rows], minlength=chunk.n)
    offsets = offsets_from_counts(counts)
    axis_rows = np.flatnonzero(parts.is_track | options.neutrals_in_axis)
    axis_offsets = offsets_from_counts(np.bincount(parts.event[axis_rows], minlength=chunk.n))
    axis, _ = thrust_axis(parts.momenta(axis_rows), axis_offsets)
    labels = truth.event_labels() if truth is not None else None
    if labels is None:
        labels = np.full(chunk.n, UNKNOWN_LABEL if label is None else label, np.int32)
    cols = EventColumns(axis=axis.astype(np.float32), offsets=offsets, tracks=fields, label=labels,
                        extras={"bz_tesla": bz})
    neutrals = None
    if options.neutrals:
        others = np.flatnonzero(~parts.is_track)
        neutrals = _neutrals(parts, others, parts.event[others], chunk.n, cols)
    keep = problems.settle(path, first_entry, on_error, report)
    return (cols, neutrals) if keep.all() else (cols.select(keep), _select(neutrals, keep))


def _neutrals(parts: Particles, rows: np.ndarray, record: np.ndarray, n_records: int,
              cols: EventColumns) -> EventColumns:
    """The particles ``rows`` (of records ``record``) that are not tracks, as the tracks of a twin of ``cols``.

    Their sums become per-record fields of ``cols`` (in place).
    """
    counts = np.bincount(record, minlength=n_records)
    p4 = [column[rows] for column in parts.p4]
    twin = EventColumns(
        axis=cols.axis, offsets=offsets_from_counts(counts), label=cols.label,
        tracks={"E": p4[0], "px": p4[1], "py": p4[2], "pz": p4[3], "pid_pdg": parts.pid[rows]},
    )
    cols.extras["n_neutrals"] = counts.astype(np.int32)
    for k, name in enumerate(("neutral_E", "neutral_px", "neutral_py", "neutral_pz")):
        cols.extras[name] = np.bincount(record, weights=p4[k], minlength=n_records).astype(np.float32)
    return twin


def _select(neutrals: EventColumns | None, keep: np.ndarray) -> EventColumns | None:
    """The neutrals of the records kept (None stays None)."""
    return None if neutrals is None else neutrals.select(keep)


def _bz(chunk: Chunk, layout: Layout, options: EDM4hepOptions) -> np.ndarray:
    """Bz (T) per event: ``magFieldBz`` of the file, else ``options.bz_tesla``, else NaN."""
    fallback = np.nan if options.bz_tesla is None else float(options.bz_tesla)
    bz = np.full(chunk.n, fallback, np.float32)
    if layout.bz:
        offsets, values = chunk.column(layout.bz)
        has = np.diff(offsets) > 0
        bz[has] = values[offsets[:-1][has]]
    return bz


def _jet_columns(chunk: Chunk, layout: Layout, parts: Particles, truth: TruthReader | None, problems: Problems,
                 path: str, first_entry: int, label: int | None, on_error: OnError, report: ReadReport,
                 bz: np.ndarray, options: EDM4hepOptions) -> tuple[EventColumns, EventColumns | None]:
    """One record per jet: its charged constituents with a track; axis = the jet's direction."""
    J = layout.jets
    assert J is not None
    jet_off = chunk.offsets(layout.leaf(J, "energy"))
    jet_event = event_index(np.diff(jet_off))
    p4 = np.stack([chunk.values(layout.leaf(J, m)) for m in ("energy", "momentum.x", "momentum.y", "momentum.z")],
                  axis=1).astype(np.float64)
    members = resolve_relation(chunk, layout, J, "particles", layout.particles, problems, path, all_slots=True)
    assert members.target is not None
    n_const = members.end - members.begin
    slot_jet = np.repeat(np.arange(len(jet_event)), n_const)
    slot = np.repeat(members.begin, n_const) + (np.arange(n_const.sum()) - np.repeat(np.cumsum(n_const) - n_const,
                                                                                        n_const))
    constituent = members.target[slot]  # global particle rows, jet by jet
    is_track = parts.is_track[constituent]
    rows = constituent[is_track]
    fields = track_fields(chunk, layout, parts, rows, problems, path)
    if truth is not None and truth.has_links and options.track_truth:
        fields.update(truth.track_fields(rows))
    counts = np.bincount(slot_jet[is_track], minlength=len(jet_event))
    norm = np.linalg.norm(p4[:, 1:4], axis=1, keepdims=True)
    axis = np.where(norm > 0, p4[:, 1:4] / np.where(norm > 0, norm, 1.0), [0.0, 0.0, 1.0])
    labels = truth.jet_labels(constituent, slot_jet, jet_event) if truth is not None else None
    if labels is None:
        labels = np.full(len(jet_event), UNKNOWN_LABEL if label is None else label, np.int32)
    extras = {
        "jet_E": p4[:, 0].astype(np.float32),
        "jet_mass": chunk.values(layout.leaf(J, "mass")).astype(np.float32),
        "n_constituents": n_const.astype(np.int32),
        "event": (first_entry + jet_event).astype(np.int64),
        "jet": (np.arange(len(jet_event)) - jet_off[jet_event]).astype(np.int32),
        "bz_tesla": bz[jet_event],
    }
    cols = EventColumns(axis=axis.astype(np.float32), offsets=offsets_from_counts(counts), tracks=fields,
                        label=labels, extras=extras)
    neutrals = None
    if options.neutrals:
        neutrals = _neutrals(parts, constituent[~is_track], slot_jet[~is_track], len(jet_event), cols)
    keep = problems.settle(path, first_entry, on_error, report)[jet_event]
    return (cols, neutrals) if keep.all() else (cols.select(keep), _select(neutrals, keep))


def read_edm4hep(
    path: str | os.PathLike,
    label: int | None = None,
    *,
    options: EDM4hepOptions | dict[str, Any] | None = None,
    on_error: OnError = "raise",
    report: ReadReport | None = None,
    tree: str = "events",
) -> ak.Array:
    """All records of one EDM4hep file as flavortag's awkward event (or jet) array.

    The same as ``flavortag.io.read_events(path, format="edm4hep", ...)``;
    ``options``: :class:`EDM4hepOptions` or a mapping of its fields.
    """
    report = ReadReport(n_files=1) if report is None else report
    options = EDM4hepOptions.of(options)
    parts = [c for c, _ in _iter_chunks(str(path), tree, label, on_error, report, None, options)]
    cols = EventColumns.concat([c for c, _ in parts])
    report.n_events += len(cols)
    records = cols.to_awkward()
    if options.neutrals:
        twins = [n for _, n in parts if n is not None]
        records = ak.with_field(records, EventColumns.concat(twins).to_awkward()["tracks"], "neutrals")
    return records


def describe_edm4hep(path: str | os.PathLike, tree: str = "events") -> str:
    """One line: the file's EDM4hep layout, the collections read and the field (for ``flavortag info``)."""
    shown = str(path)
    file, events = _open_tree(shown, tree)
    with file:
        layout = detect_layout(file, events, shown)
        read = [layout.particles, layout.tracks + f" ({layout.states})", layout.mc, layout.links, layout.jets,
                layout.dndx]
        bz = "magFieldBz" if layout.bz else "no magFieldBz"
        return (f"EDM4hep, {layout.name} layout, {events.num_entries} events; reads "
                f"{', '.join(c for c in read if c)}; {bz}")
