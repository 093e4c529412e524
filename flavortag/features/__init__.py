"""Per-track and per-event features of flavour-tagging events (numpy / awkward; torch for export).

The physics is written once (:mod:`.padded`, :mod:`.event`, :mod:`.probability`)
against :mod:`flavortag.array_ops` on padded events: numpy computes it here
(torch is never imported), torch traces the same code into the raw-input ONNX
graph (:mod:`flavortag.export_raw`).

``track_features(events, detector=None, names=TRACK_FEATURES)`` returns
``var * {name: float32}`` with the jagged structure of ``events.tracks``;
``event_features(events, detector=None, names=EVENT_FEATURES)`` returns float32
``[n_events, G]``. Features are chosen by name (lists come from config);
``FEATURE_GROUPS`` (group name -> names; track and event groups have distinct
names), ``expand_feature_names`` (config entries that are names or groups) and
``select_features`` (defaults minus / restricted to groups) serve ablation studies. Unknown names raise ``ValueError`` listing the known ones.

Per-track (default ``TRACK_FEATURES``, 16): ``log_e_gev``, ``log_p_gev``,
``log_pt_gev``, ``cos_theta``, ``log_e_frac_hemi``, ``log_p_frac_hemi`` (energy
/ momentum fraction in the track's hemisphere), ``angle_axis_rad``,
``hemisphere`` (+1 if p.axis >= 0), ``ptrel_gev``, ``dphi_axis_rad``,
``dtheta_axis_rad``, ``signed_d0_log1p_um``, ``signed_z0_log1p_um``,
``signed_d0_sig_log``, ``signed_z0_sig_log``, ``signed_ip3d_sig_log``; also
available: raw ``d0_mm``, ``z0_mm``, lifetime-signed ``signed_d0_mm``,
``signed_z0_mm``, resolutions ``sigma_d0_mm``, ``sigma_z0_mm``, significances
``d0_sig``, ``z0_sig``, ``signed_d0_sig``, ``signed_z0_sig``, ``ip3d_sig``,
``signed_ip3d_sig``, ``log_ptrel_gev``.

Per-event (default ``EVENT_FEATURES``, 27): multiplicities (all tracks, tracks
with lifetime-signed d0 significance above 2, 3, 5, tracks failing the
lifetime selection |d0| < 2 mm, |z0| < 10 mm), thrust, visible energy, for each
hemisphere (hem1 = the more b-like) the three leading signed d0
significances, the number, invariant mass, corrected mass and energy fraction
of displaced tracks (signed sig > 3), the log10 joint prompt probability from
d0 and z0, and event-level combinations; significance-based features use the
lifetime tracks only. Missing values have finite defaults (-5 for a missing
significance, 0 for masses, fractions, log10 probabilities of empty sets and
thrust of an empty event).

The full table (name, definition, unit) is docs/FEATURES.md; the
``TRACK_FEATURE_SPECS`` / ``EVENT_FEATURE_SPECS`` dictionaries carry the same.
Sign and impact-parameter conventions are in :mod:`flavortag.features.track`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import awkward as ak
import numpy as np

from flavortag.detector import DetectorModel
from flavortag.features.event import (
    DISPLACED_SIG_MIN,
    EVENT_FEATURE_SPECS,
    EVENT_FEATURES,
    MISSING_SIGNIFICANCE,
    PID_EVENT_FEATURES,
    EventQuantities,
    check_event_feature_names,
    event_feature_matrix,
    event_features,
    padded_event_features,
)
from flavortag.features.padded import PaddedTracks
from flavortag.features.probability import (
    LOG10_JPROB_FLOOR,
    log10_joint_probability,
    log_prompt_probability,
)
from flavortag.features.track import (
    PARTICLE_FLOW_FEATURES,
    TRACK_FEATURE_SPECS,
    TRACK_FEATURES,
    VECTOR_FIELDS,
    FeatureSpec,
    TrackQuantities,
    check_track_feature_names,
    jagged_records,
    padded_track_features,
    track_feature_columns,
    track_features,
)

FeatureKind = Literal["track", "event"]


def _groups(specs: dict[str, FeatureSpec]) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for name, spec in specs.items():
        out.setdefault(spec.group, []).append(name)
    return {g: tuple(v) for g, v in out.items()}


TRACK_FEATURE_GROUPS: dict[str, tuple[str, ...]] = _groups(TRACK_FEATURE_SPECS)
EVENT_FEATURE_GROUPS: dict[str, tuple[str, ...]] = _groups(EVENT_FEATURE_SPECS)
if set(TRACK_FEATURE_GROUPS) & set(EVENT_FEATURE_GROUPS):  # pragma: no cover - a coding error
    raise RuntimeError("track and event feature groups must have distinct names")

#: Named groups of features, track and event groups together (names are unique across
#: both; every known feature is in exactly one group): group name -> tuple of feature names.
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {**TRACK_FEATURE_GROUPS, **EVENT_FEATURE_GROUPS}


def _kind_tables(kind: str) -> tuple[dict[str, tuple[str, ...]], dict[str, FeatureSpec],
                                     tuple[str, ...]]:
    if kind == "track":
        return TRACK_FEATURE_GROUPS, TRACK_FEATURE_SPECS, TRACK_FEATURES
    if kind == "event":
        return EVENT_FEATURE_GROUPS, EVENT_FEATURE_SPECS, EVENT_FEATURES
    raise ValueError(f"unknown feature kind {kind!r}; use 'track' or 'event'")


def expand_feature_names(kind: FeatureKind, entries: Iterable[str] | None) -> tuple[str, ...]:
    """Names from a config list whose entries are feature names or group names of ``kind``.

    None gives the default list. Groups expand to all their members in table
    order; duplicates are dropped (first occurrence kept). Unknown entries raise
    ``ValueError`` listing the known features and groups.
    """
    groups, specs, defaults = _kind_tables(kind)
    if entries is None:
        return defaults
    if isinstance(entries, str):
        entries = [entries]
    out: list[str] = []
    for entry in entries:
        if entry in groups:
            members = list(groups[entry])
        elif entry in specs:
            members = [entry]
        else:
            raise ValueError(f"unknown {kind} feature or group {entry!r}; groups: {sorted(groups)}; "
                             f"features: {sorted(specs)}")
        out += [m for m in members if m not in out]
    return tuple(out)


def select_features(
    kind: FeatureKind,
    groups: Iterable[str] | None = None,
    drop_groups: Iterable[str] = (),
    drop: Iterable[str] = (),
    add: Iterable[str] = (),
) -> tuple[str, ...]:
    """Feature names for an ablation: the defaults of ``kind``, restricted / reduced by group.

    Start from ``TRACK_FEATURES`` or ``EVENT_FEATURES``; keep only those in
    ``groups`` (if given); remove those in ``drop_groups`` and in ``drop``;
    append ``add`` (any known names not already present). Unknown group or
    feature names raise ``ValueError``.
    """
    table, specs, defaults = _kind_tables(kind)
    check = check_track_feature_names if kind == "track" else check_event_feature_names
    groups = None if groups is None else list(groups)
    drop_groups = list(drop_groups)
    bad = [g for g in (groups or []) + drop_groups if g not in table]
    if bad:
        raise ValueError(f"unknown {kind} feature groups {bad}; known: {sorted(table)}")
    drop = set(check(tuple(drop)))
    add = check(tuple(add))
    names = [
        n for n in defaults
        if (groups is None or specs[n].group in groups)
        and specs[n].group not in drop_groups and n not in drop
    ]
    names += [n for n in add if n not in names]
    return tuple(names)


def compute_features(
    events: ak.Array,
    track_names: Sequence[str] = TRACK_FEATURES,
    event_names: Sequence[str] | None = EVENT_FEATURES,
    detector: DetectorModel | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Track and event features in one pass (shared intermediate quantities).

    Returns ``(track_columns, offsets, event_matrix)``: flat float32
    ``[n_tracks_total, len(track_names)]``, int64 event offsets ``[n + 1]`` into
    it, and float32 ``[n, len(event_names)]`` (None when ``event_names`` is None).
    """
    track_names = check_track_feature_names(track_names)
    with_particle = (any(n in PARTICLE_FLOW_FEATURES for n in track_names)
                     or any(n in PID_EVENT_FEATURES for n in event_names or ()))
    q = TrackQuantities(events, detector, with_particle=with_particle)
    columns = track_feature_columns(q, track_names)
    matrix = None if event_names is None else event_feature_matrix(q, event_names)
    return columns, q.offsets, matrix


__all__ = [
    "DISPLACED_SIG_MIN", "EVENT_FEATURES", "EVENT_FEATURE_GROUPS", "EVENT_FEATURE_SPECS",
    "FEATURE_GROUPS", "LOG10_JPROB_FLOOR", "MISSING_SIGNIFICANCE", "TRACK_FEATURES",
    "TRACK_FEATURE_GROUPS", "TRACK_FEATURE_SPECS", "VECTOR_FIELDS", "EventQuantities",
    "FeatureSpec", "PaddedTracks", "TrackQuantities", "compute_features", "event_features",
    "expand_feature_names", "jagged_records", "padded_event_features", "padded_track_features",
    "log10_joint_probability", "log_prompt_probability", "select_features", "track_features",
]
