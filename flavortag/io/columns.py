"""The event layout, as flat numpy columns (:class:`EventColumns`) and as an awkward Array.

Every reader produces :class:`EventColumns` (no Python loop over events) and
every writer consumes them; :meth:`EventColumns.to_awkward` builds the array
the user sees without copying:

* ``axis``: ``3 * float32`` (unit thrust axis),
* ``tracks``: ``var * {E, px, py, pz, x, y, z: float32, <extras>}`` (GeV, GeV, mm),
* ``label``: ``int32`` (0 uds, 1 cc, 2 bb; -1 for an unknown class),
* optional ``neutrals``: ``var * {E, px, py, pz: float32, pid_pdg: int32}`` (GeV; the
  particle-flow neutral particles, docs/FORMAT.md), kept only when a file has them,
* any extra per-event fields (flat numbers, e.g. predictions) after them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import awkward as ak
import numpy as np

from flavortag.classes import describe_label, label_codes
from flavortag.ragged import offsets_from_counts

#: The per-track fields every event file holds, in this order (GeV, GeV, GeV, GeV, mm, mm, mm).
TRACK_FIELDS: tuple[str, ...] = ("E", "px", "py", "pz", "x", "y", "z")
#: The per-event fields of the event layout, in this order.
EVENT_FIELDS: tuple[str, ...] = ("axis", "tracks", "label")
#: The optional second list of a record: neutral particles (GeV, GeV, GeV, GeV, PDG hypothesis).
NEUTRALS: str = "neutrals"
NEUTRAL_FIELDS: tuple[str, ...] = ("E", "px", "py", "pz", "pid_pdg")
#: ``label`` value of events whose class is not known (``label="unknown"``).
UNKNOWN_LABEL: int = -1


@dataclass
class EventColumns:
    """Events as flat arrays: ``n`` events holding ``offsets[-1]`` tracks in all.

    ``axis`` float32 ``[n, 3]``; ``offsets`` int64 ``[n + 1]`` (tracks of event
    ``i`` are rows ``offsets[i]:offsets[i + 1]``, ``offsets[0] == 0``); ``tracks`` name -> flat
    array over all tracks (the :data:`TRACK_FIELDS` first, float32, then any
    extra per-track fields); ``label`` int32 ``[n]``; ``extras`` name -> flat
    ``[n]`` array of extra per-event fields; ``neutral_offsets`` (None: the
    file has no neutral particles) and ``neutrals`` the same for the
    :data:`NEUTRAL_FIELDS` list.
    """

    axis: np.ndarray
    offsets: np.ndarray
    tracks: dict[str, np.ndarray]
    label: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    neutral_offsets: np.ndarray | None = None
    neutrals: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.label)

    @property
    def n_tracks(self) -> int:
        """Number of tracks in all events."""
        return int(self.offsets[-1])

    @property
    def n_neutrals(self) -> int:
        """Number of neutral particles in all events (0 without the list)."""
        return 0 if self.neutral_offsets is None else int(self.neutral_offsets[-1])

    @property
    def signature(self) -> tuple:
        """Field names and dtypes: chunks with the same signature can be concatenated."""
        sig: tuple = (
            tuple((k, v.dtype.str) for k, v in self.tracks.items()),
            tuple((k, v.dtype.str) for k, v in self.extras.items()),
        )
        if self.neutral_offsets is not None:
            sig += (tuple((k, v.dtype.str) for k, v in self.neutrals.items()),)
        return sig

    @classmethod
    def empty(cls) -> EventColumns:
        """Zero events with the :data:`TRACK_FIELDS` only."""
        return cls(
            axis=np.zeros((0, 3), np.float32),
            offsets=np.zeros(1, np.int64),
            tracks={name: np.zeros(0, np.float32) for name in TRACK_FIELDS},
            label=np.zeros(0, np.int32),
        )

    def slice(self, start: int, stop: int) -> EventColumns:
        """Events ``start:stop`` (views, offsets rebased to 0)."""
        lo, hi = int(self.offsets[start]), int(self.offsets[stop])
        neutral_offsets: np.ndarray | None = None
        neutrals: dict[str, np.ndarray] = {}
        if self.neutral_offsets is not None:
            nlo, nhi = int(self.neutral_offsets[start]), int(self.neutral_offsets[stop])
            neutral_offsets = self.neutral_offsets[start : stop + 1] - nlo
            neutrals = {k: v[nlo:nhi] for k, v in self.neutrals.items()}
        return EventColumns(
            axis=self.axis[start:stop],
            offsets=self.offsets[start : stop + 1] - lo,
            tracks={k: v[lo:hi] for k, v in self.tracks.items()},
            label=self.label[start:stop],
            extras={k: v[start:stop] for k, v in self.extras.items()},
            neutral_offsets=neutral_offsets,
            neutrals=neutrals,
        )

    def select(self, keep: np.ndarray) -> EventColumns:
        """The events where the boolean mask ``keep`` is True (copies)."""
        return self.take(np.flatnonzero(keep))

    def take(self, order: np.ndarray) -> EventColumns:
        """The events at ``order`` (indices, any order; copies)."""
        offsets, tracks = _take_lists(self.offsets, self.tracks, order)
        neutral_offsets: np.ndarray | None = None
        neutrals: dict[str, np.ndarray] = {}
        if self.neutral_offsets is not None:
            neutral_offsets, neutrals = _take_lists(self.neutral_offsets, self.neutrals, order)
        return EventColumns(
            axis=self.axis[order],
            offsets=offsets,
            tracks=tracks,
            label=self.label[order],
            extras={k: v[order] for k, v in self.extras.items()},
            neutral_offsets=neutral_offsets,
            neutrals=neutrals,
        )

    @staticmethod
    def concat(parts: Sequence[EventColumns]) -> EventColumns:
        """Concatenate chunks with the same fields (``ValueError`` naming the difference otherwise)."""
        if not parts:
            return EventColumns.empty()
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        for part in parts[1:]:
            if part.signature != first.signature:
                raise ValueError(
                    "event chunks hold different fields: "
                    f"{describe_signature(first.signature)} vs {describe_signature(part.signature)}"
                )
        counts = np.concatenate([np.diff(p.offsets) for p in parts])
        neutral_offsets = None
        if first.neutral_offsets is not None:
            neutral_offsets = offsets_from_counts(np.concatenate([np.diff(p.neutral_offsets)  # type: ignore[arg-type,type-var]
                                                                  for p in parts]))
        return EventColumns(
            axis=np.concatenate([p.axis for p in parts]),
            offsets=offsets_from_counts(counts),
            tracks={k: np.concatenate([p.tracks[k] for p in parts]) for k in first.tracks},
            label=np.concatenate([p.label for p in parts]),
            extras={k: np.concatenate([p.extras[k] for p in parts]) for k in first.extras},
            neutral_offsets=neutral_offsets,
            neutrals={k: np.concatenate([p.neutrals[k] for p in parts]) for k in first.neutrals},
        )

    def to_awkward(self) -> ak.Array:
        """The event Array (see the module docstring); shares memory with the columns."""
        n = len(self)
        track_contents = [ak.contents.NumpyArray(v) for v in self.tracks.values()]
        tracks = ak.contents.ListOffsetArray(
            ak.index.Index64(self.offsets),
            ak.contents.RecordArray(track_contents, list(self.tracks), length=self.n_tracks),
        )
        axis = ak.contents.RegularArray(
            ak.contents.NumpyArray(np.ascontiguousarray(self.axis).reshape(-1)), 3, zeros_length=n
        )
        contents = [axis, tracks, ak.contents.NumpyArray(self.label)]
        names = list(EVENT_FIELDS)
        if self.neutral_offsets is not None:
            contents.append(ak.contents.ListOffsetArray(
                ak.index.Index64(self.neutral_offsets),
                ak.contents.RecordArray([ak.contents.NumpyArray(v) for v in self.neutrals.values()],
                                        list(self.neutrals), length=self.n_neutrals)))
            names.append(NEUTRALS)
        contents += [ak.contents.NumpyArray(v) for v in self.extras.values()]
        names += list(self.extras)
        return ak.Array(ak.contents.RecordArray(contents, names, length=n))

    @classmethod
    def from_awkward(
        cls, events: ak.Array, label: int | None = None, *, check_labels: bool = True
    ) -> EventColumns:
        """Columns of an event Array (``ValueError`` saying what is missing or malformed).

        ``label``: the class of every event when the array has no ``label``
        field. The kinematic track fields and the axis are cast to float32 and
        the label to int32 (class names such as ``"bb"`` become their index);
        other fields keep their dtype. A label that is no class is a
        ``ValueError`` naming the event, unless ``check_labels`` is False (it
        then becomes :data:`flavortag.classes.INVALID_LABEL_CODE`, for the
        readers to report with file and entry).
        """
        fields = ak.fields(events)
        required = EVENT_FIELDS if label is None else ("axis", "tracks")
        missing = [f for f in required if f not in fields]
        if missing:
            raise ValueError(f"not an event array: no field(s) {missing} (fields: {fields})")
        try:
            axis = _numpy(ak.to_regular(events["axis"], axis=1), "axis")
        except ValueError as err:
            raise ValueError(f"axis must hold 3 numbers per event ({err})") from None
        if axis.ndim != 2 or axis.shape[1] != 3:
            raise ValueError(f"axis must hold 3 numbers per event, got shape {axis.shape}")
        tracks = events["tracks"]
        track_fields = ak.fields(tracks)
        lacking = [f for f in TRACK_FIELDS if f not in track_fields]
        if lacking:
            raise ValueError(f"tracks have no field(s) {lacking} (fields: {track_fields})")
        counts = _numpy(ak.num(tracks, axis=1), "tracks")
        names = list(TRACK_FIELDS) + [f for f in track_fields if f not in TRACK_FIELDS]
        flat = {name: _numpy(ak.flatten(tracks[name], axis=1), f"tracks.{name}") for name in names}
        for name in TRACK_FIELDS:
            flat[name] = flat[name].astype(np.float32, copy=False)
        neutral_offsets: np.ndarray | None = None
        neutrals: dict[str, np.ndarray] = {}
        if NEUTRALS in fields:
            neutral_offsets, neutrals = _neutral_columns(events[NEUTRALS])
        extras = {}
        for name in fields:
            if name in EVENT_FIELDS or name == NEUTRALS:
                continue
            values = _numpy(events[name], name)
            if values.ndim != 1 or values.dtype.kind not in "biuf":
                raise ValueError(
                    f"per-event field {name!r} has type {ak.type(events[name])}; "
                    "only flat numbers can be kept beside axis, tracks and label"
                )
            extras[name] = values
        if "label" in fields:
            raw = _numpy(events["label"], "label")
            labels, ok = label_codes(raw)
            if check_labels and not ok.all():
                bad = int(np.flatnonzero(~ok)[0])
                raise ValueError(f"event {bad}: {describe_label(raw[bad])}")
        else:
            labels = np.full(len(axis), label, np.int32)
        return cls(
            axis=axis.astype(np.float32, copy=False),
            offsets=offsets_from_counts(counts),
            tracks=flat,
            label=labels,
            extras=extras,
            neutral_offsets=neutral_offsets,
            neutrals=neutrals,
        )


def _neutral_columns(neutrals: ak.Array) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Offsets and flat :data:`NEUTRAL_FIELDS` (float32 momenta, int32 ``pid_pdg``) of a ``neutrals`` list."""
    have = ak.fields(neutrals)
    lacking = [f for f in NEUTRAL_FIELDS if f not in have]
    if lacking:
        raise ValueError(f"neutrals have no field(s) {lacking} (fields: {have})")
    counts = _numpy(ak.num(neutrals, axis=1), NEUTRALS)
    flat = {f: _numpy(ak.flatten(neutrals[f], axis=1), f"{NEUTRALS}.{f}") for f in NEUTRAL_FIELDS}
    columns = {f: flat[f].astype(np.float32, copy=False) for f in NEUTRAL_FIELDS[:4]}
    columns["pid_pdg"] = flat["pid_pdg"].astype(np.int32, copy=False)
    return offsets_from_counts(counts), columns


def _take_lists(offsets: np.ndarray, columns: dict[str, np.ndarray],
                order: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The lists of events ``order`` of one jagged field: new offsets and flat columns (copies)."""
    counts = np.diff(offsets)[order]
    new = offsets_from_counts(counts)
    index = np.repeat(offsets[:-1][order] - new[:-1], counts) + np.arange(int(new[-1]))
    return new, {k: v[index] for k, v in columns.items()}


class ColumnsBuilder:
    """Gathers chunks of :class:`EventColumns` into one, copying each as it comes.

    Unlike :meth:`EventColumns.concat` of a list, the chunks need not all be
    kept until the end: peak memory is the result plus one chunk, not twice
    the result. :meth:`reserve` avoids regrowing when the size is foreseeable
    (room reserved but never filled is never touched, so costs no memory).
    """

    def __init__(self) -> None:
        self._store: EventColumns | None = None  # its first n_events / n_tracks rows are used
        self._want = (0, 0)
        self.n_events = 0
        self.n_tracks = 0
        self.n_neutrals = 0

    def __len__(self) -> int:
        return self.n_events

    def reserve(self, n_events: int, n_tracks: int) -> None:
        """Make room for at least ``n_events`` events holding ``n_tracks`` tracks in all."""
        self._want = (max(self._want[0], n_events), max(self._want[1], n_tracks))
        if self._store is not None:
            self._room_for(n_events, n_tracks)

    def append(self, cols: EventColumns) -> None:
        """Copy ``cols`` in (``ValueError`` if its fields differ from the first chunk's)."""
        if self._store is None:
            self._store = _storage_like(cols, max(len(cols), self._want[0]), max(cols.n_tracks, self._want[1]),
                                        cols.n_neutrals)
        elif cols.signature != self._store.signature:
            raise ValueError(
                "event chunks hold different fields: "
                f"{describe_signature(self._store.signature)} vs {describe_signature(cols.signature)}"
            )
        e0, t0 = self.n_events, self.n_tracks
        e1, t1 = e0 + len(cols), t0 + cols.n_tracks
        self._room_for(e1, t1)
        store = self._store
        store.axis[e0:e1] = cols.axis
        store.offsets[e0 + 1 : e1 + 1] = cols.offsets[1:] + t0
        store.label[e0:e1] = cols.label
        for name, values in cols.tracks.items():
            store.tracks[name][t0:t1] = values
        for name, values in cols.extras.items():
            store.extras[name][e0:e1] = values
        if cols.neutral_offsets is not None:
            n0, n1 = self.n_neutrals, self.n_neutrals + cols.n_neutrals
            store = self._neutral_room(n1)
            assert store.neutral_offsets is not None
            store.neutral_offsets[e0 + 1 : e1 + 1] = cols.neutral_offsets[1:] + n0
            for name, values in cols.neutrals.items():
                store.neutrals[name][n0:n1] = values
            self.n_neutrals = n1
        self.n_events, self.n_tracks = e1, t1

    def _neutral_room(self, n_neutrals: int) -> EventColumns:
        """The store with room for ``n_neutrals`` neutral particles (grown by half when short)."""
        store = self._store
        assert store is not None and store.neutral_offsets is not None
        capacity = len(next(iter(store.neutrals.values())))
        if n_neutrals > capacity:
            size = max(n_neutrals, capacity * 3 // 2)
            for name, values in store.neutrals.items():
                grown = np.empty(size, values.dtype)
                grown[: self.n_neutrals] = values[: self.n_neutrals]
                store.neutrals[name] = grown
        return store

    def room(self, n_events: int, n_tracks: int) -> EventColumns:
        """Storage with room for ``n_events`` / ``n_tracks`` more, for a caller to write in place.

        Rows from :attr:`n_events` / :attr:`n_tracks` on may be written; they
        count once :meth:`advance` is called (a chunk started this way holds
        the :data:`TRACK_FIELDS` only).
        """
        if self._store is None:
            self._store = _storage_like(
                EventColumns.empty(), max(n_events, self._want[0]), max(n_tracks, self._want[1]), 0
            )
        self._room_for(self.n_events + n_events, self.n_tracks + n_tracks)
        return self._store

    def advance(self, n_events: int, n_tracks: int, label: int) -> None:
        """Count rows written in place into :meth:`room` (offsets filled but the last: set here)."""
        store = self._store
        assert store is not None
        e1 = self.n_events + n_events
        store.label[self.n_events : e1] = label
        self.n_events, self.n_tracks = e1, self.n_tracks + n_tracks
        store.offsets[e1] = self.n_tracks

    def build(self) -> EventColumns:
        """The gathered events (views of the filled part of the storage)."""
        if self._store is None:
            return EventColumns.empty()
        built = self._store.slice(0, self.n_events)
        if built.neutral_offsets is not None:
            built.neutrals = {k: v[: self.n_neutrals] for k, v in built.neutrals.items()}
        return built

    def _room_for(self, n_events: int, n_tracks: int) -> None:
        old = self._store
        assert old is not None
        if n_events <= len(old) and n_tracks <= old.n_tracks:
            return
        new = _storage_like(old, max(n_events, len(old) * 3 // 2), max(n_tracks, old.n_tracks * 3 // 2), 0)
        e, t = self.n_events, self.n_tracks
        if old.neutral_offsets is not None and new.neutral_offsets is not None:
            new.neutral_offsets[: e + 1] = old.neutral_offsets[: e + 1]
            new.neutrals = old.neutrals
        new.axis[:e] = old.axis[:e]
        new.offsets[: e + 1] = old.offsets[: e + 1]
        new.label[:e] = old.label[:e]
        for name in new.tracks:
            new.tracks[name][:t] = old.tracks[name][:t]
        for name in new.extras:
            new.extras[name][:e] = old.extras[name][:e]
        self._store = new


def _storage_like(cols: EventColumns, n_events: int, n_tracks: int, n_neutrals: int) -> EventColumns:
    """Uninitialised room for the fields of ``cols`` (``offsets[-1]`` = ``n_tracks``: the capacity)."""
    offsets = np.zeros(n_events + 1, np.int64)
    offsets[-1] = n_tracks
    neutral_offsets = None if cols.neutral_offsets is None else np.zeros(n_events + 1, np.int64)
    return EventColumns(
        neutral_offsets=neutral_offsets,
        neutrals={k: np.empty(max(n_neutrals, 1), v.dtype) for k, v in cols.neutrals.items()},
        axis=np.empty((n_events, 3), np.float32),
        offsets=offsets,
        tracks={k: np.empty(n_tracks, v.dtype) for k, v in cols.tracks.items()},
        label=np.empty(n_events, np.int32),
        extras={k: np.empty(n_events, v.dtype) for k, v in cols.extras.items()},
    )


def _numpy(values: ak.Array, what: str) -> np.ndarray:
    try:
        return np.asarray(ak.to_numpy(values, allow_missing=False))
    except ValueError as err:
        raise ValueError(f"{what}: cannot be read as a flat array of numbers ({err})") from None


def describe_signature(signature: tuple) -> str:
    """``"tracks{E:f4,...} extras{...}"``: readable form of :attr:`EventColumns.signature`."""
    tracks, extras = signature[:2]
    text = "tracks{" + ",".join(f"{k}:{d.lstrip('<>|=')}" for k, d in tracks) + "}"
    if extras:
        text += " events{" + ",".join(f"{k}:{d.lstrip('<>|=')}" for k, d in extras) + "}"
    if len(signature) > 2:
        text += " neutrals{" + ",".join(f"{k}:{d.lstrip('<>|=')}" for k, d in signature[2]) + "}"
    return text
