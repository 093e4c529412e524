"""Reading podio relations on flat columns: a chunk's leaves, relation resolution, and bad-event bookkeeping.

podio keeps each collection of an event as a vector; a one-to-many relation
is a ``[begin, end)`` slot range per object into a relation branch whose
entries are ``(index, collectionID)`` of the related objects (index local to
the event). :func:`resolve_relation` turns that into global rows of the
target collection for all events of a chunk at once, checking every index;
:class:`Problems` gathers what is wrong, per event, for one error message or
for the skip report (file, entry, collection).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import awkward as ak
import numpy as np

from flavortag.io.edm4hep_layout import Layout
from flavortag.io.errors import EventFormatError, OnError, ReadReport, format_location
from flavortag.ragged import event_index


class Problems:
    """Bad events of a chunk: the first problem of each, for an error or the skip report."""

    def __init__(self, n_events: int) -> None:
        self.kind = np.full(n_events, -1, np.int64)
        self.kinds: list[str] = []
        self.messages: list[Callable[[int], str]] = []

    def add(self, bad_rows: np.ndarray, row_event: np.ndarray, kind: str, message: Callable[[int], str]) -> None:
        """Rows ``bad_rows`` (bool over rows, or row numbers) of events ``row_event[row]`` have problem ``kind``.

        ``message(row)`` says what is wrong with one row (called for a few rows only).
        """
        rows = np.flatnonzero(bad_rows) if bad_rows.dtype == bool else np.asarray(bad_rows)
        if not len(rows):
            return
        events, first = np.unique(row_event[rows], return_index=True)
        fresh = self.kind[events] < 0
        self.kind[events[fresh]] = len(self.kinds)
        self.kinds.append(kind)
        row_of = dict(zip(events.tolist(), rows[first].tolist()))
        self.messages.append(lambda event: message(row_of[event]))

    def bad(self) -> np.ndarray:
        """Events with a problem (bool)."""
        return self.kind >= 0

    def settle(self, path: str, first_entry: int, on_error: OnError, report: ReadReport) -> np.ndarray:
        """Raise at the first bad event, or account for every bad event in ``report``; returns events to keep."""
        for event in np.flatnonzero(self.kind >= 0):
            k = int(self.kind[event])
            message = self.messages[k](int(event))
            if on_error == "raise":
                raise EventFormatError(path, None, message, entry=first_entry + int(event))
            report.drop(self.kinds[k], format_location(path, entry=first_entry + int(event)) + message)
        return self.kind < 0


class Chunk:
    """The leaves of one chunk of entries as flat numpy arrays with per-event offsets."""

    def __init__(self, arrays: dict[str, ak.Array], n_entries: int) -> None:
        self.arrays = arrays
        self.n = n_entries
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def column(self, leaf: str) -> tuple[np.ndarray, np.ndarray]:
        """``(offsets [n + 1], values)`` of a jagged leaf (values 2-d for a fixed-size array leaf)."""
        if leaf not in self._cache:
            layout = ak.to_layout(self.arrays[leaf])
            if not isinstance(layout, ak.contents.ListOffsetArray):
                layout = layout.to_ListOffsetArray64(True)
            offsets = np.asarray(layout.offsets.data, np.int64)
            content = layout.content
            if isinstance(content, ak.contents.RegularArray):
                values = np.asarray(content.content.data).reshape(-1, content.size)
            else:
                values = np.asarray(content.data)
            if offsets[0] != 0 or len(values) != offsets[-1]:
                values = values[offsets[0]:offsets[-1]]
                offsets = offsets - offsets[0]
            self._cache[leaf] = (offsets, values)
        return self._cache[leaf]

    def values(self, leaf: str) -> np.ndarray:
        """The flat values of a leaf."""
        return self.column(leaf)[1]

    def offsets(self, leaf: str) -> np.ndarray:
        """The per-event offsets of a leaf."""
        return self.column(leaf)[0]


@dataclass
class Relation:
    """A relation resolved to global rows of its target (indices out of range are flagged and clipped)."""

    first: np.ndarray  # global target row of each source row's first related object (-1: none)
    begin: np.ndarray  # global slot range of each source row in the relation branch
    end: np.ndarray
    target: np.ndarray | None  # global target row of each slot (``all_slots`` only)


def resolve_relation(
    chunk: Chunk, layout: Layout, source: str, name: str, target: str, problems: Problems, path: str,
    *, all_slots: bool = False, rows: np.ndarray | None = None,
) -> Relation:
    """Follow ``source.name`` (``*_begin/_end`` + the relation branch) to global rows of ``target``.

    Out-of-range slots or indices and a wrong collection id are flagged in
    ``problems`` (and clipped into range so that the caller can go on). Only
    each source row's first related object is resolved (and checked) unless
    ``all_slots`` (the constituents of a jet): the first parent of an MC
    particle and the track of a particle are all the reader follows.
    ``rows``: only these source rows (global; the result is theirs, in order).
    """
    if rows is None:
        clean = _resolve_clean(chunk, layout, source, name, target, all_slots)
        if clean is not None:
            return clean
    src_off = chunk.offsets(layout.leaf(source, f"{name}_begin"))
    begin = chunk.values(layout.leaf(source, f"{name}_begin"))
    end = chunk.values(layout.leaf(source, f"{name}_end"))
    if rows is None:
        src_event = event_index(np.diff(src_off))
        begin, end = begin.astype(np.int64), end.astype(np.int64)
    else:
        src_event = np.searchsorted(src_off, rows, side="right") - 1
        begin, end = begin[rows].astype(np.int64), end[rows].astype(np.int64)
    branch = layout.relation(source, name)
    rel_off, index = chunk.column(f"{branch}.index")
    collection_id = chunk.values(f"{branch}.collectionID")
    tgt_off = chunk.offsets(count_leaf(layout, target))
    n_target = np.diff(tgt_off)
    slots_in_event = np.diff(rel_off)[src_event]
    bad = (begin < 0) | (end < begin) | (end > slots_in_event)
    if bad.any():
        row_of = np.arange(len(begin)) if rows is None else rows
        problems.add(bad, src_event, "relation out of range", lambda r: (
            f"{source}: object {row_of[r] - src_off[src_event[r]]}: {name} slots {begin[r]}..{end[r]} beyond the "
            f"{slots_in_event[r]} entries of {branch}"))
        begin, end = np.where(bad, 0, begin), np.where(bad, 0, end)
    begin += rel_off[src_event]
    end += rel_off[src_event]
    expected = layout.ids.get(target)
    first = np.full(len(begin), -1, np.int64)
    if all_slots:
        slot_event = event_index(np.diff(rel_off))
        slots = np.arange(len(index))
    else:
        owners = np.flatnonzero(end > begin)
        slots = begin[owners]
        slot_event = src_event[owners]
    local = index[slots].astype(np.int64)
    out = (local < 0) | (local >= n_target[slot_event])
    wrong = (collection_id[slots] != expected) & ~out if expected is not None else None
    if out.any() or (wrong is not None and wrong.any()):
        used = _used_slots(begin, end, len(index))[slots]
        problems.add(out & used, slot_event, "relation out of range", lambda s: (
            f"{branch}: index {local[s]} out of range: the event has {n_target[slot_event[s]]} {target}"))
        if wrong is not None:
            problems.add(wrong & used, slot_event, "relation to another collection", lambda s: (
                f"{branch}: entry {slots[s] - rel_off[slot_event[s]]} points to collection id "
                f"{collection_id[slots[s]]}, not {target} (id {expected})"))
    rows = np.where(out, 0, local) + tgt_off[slot_event]
    if all_slots:
        has = end > begin
        first[has] = rows[begin[has]]
        return Relation(first=first, begin=begin, end=end, target=rows)
    first[owners] = rows
    return Relation(first=first, begin=begin, end=end, target=None)


def _resolve_clean(chunk: Chunk, layout: Layout, source: str, name: str, target: str,
                   all_slots: bool) -> Relation | None:
    """:func:`resolve_relation` of all source rows when nothing is wrong (None otherwise, for the careful path).

    The checks are made per event in aggregate (the largest slot and index of
    each event against its sizes), with sequential passes instead of gathers
    per row; any failure leaves the work, and the messages, to the careful path.
    """
    src_off = chunk.offsets(layout.leaf(source, f"{name}_begin"))
    begin = chunk.values(layout.leaf(source, f"{name}_begin"))
    end = chunk.values(layout.leaf(source, f"{name}_end"))
    branch = layout.relation(source, name)
    rel_off, index = chunk.column(f"{branch}.index")
    collection_id = chunk.values(f"{branch}.collectionID")
    tgt_off = chunk.offsets(count_leaf(layout, target))
    n_slots, n_target = np.diff(rel_off), np.diff(tgt_off)
    if begin.dtype.kind == "i" and len(begin) and begin.min() < 0:
        return None
    if np.any(end < begin) or not _within(end, src_off, n_slots + 1):  # so 0 <= begin <= end <= slots
        return None
    expected = layout.ids.get(target)
    src_counts = np.diff(src_off)
    has = end > begin
    slot_base = np.repeat(rel_off[:-1], src_counts)
    begin = slot_base + begin  # int64 (the slot base's type)
    end = slot_base + end
    if all_slots:
        if not _within(index, rel_off, n_target) or (expected is not None and np.any(collection_id != expected)):
            return None
        targets = np.repeat(tgt_off[:-1], n_slots) + index
        first = np.full(len(begin), -1, np.int64)
        first[has] = targets[begin[has]]
        return Relation(first=first, begin=begin, end=end, target=targets)
    slot = np.minimum(begin, max(len(index) - 1, 0))
    local = np.where(has, index[slot], 0) if len(index) else np.zeros(len(begin), index.dtype)
    if not _within(local, src_off, n_target, has):
        return None
    if expected is not None and np.any(has & (collection_id[slot] != expected) if len(index) else False):
        return None
    first = np.where(has, np.repeat(tgt_off[:-1], src_counts) + local, -1)
    return Relation(first=first, begin=begin, end=end, target=None)


def _within(values: np.ndarray, offsets: np.ndarray, limit: np.ndarray, mask: np.ndarray | None = None,
            negative_ok: bool = False) -> bool:
    """True when every value of event k (``values[offsets[k]:offsets[k + 1]]``) lies in ``[0, limit[k])``.

    ``mask``: only these values count (bool over values; the others must be 0, which is in range for
    an event with anything to point to, and is checked against 1 for an event with nothing).
    ``negative_ok``: negative values (unset references) pass.
    """
    if not len(values):
        return True
    if not negative_ok and values.dtype.kind == "i" and values.min() < 0:
        return False
    nonempty = np.flatnonzero(np.diff(offsets) > 0)
    largest = np.maximum.reduceat(values, offsets[nonempty])
    if mask is not None:
        largest = np.where(np.logical_or.reduceat(mask, offsets[nonempty]), largest, -1)
    return bool(np.all(largest < limit[nonempty]))


def clean_links(chunk: Chunk, branch: str, offsets: np.ndarray, expected: int | None) -> np.ndarray | None:
    """Global rows (``offsets``: the target's per-event offsets) that the references of ``branch`` point to
    (-1: unset, a negative index), when every index is in range and of collection ``expected``; else None."""
    link_off, index = chunk.column(f"{branch}.index")
    if not _within(index, link_off, np.diff(offsets), negative_ok=True):
        return None
    if expected is not None and np.any((index >= 0) & (chunk.values(f"{branch}.collectionID") != expected)):
        return None
    return np.where(index >= 0, np.repeat(offsets[:-1], np.diff(link_off)) + index, -1)


def _used_slots(begin: np.ndarray, end: np.ndarray, n_slots: int) -> np.ndarray:
    """Slots that some ``[begin, end)`` range covers (bool)."""
    has = end > begin
    steps = np.bincount(begin[has], minlength=n_slots + 1) - np.bincount(end[has], minlength=n_slots + 1)
    return np.cumsum(steps)[:-1] > 0


def count_leaf(layout: Layout, collection: str) -> str:
    """The leaf (one the reader reads) that gives ``collection``'s per-event counts."""
    member = {"Track": "trackStates_begin", "MCParticle": "PDG"}.get(layout.types.get(collection, ""), "energy")
    return layout.leaf(collection, member)
