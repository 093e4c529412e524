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
            if offsets[0] != 0:
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
    """A relation resolved to global rows of its target: ``target[i]`` for source slot ``i`` (-1 none)."""

    first: np.ndarray  # global target row of each source row's first related object (-1: none)
    begin: np.ndarray  # global slot range of each source row in the relation branch
    end: np.ndarray
    target: np.ndarray  # global target row of each slot (clipped into range; bad ones flagged)


def resolve_relation(
    chunk: Chunk, layout: Layout, source: str, name: str, target: str, problems: Problems, path: str,
) -> Relation:
    """Follow ``source.name`` (``*_begin/_end`` + the relation branch) to global rows of ``target``.

    Out-of-range slots or indices and a wrong collection id are flagged in
    ``problems`` (and clipped into range so that the caller can go on).
    """
    src_off = chunk.offsets(layout.leaf(source, f"{name}_begin"))
    begin = chunk.values(layout.leaf(source, f"{name}_begin")).astype(np.int64)
    end = chunk.values(layout.leaf(source, f"{name}_end")).astype(np.int64)
    branch = layout.relation(source, name)
    rel_off, index = chunk.column(f"{branch}.index")
    collection_id = chunk.values(f"{branch}.collectionID")
    tgt_off = chunk.offsets(count_leaf(layout, target))
    src_event = event_index(np.diff(src_off))
    slots_in_event = np.diff(rel_off)[src_event]
    bad = (begin < 0) | (end < begin) | (end > slots_in_event)
    problems.add(bad, src_event, "relation out of range", lambda r: (
        f"{source}: object {r - src_off[src_event[r]]}: {name} slots {begin[r]}..{end[r]} beyond the "
        f"{slots_in_event[r]} entries of {branch}"))
    begin = np.where(bad, 0, begin) + rel_off[src_event]
    end = np.where(bad, 0, end) + rel_off[src_event]
    slot_event = event_index(np.diff(rel_off))
    n_target = np.diff(tgt_off)[slot_event]
    index = index.astype(np.int64)
    out = (index < 0) | (index >= n_target)
    steps = np.zeros(len(index) + 1, np.int64)
    np.add.at(steps, begin[end > begin], 1)
    np.add.at(steps, end[end > begin], -1)
    used = np.cumsum(steps)[:-1] > 0  # slots that some source row refers to
    problems.add(out & used, slot_event, "relation out of range", lambda s: (
        f"{branch}: index {index[s]} out of range: the event has {n_target[s]} {target}"))
    expected = layout.ids.get(target)
    if expected is not None:
        wrong = used & ~out & (collection_id != expected)
        problems.add(wrong, slot_event, "relation to another collection", lambda s: (
            f"{branch}: entry {s - rel_off[slot_event[s]]} points to collection id {collection_id[s]}, "
            f"not {target} (id {expected})"))
    target_row = np.where(out, 0, index) + tgt_off[slot_event]
    first = np.full(len(begin), -1, np.int64)
    has = end > begin
    first[has] = target_row[begin[has]]
    return Relation(first=first, begin=begin, end=end, target=target_row)


def count_leaf(layout: Layout, collection: str) -> str:
    """The leaf (one the reader reads) that gives ``collection``'s per-event counts."""
    member = {"Track": "trackStates_begin", "MCParticle": "PDG"}.get(layout.types.get(collection, ""), "energy")
    return layout.leaf(collection, member)
