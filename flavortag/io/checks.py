"""Physics checks on event values, vectorised, shared by every reader.

A track row is accepted when all seven numbers are finite float32 values
within ``+-MAX_ABS_VALUE`` (1e18 GeV or mm: far beyond any collider or
detector, and small enough that a product of two values, such as ``px * px``
in ``|p|`` or ``x * py`` in ``d0``, stays finite in float32, whose largest
value is 3.4e38), ``E >= 0`` and ``E >= |p|`` up to rounding:

    E + ENERGY_TOLERANCE_ABS_GEV >= |p| * (1 - ENERGY_TOLERANCE_REL)

The tolerance (1e-5 GeV plus 1e-5 relative) covers the 7 significant digits
of ``%e`` text (relative error 5e-7 per number) and float32 storage (6e-8),
with room to spare, and is far below the pion-mass gap ``E - |p|`` of any
track that is not ultra-relativistic to 1e-5. An axis is accepted when its
three numbers are finite and ``| |axis| - 1 | <= AXIS_NORM_TOLERANCE`` (1e-3:
generous against text rounding, strict enough to catch a non-unit vector or
a track row mistaken for an axis).

The same float32 arithmetic is used by the fast path, the careful text parser
and the binary readers, so they can never disagree on a row.
"""

from __future__ import annotations

import math

import numpy as np

from flavortag.classes import N_LABELS, describe_label
from flavortag.io.columns import TRACK_FIELDS, UNKNOWN_LABEL, EventColumns
from flavortag.io.errors import EventFormatError, OnError, ReadReport, format_location

ENERGY_TOLERANCE_ABS_GEV: float = 1e-5
ENERGY_TOLERANCE_REL: float = 1e-5
AXIS_NORM_TOLERANCE: float = 1e-3
#: Largest |value| of a track number (GeV for E, px, py, pz; mm for x, y, z): see the module doc.
MAX_ABS_VALUE: float = 1e18

_TOL_ABS = np.float32(ENERGY_TOLERANCE_ABS_GEV)
_ONE_MINUS_TOL_REL = np.float32(1.0 - ENERGY_TOLERANCE_REL)
_AXIS_TOL = np.float32(AXIS_NORM_TOLERANCE)
_MAX_ABS = np.float32(MAX_ABS_VALUE)
_UNITS = {"E": "GeV", "px": "GeV", "py": "GeV", "pz": "GeV", "x": "mm", "y": "mm", "z": "mm"}


def momentum(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
    """``|p|`` in float32 (the arithmetic every check uses)."""
    return np.sqrt(px * px + py * py + pz * pz)


def energy_ok_mask(E: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
    """Rows with ``E >= |p|`` up to the tolerance (False where any input is NaN or |p| infinite)."""
    with np.errstate(invalid="ignore", over="ignore"):
        p = np.multiply(px, px)
        tmp = np.multiply(py, py)
        p += tmp
        np.multiply(pz, pz, out=tmp)
        p += tmp
        np.sqrt(p, out=p)
        p *= _ONE_MINUS_TOL_REL
        np.add(E, _TOL_ABS, out=tmp)
        return np.greater_equal(tmp, p, out=np.empty(len(E), bool))


def track_ok_mask(
    E: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray,
    x: np.ndarray, y: np.ndarray, z: np.ndarray,
) -> np.ndarray:
    """Boolean mask of acceptable track rows (float32 inputs; see the module docstring)."""
    ok = energy_ok_mask(E, px, py, pz)
    with np.errstate(invalid="ignore"):
        ok &= E >= 0
        for values in (E, px, py, pz, x, y, z):  # NaN compares False, inf is beyond the limit
            ok &= np.abs(values) <= _MAX_ABS
    return ok


def tracks_all_ok(
    E: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray,
    x: np.ndarray, y: np.ndarray, z: np.ndarray,
) -> bool:
    """``track_ok_mask(...).all()``, quicker: minima and maxima instead of masks where they suffice.

    Never says True wrongly; the caller falls back to :func:`track_ok_mask`
    to find the rows that fail.
    """
    if not len(E):
        return True
    with np.errstate(invalid="ignore", over="ignore"):
        # NaN makes a minimum or maximum NaN, which compares False; inf is beyond the limit.
        if not (E.min() >= 0 and E.max() <= _MAX_ABS):
            return False
        for values in (x, y, z):
            if not (values.min() >= -_MAX_ABS and values.max() <= _MAX_ABS):
                return False
        # |p| <= E + tolerance <= MAX_ABS_VALUE + tolerance bounds px, py and pz too.
        return bool(energy_ok_mask(E, px, py, pz).all())


def axis_ok_mask(ax: np.ndarray, ay: np.ndarray, az: np.ndarray) -> np.ndarray:
    """Boolean mask of acceptable axes: finite unit 3-vectors (float32 inputs)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.abs(momentum(ax, ay, az) - np.float32(1.0)) <= _AXIS_TOL


def describe_track(values: np.ndarray) -> tuple[str, str]:
    """``(kind, message)`` for a rejected track row (7 float32 values, E px py pz x y z)."""
    for name, value in zip(TRACK_FIELDS, values):
        if not math.isfinite(float(value)):
            return "non-finite number", f"track {name} = {float(value)} is not a finite float32 number"
    for name, value in zip(TRACK_FIELDS, values):
        if abs(float(value)) > MAX_ABS_VALUE:
            unit = _UNITS[name]
            return "value out of range", (
                f"track {name} = {float(value):.7g} {unit} is out of range: |{name}| <= "
                f"{MAX_ABS_VALUE:g} {unit} (larger values overflow float32 products such as px*px in |p| or x*py in d0)"
            )
    E = values[0]
    if E < 0:
        return "negative energy", f"negative energy E = {float(E):.7g} GeV"
    with np.errstate(over="ignore"):
        p = float(momentum(values[1:2], values[2:3], values[3:4])[0])
    return "energy below momentum", (
        f"energy below momentum: E = {float(E):.7g} GeV < |p| = {p:.7g} GeV "
        f"(tolerance {ENERGY_TOLERANCE_ABS_GEV:g} GeV + {ENERGY_TOLERANCE_REL:g} |p|)"
    )


def describe_axis(values: np.ndarray) -> tuple[str, str]:
    """``(kind, message)`` for a rejected axis (3 float32 values)."""
    if not np.isfinite(values).all():
        return "non-finite number", f"axis {[float(v) for v in values]} holds a non-finite number"
    with np.errstate(over="ignore"):
        norm = float(momentum(values[0:1], values[1:2], values[2:3])[0])
    return "axis not a unit vector", (
        f"axis is not a unit vector: |axis| = {norm:.7g} (tolerance {AXIS_NORM_TOLERANCE:g})"
    )


def screen_columns(
    cols: EventColumns,
    path: str,
    on_error: OnError,
    report: ReadReport,
    first_entry: int = 0,
    raw_labels: np.ndarray | None = None,
) -> EventColumns:
    """Check the values of events read from a binary file (entries numbered from ``first_entry``).

    Labels must be a class index or -1 (unknown); ``raw_labels``, the stored
    values before conversion (e.g. strings), only serve the message. Raises
    :class:`EventFormatError` at the first bad event, or with
    ``on_error="skip"`` drops the bad events, accounts for them in ``report``
    and returns the rest.
    """
    t = cols.tracks
    track_values = [t[name] for name in TRACK_FIELDS]
    axis_ok = axis_ok_mask(cols.axis[:, 0], cols.axis[:, 1], cols.axis[:, 2])
    label_ok = (cols.label >= UNKNOWN_LABEL) & (cols.label < N_LABELS)
    if axis_ok.all() and label_ok.all() and tracks_all_ok(*track_values):
        return cols
    track_ok = track_ok_mask(*track_values)
    bad_tracks = np.flatnonzero(~track_ok)
    event_of_bad_track = np.searchsorted(cols.offsets, bad_tracks, side="right") - 1
    bad_events = np.union1d(np.union1d(np.flatnonzero(~axis_ok), np.flatnonzero(~label_ok)),
                            event_of_bad_track)
    for event in bad_events:
        if not label_ok[event]:
            raw = cols.label[event] if raw_labels is None else raw_labels[event]
            kind, message = "label not a class", describe_label(raw)
        elif not axis_ok[event]:
            kind, message = describe_axis(cols.axis[event])
        else:
            track = bad_tracks[np.searchsorted(event_of_bad_track, event)]
            kind, message = describe_track(np.array([v[track] for v in track_values]))
            message = f"track {track - cols.offsets[event]}: {message}"
        entry = first_entry + int(event)
        if on_error == "raise":
            raise EventFormatError(path, None, message, entry=entry)
        report.drop(kind, format_location(path, entry=entry) + message)
    keep = np.ones(len(cols), bool)
    keep[bad_events] = False
    return cols.select(keep)
