"""ROOT files through uproot: one TTree (default ``events``), one entry per event.

Branches: ``axis_x, axis_y, axis_z`` (float32), ``label`` (int32), the jagged
``track_E, track_px, ..., track_z`` and any extra ``track_<name>`` with their
counter ``ntrack`` (what uproot writes for ``tree["track"] = ak.zip({...})``),
the optional jagged ``neutrals_E, neutrals_px, neutrals_py, neutrals_pz,
neutrals_pid_pdg`` with their counter ``nneutrals`` (docs/FORMAT.md "Particle
flow"), and any extra flat per-event branches (carried along). Other branches are
ignored with a warning. uproot is imported only when a ROOT file is touched.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import awkward as ak
import numpy as np

from flavortag.classes import label_codes
from flavortag.io.checks import screen_columns
from flavortag.io.columns import NEUTRAL_FIELDS, NEUTRALS, TRACK_FIELDS, EventColumns
from flavortag.io.errors import EventFormatError, OnError, ReadReport, log

AXIS_BRANCHES: tuple[str, ...] = ("axis_x", "axis_y", "axis_z")
TRACK_PREFIX = "track_"
COUNTER_BRANCH = "ntrack"
NEUTRAL_PREFIX = NEUTRALS + "_"
NEUTRAL_COUNTER = "n" + NEUTRALS
#: Events per ``TTree.extend`` call (one basket per branch each) when writing.
WRITE_STEP_EVENTS: int = 200_000


class _Plan:
    """Which branches of a tree hold what."""

    def __init__(self, tree: object, path: str) -> None:
        from uproot.interpretation.jagged import AsJagged

        names = list(tree.keys(recursive=False))  # type: ignore[attr-defined]
        interps = {n: tree[n].interpretation for n in names}  # type: ignore[index]
        jagged = {n for n, i in interps.items() if isinstance(i, AsJagged)}
        self.track_fields = [n[len(TRACK_PREFIX):] for n in names if n.startswith(TRACK_PREFIX) and n in jagged]
        wrong = [_wrong_type(b, tree[b].typename, "a number per event (e.g. float)")  # type: ignore[index]
                 for b in AXIS_BRANCHES if b in names and not _is_number(interps[b])]
        wrong += [_wrong_type(b, tree[b].typename,  # type: ignore[index]
                              "a list of numbers per event, one per track (e.g. float[] counted by "
                              f"{COUNTER_BRANCH}, or std::vector<float>)")
                  for b in (TRACK_PREFIX + f for f in TRACK_FIELDS)
                  if b in names and not (b in jagged and _is_number(interps[b].content))]
        if wrong:
            raise EventFormatError(path, None, "; ".join(wrong))
        missing = [b for b in AXIS_BRANCHES if b not in names]
        missing += [TRACK_PREFIX + f for f in TRACK_FIELDS if f not in self.track_fields]
        if missing:
            raise EventFormatError(
                path, None,
                f"the tree has no branch(es) {missing}: an event tree holds {list(AXIS_BRANCHES)}, "
                f"label and {[TRACK_PREFIX + f for f in TRACK_FIELDS]} (found {names})",
            )
        self.track_fields = list(TRACK_FIELDS) + [f for f in self.track_fields if f not in TRACK_FIELDS]
        self.has_label = "label" in names
        self.neutral_fields = [f for f in NEUTRAL_FIELDS if NEUTRAL_PREFIX + f in jagged]
        if self.neutral_fields and len(self.neutral_fields) != len(NEUTRAL_FIELDS):
            raise EventFormatError(path, None, f"the tree has only {self.neutral_fields} of the neutral-particle "
                                   f"branches {[NEUTRAL_PREFIX + f for f in NEUTRAL_FIELDS]}")
        known = set(AXIS_BRANCHES) | {"label", COUNTER_BRANCH, NEUTRAL_COUNTER}
        known |= {NEUTRAL_PREFIX + f for f in self.neutral_fields}
        self.extras: list[str] = []
        ignored = []
        for name in names:
            if name in known or (name.startswith(TRACK_PREFIX) and name in jagged):
                continue
            if _is_number(interps[name]):
                self.extras.append(name)
            else:
                ignored.append(name)
        if ignored:
            log.warning("%s: ignoring branches %s (not part of the event layout)", path, ignored)
        self.branches = list(AXIS_BRANCHES) + [TRACK_PREFIX + f for f in self.track_fields]
        self.branches += (["label"] if self.has_label else []) + self.extras
        self.branches += [NEUTRAL_PREFIX + f for f in self.neutral_fields]


def _is_number(interpretation: object) -> bool:
    """True for an uproot interpretation of one number (bool, integer or float) per entry."""
    dtype = getattr(interpretation, "to_dtype", None)
    return dtype is not None and dtype.shape == () and dtype.kind in "biuf"


def _wrong_type(branch: str, typename: str, expected: str) -> str:
    """``branch B has the wrong type: T (what that is), expected E``."""
    what = (" (a list per event)" if typename.endswith("[]") or typename.startswith("std::vector")
            else " (one value per event)" if "[" not in typename and "<" not in typename else "")
    return f"branch {branch} has the wrong type: {typename}{what}, expected {expected}"


def truncation_message(path: str) -> str | None:
    """"the file is truncated: ..." when the file is shorter than its ROOT header says, else None."""
    import struct

    try:
        with open(path, "rb") as f:
            head = f.read(32)
        size = os.path.getsize(path)
    except OSError:
        return None
    if len(head) < 20 or not head.startswith(b"root"):
        return None
    version = struct.unpack(">i", head[4:8])[0]
    end = struct.unpack(">q", head[12:20])[0] if version >= 1_000_000 else struct.unpack(">i", head[12:16])[0]
    if size >= end:
        return None
    return (
        f"the file is truncated: it has {size} bytes but its ROOT header says {end} "
        f"({end - size} bytes missing; an interrupted copy or write?)"
    )


def _open_tree(path: str, tree_name: str):  # noqa: ANN202 -- uproot objects
    import uproot

    try:
        file = uproot.open(path)
    except FileNotFoundError:
        raise
    except Exception as err:  # uproot raises several types for a file that is not ROOT
        truncated = truncation_message(path)
        if truncated:
            raise EventFormatError(path, None, truncated) from None
        raise EventFormatError(path, None, f"not a readable ROOT file ({err})") from None
    try:
        tree = file[tree_name]
    except KeyError:
        file.close()
        raise EventFormatError(
            path, None, f"no tree {tree_name!r} in the file (keys: {file.keys()})"
        ) from None
    if not isinstance(tree, uproot.TTree):
        file.close()
        raise EventFormatError(path, None, f"{tree_name!r} is a {type(tree).__name__}, not a TTree")
    return file, tree


def iter_root_columns(
    path: str | Path,
    tree_name: str,
    label_fallback: Callable[[], int],
    on_error: OnError,
    report: ReadReport,
    step_size: int | str | None = None,
) -> Iterator[tuple[EventColumns, int]]:
    """Yield ``(events, approximate bytes of the file consumed)`` in steps of ``step_size``.

    ``step_size``: entries (int) or a memory size for uproot (``"100 MB"``);
    None reads the whole tree at once. ``label_fallback`` gives the class when
    the tree has no ``label`` branch.
    """
    shown = str(path)
    file, tree = _open_tree(shown, tree_name)
    with file:
        plan = _Plan(tree, shown)
        label = None if plan.has_label else label_fallback()
        size = os.path.getsize(path)
        total = max(tree.num_entries, 1)
        if step_size is None:
            parts = (tree.arrays(plan.branches, library="ak") for _ in range(1))
        else:
            parts = tree.iterate(plan.branches, step_size=step_size, library="ak")
        entry = 0
        for arrays in _reading(parts, shown):
            cols = _columns(arrays, plan, label, shown, entry)
            raw = _label_values(arrays["label"]) if plan.has_label else None
            cols = screen_columns(cols, shown, on_error, report, first_entry=entry, raw_labels=raw)
            entry += len(arrays)
            yield cols, size * entry // total


def _reading(parts: Iterator[ak.Array], path: str) -> Iterator[ak.Array]:
    """``parts``, with a read failure of a truncated file said in words (file, how much is missing)."""
    while True:
        try:
            arrays = next(parts)
        except StopIteration:
            return
        except (OSError, ValueError) as err:
            truncated = truncation_message(path)
            if truncated:
                raise EventFormatError(path, None, truncated) from err
            raise
        yield arrays


def _columns(arrays: ak.Array, plan: _Plan, label: int | None, path: str, entry: int) -> EventColumns:
    n = len(arrays)
    axis = np.empty((n, 3), np.float32)
    for k, name in enumerate(AXIS_BRANCHES):
        axis[:, k] = ak.to_numpy(arrays[name])
    offsets, tracks = _jagged(arrays, TRACK_PREFIX, plan.track_fields, path, entry)
    tracks = {k: v.astype(np.float32, copy=False) if k in TRACK_FIELDS else v for k, v in tracks.items()}
    labels = label_codes(_label_values(arrays["label"]))[0] if label is None else np.full(n, label, np.int32)
    extras = {name: ak.to_numpy(arrays[name]) for name in plan.extras}
    neutral_offsets: np.ndarray | None = None
    neutrals: dict[str, np.ndarray] = {}
    if plan.neutral_fields:
        neutral_offsets, neutrals = _jagged(arrays, NEUTRAL_PREFIX, plan.neutral_fields, path, entry)
        neutrals = {k: v.astype(np.int32 if k == "pid_pdg" else np.float32, copy=False) for k, v in neutrals.items()}
    return EventColumns(axis=axis, offsets=offsets, tracks=tracks, label=labels, extras=extras,
                        neutral_offsets=neutral_offsets, neutrals=neutrals)


def _jagged(arrays: ak.Array, prefix: str, names: list[str], path: str,
            entry: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Offsets and flat values of the jagged branches ``prefix + name`` (one count for all of them)."""
    offsets = None
    values_of = {}
    for field in names:
        layout = ak.to_layout(arrays[prefix + field])
        if not isinstance(layout, ak.contents.ListOffsetArray):
            layout = layout.to_ListOffsetArray64(True)
        these = np.asarray(layout.offsets.data, np.int64)
        values = np.asarray(layout.content.data)
        if these[0] != 0:
            values = values[these[0] : these[-1]]
            these = these - these[0]
        if offsets is None:
            offsets = these
        elif not np.array_equal(offsets, these):
            bad = int(np.flatnonzero(offsets != these)[0]) - 1
            raise EventFormatError(
                path, None, f"branch {prefix + field} has a different number of entries "
                f"than {prefix}{names[0]}", entry=entry + max(bad, 0),
            )
        values_of[field] = values
    assert offsets is not None  # at least one field is always read
    return offsets, values_of


def _label_values(values: ak.Array) -> np.ndarray:
    """The stored labels as numpy (numbers, or strings for a string branch)."""
    try:
        return np.asarray(ak.to_numpy(values))
    except (TypeError, ValueError):
        return np.asarray(ak.to_list(values), dtype=object)


def _branch_types(data: dict[str, np.ndarray | ak.Array]) -> dict[str, object]:
    return {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()}


def _branch_data(cols: EventColumns) -> dict[str, np.ndarray | ak.Array]:
    clash = [n for n in cols.extras if n in (*AXIS_BRANCHES, "label", COUNTER_BRANCH, "track", NEUTRALS,
                                              NEUTRAL_COUNTER)
             or n.startswith(TRACK_PREFIX) or n.startswith(NEUTRAL_PREFIX)]
    if clash:
        raise ValueError(f"per-event fields {clash} clash with the branch names of the event tree")
    data: dict[str, np.ndarray | ak.Array] = {
        name: np.ascontiguousarray(cols.axis[:, k]) for k, name in enumerate(AXIS_BRANCHES)
    }
    data["label"] = cols.label
    data.update(cols.extras)
    data["track"] = ak.Array(
        ak.contents.ListOffsetArray(
            ak.index.Index64(cols.offsets),
            ak.contents.RecordArray(
                [ak.contents.NumpyArray(v) for v in cols.tracks.values()], list(cols.tracks),
                length=cols.n_tracks,
            ),
        )
    )
    if cols.neutral_offsets is not None:
        data[NEUTRALS] = ak.Array(ak.contents.ListOffsetArray(
            ak.index.Index64(cols.neutral_offsets),
            ak.contents.RecordArray([ak.contents.NumpyArray(v) for v in cols.neutrals.values()],
                                    list(cols.neutrals), length=cols.n_neutrals)))
    return data


def write_root_chunks(chunks: Iterable[EventColumns], path: Path, tree_name: str = "events") -> None:
    """Write events to a new ROOT file at ``path`` as the TTree ``tree_name``, chunk by chunk."""
    import uproot

    with uproot.recreate(path) as file:
        tree = None
        for cols in chunks:
            for start in range(0, max(len(cols), 1), WRITE_STEP_EVENTS):
                data = _branch_data(cols.slice(start, min(start + WRITE_STEP_EVENTS, len(cols))))
                if tree is None:
                    tree = file.mktree(tree_name, _branch_types(data))
                if len(data["label"]):
                    tree.extend(data)
        if tree is None:
            file.mktree(tree_name, _branch_types(_branch_data(EventColumns.empty())))
