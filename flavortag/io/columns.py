"""The event layout, as flat numpy columns (:class:`EventColumns`) and as an awkward Array.

Every reader produces :class:`EventColumns` (no Python loop over events) and
every writer consumes them; :meth:`EventColumns.to_awkward` builds the array
the user sees without copying:

* ``axis``: ``3 * float32`` (unit thrust axis),
* ``tracks``: ``var * {E, px, py, pz, x, y, z: float32, <extras>}`` (GeV, GeV, mm),
* ``label``: ``int32`` (0 uds, 1 cc, 2 bb; -1 for an unknown class),
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
#: ``label`` value of events whose class is not known (``label="unknown"``).
UNKNOWN_LABEL: int = -1


@dataclass
class EventColumns:
    """Events as flat arrays: ``n`` events holding ``offsets[-1]`` tracks in all.

    ``axis`` float32 ``[n, 3]``; ``offsets`` int64 ``[n + 1]`` (tracks of event
    ``i`` are rows ``offsets[i]:offsets[i + 1]``, ``offsets[0] == 0``); ``tracks`` name -> flat
    array over all tracks (the :data:`TRACK_FIELDS` first, float32, then any
    extra per-track fields); ``label`` int32 ``[n]``; ``extras`` name -> flat
    ``[n]`` array of extra per-event fields.
    """

    axis: np.ndarray
    offsets: np.ndarray
    tracks: dict[str, np.ndarray]
    label: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.label)

    @property
    def n_tracks(self) -> int:
        """Number of tracks in all events."""
        return int(self.offsets[-1])

    @property
    def signature(self) -> tuple:
        """Field names and dtypes: chunks with the same signature can be concatenated."""
        return (
            tuple((k, v.dtype.str) for k, v in self.tracks.items()),
            tuple((k, v.dtype.str) for k, v in self.extras.items()),
        )

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
        return EventColumns(
            axis=self.axis[start:stop],
            offsets=self.offsets[start : stop + 1] - lo,
            tracks={k: v[lo:hi] for k, v in self.tracks.items()},
            label=self.label[start:stop],
            extras={k: v[start:stop] for k, v in self.extras.items()},
        )

    def select(self, keep: np.ndarray) -> EventColumns:
        """The events where the boolean mask ``keep`` is True (copies)."""
        counts = np.diff(self.offsets)
        track_keep = np.repeat(keep, counts)
        return EventColumns(
            axis=self.axis[keep],
            offsets=offsets_from_counts(counts[keep]),
            tracks={k: v[track_keep] for k, v in self.tracks.items()},
            label=self.label[keep],
            extras={k: v[keep] for k, v in self.extras.items()},
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
        return EventColumns(
            axis=np.concatenate([p.axis for p in parts]),
            offsets=offsets_from_counts(counts),
            tracks={k: np.concatenate([p.tracks[k] for p in parts]) for k in first.tracks},
            label=np.concatenate([p.label for p in parts]),
            extras={k: np.concatenate([p.extras[k] for p in parts]) for k in first.extras},
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
        contents += [ak.contents.NumpyArray(v) for v in self.extras.values()]
        names = list(EVENT_FIELDS) + list(self.extras)
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
        extras = {}
        for name in fields:
            if name in EVENT_FIELDS:
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
        )


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
            self._store = _storage_like(cols, max(len(cols), self._want[0]), max(cols.n_tracks, self._want[1]))
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
        self.n_events, self.n_tracks = e1, t1

    def room(self, n_events: int, n_tracks: int) -> EventColumns:
        """Storage with room for ``n_events`` / ``n_tracks`` more, for a caller to write in place.

        Rows from :attr:`n_events` / :attr:`n_tracks` on may be written; they
        count once :meth:`advance` is called (a chunk started this way holds
        the :data:`TRACK_FIELDS` only).
        """
        if self._store is None:
            self._store = _storage_like(
                EventColumns.empty(), max(n_events, self._want[0]), max(n_tracks, self._want[1])
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
        return EventColumns.empty() if self._store is None else self._store.slice(0, self.n_events)

    def _room_for(self, n_events: int, n_tracks: int) -> None:
        old = self._store
        assert old is not None
        if n_events <= len(old) and n_tracks <= old.n_tracks:
            return
        new = _storage_like(old, max(n_events, len(old) * 3 // 2), max(n_tracks, old.n_tracks * 3 // 2))
        e, t = self.n_events, self.n_tracks
        new.axis[:e] = old.axis[:e]
        new.offsets[: e + 1] = old.offsets[: e + 1]
        new.label[:e] = old.label[:e]
        for name in new.tracks:
            new.tracks[name][:t] = old.tracks[name][:t]
        for name in new.extras:
            new.extras[name][:e] = old.extras[name][:e]
        self._store = new


def _storage_like(cols: EventColumns, n_events: int, n_tracks: int) -> EventColumns:
    """Uninitialised room for the fields of ``cols`` (``offsets[-1]`` = ``n_tracks``: the capacity)."""
    offsets = np.zeros(n_events + 1, np.int64)
    offsets[-1] = n_tracks
    return EventColumns(
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
    tracks, extras = signature
    text = "tracks{" + ",".join(f"{k}:{d.lstrip('<>|=')}" for k, d in tracks) + "}"
    if extras:
        text += " events{" + ",".join(f"{k}:{d.lstrip('<>|=')}" for k, d in extras) + "}"
    return text
