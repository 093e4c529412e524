"""The reconstructed particles of an EDM4hep chunk and the per-track fields of those with a track.

What :mod:`flavortag.io.edm4hep` makes records of (its docstring and
docs/FORMAT.md give the fields and conventions): each particle's kinematics,
charge, PDG hypothesis and track (the track's state at the IP, else its first
state), and for tracks the point of closest approach, the measured sigma(d0)
and sigma(z0) from the covariance, omega and dN/dx. Bad input is flagged in
:class:`~flavortag.io.edm4hep_relations.Problems` with the collection named.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flavortag.io.edm4hep_layout import Layout
from flavortag.io.edm4hep_relations import Chunk, Problems, resolve_relation
from flavortag.ragged import event_index

#: ``TrackState.location`` of the state at the interaction point.
AT_IP: int = 1
#: Covariance numbers of (D0, D0) and (Z0, Z0) in the lower triangle (15 and 21 elements alike).
COV_D0_D0, COV_Z0_Z0 = 0, 9


@dataclass
class Particles:
    """The reconstructed particles of a chunk: kinematics, charge, and their track (global rows)."""

    def momenta(self, rows: np.ndarray) -> np.ndarray:
        """``[len(rows), 3]`` float64 px, py, pz of particles ``rows``."""
        return np.stack([self.p4[k][rows] for k in (1, 2, 3)], axis=1).astype(np.float64)

    offsets: np.ndarray
    event: np.ndarray
    p4: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # E, px, py, pz (float32 columns)
    charge: np.ndarray
    pid: np.ndarray
    is_track: np.ndarray  # charged with a track
    state: np.ndarray  # global track-state row of each particle (valid where is_track)
    track: np.ndarray  # global track row


def particles(chunk: Chunk, layout: Layout, problems: Problems, path: str) -> Particles:
    """The reconstructed particles of ``chunk`` and the global row of each one's track and track state."""
    P, T = layout.particles, layout.tracks
    offsets = chunk.offsets(layout.leaf(P, "energy"))
    event = event_index(np.diff(offsets))
    e, px, py, pz = (chunk.values(layout.leaf(P, m)).astype(np.float32, copy=False)
                     for m in ("energy", "momentum.x", "momentum.y", "momentum.z"))
    charge = chunk.values(layout.leaf(P, "charge"))
    tracks = resolve_relation(chunk, layout, P, "tracks", T, problems, path)
    is_track = (charge != 0) & (tracks.end > tracks.begin)
    track = np.where(is_track, tracks.first, 0)
    # track -> its state at the IP (else its first state)
    trk_off = chunk.offsets(layout.leaf(T, "trackStates_begin"))
    trk_event = event_index(np.diff(trk_off))
    st_off, location = chunk.column(layout.state("location"))
    s_begin = chunk.values(layout.leaf(T, "trackStates_begin")).astype(np.int64)
    s_end = chunk.values(layout.leaf(T, "trackStates_end")).astype(np.int64)
    n_states = np.diff(st_off)[trk_event]
    needed = np.zeros(len(s_begin), bool)
    needed[track[is_track]] = True
    missing = needed & (s_end <= s_begin)
    problems.add(missing, trk_event, "track state missing", lambda t: (
        f"{T}: track {t - trk_off[trk_event[t]]} has no track state ({layout.states})"))
    beyond = needed & ~missing & ((s_begin < 0) | (s_end > n_states))
    problems.add(beyond, trk_event, "relation out of range", lambda t: (
        f"{T}: track {t - trk_off[trk_event[t]]}: trackStates {s_begin[t]}..{s_end[t]} beyond the "
        f"{n_states[t]} entries of {layout.states}"))
    ok = needed & ~missing & ~beyond
    first = np.where(ok, s_begin, 0) + st_off[trk_event]
    chosen = first.copy()
    # a track with several states: the AtIP one where there is one
    multi = np.flatnonzero(ok & (s_end - s_begin > 1))
    if len(multi):
        lengths = (s_end - s_begin)[multi]
        owner = np.repeat(multi, lengths)
        rows = first[owner] + (np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths))
        at_ip = location[rows] == AT_IP
        owners, where = np.unique(owner[at_ip], return_index=True)
        chosen[owners] = rows[at_ip][where]
    return Particles(offsets=offsets, event=event, p4=(e, px, py, pz), charge=charge,
                      pid=chunk.values(layout.leaf(P, layout.pdg_member)).astype(np.int32),
                      is_track=is_track, state=chosen[track], track=track)


def track_fields(chunk: Chunk, layout: Layout, parts: Particles, rows: np.ndarray, problems: Problems,
                  path: str) -> dict[str, np.ndarray]:
    """Per-track fields of particles ``rows`` (global rows of tracks with a track)."""
    state = parts.state[rows]
    event = parts.event[rows]
    get = {m: chunk.values(layout.state(m))[state] for m in
           ("D0", "phi", "omega", "Z0", "tanLambda", "referencePoint.x", "referencePoint.y", "referencePoint.z")}
    cov = chunk.values(layout.state(layout.cov_member))
    if cov.ndim == 1:  # flattened per event (a copy written by uproot): 15 or 21 numbers per state
        cov = cov.reshape(len(chunk.values(layout.state("D0"))), -1)
    var_d0, var_z0 = cov[state, COV_D0_D0], cov[state, COV_Z0_Z0]
    finite = np.ones(len(rows), bool)
    for values in get.values():
        finite &= np.isfinite(values)
    def local(t: int) -> int:  # the particle's number in its event (for messages)
        return int(rows[t] - parts.offsets[event[t]])

    problems.add(~finite, event, "non-finite track parameters", lambda t: (
        f"{layout.states}: the state of particle {local(t)} ({layout.particles}) has non-finite parameters "
        + ", ".join(f"{k}={float(v[t])}" for k, v in get.items() if not np.isfinite(v[t]))))
    with np.errstate(invalid="ignore"):
        bad_var = ~((var_d0 >= 0) & (var_z0 >= 0))
    problems.add(bad_var & finite, event, "negative variance", lambda t: (
        f"{layout.states}: the covariance of particle {local(t)} ({layout.particles}) has "
        f"var(D0) = {float(var_d0[t])}, var(Z0) = {float(var_z0[t])} mm^2"))
    d0, phi = get["D0"].astype(np.float64), get["phi"].astype(np.float64)
    with np.errstate(invalid="ignore"):
        fields = {
            "E": parts.p4[0][rows], "px": parts.p4[1][rows], "py": parts.p4[2][rows], "pz": parts.p4[3][rows],
            "x": (get["referencePoint.x"] - d0 * np.sin(phi)).astype(np.float32),
            "y": (get["referencePoint.y"] + d0 * np.cos(phi)).astype(np.float32),
            "z": (get["referencePoint.z"] + get["Z0"].astype(np.float64)).astype(np.float32),
            "charge": np.rint(parts.charge[rows]).astype(np.int8),
            "omega": get["omega"].astype(np.float32),
            "sigma_d0": np.sqrt(np.maximum(var_d0, 0)).astype(np.float32),
            "sigma_z0": np.sqrt(np.maximum(var_z0, 0)).astype(np.float32),
            "pid_pdg": parts.pid[rows],
        }
    if layout.dndx:
        fields["dndx"] = _dndx(chunk, layout, parts, rows, problems, path)
    return fields


def _dndx(chunk: Chunk, layout: Layout, parts: Particles, rows: np.ndarray, problems: Problems,
          path: str) -> np.ndarray:
    """dN/dx of each track (NaN where the RecDqdx collection has none for it)."""
    assert layout.dndx is not None
    branch = f"_{layout.dndx}_track"
    off, index = chunk.column(f"{branch}.index")
    value = chunk.values(layout.leaf(layout.dndx, "dQdx.value"))
    ev = event_index(np.diff(off))
    trk_off = chunk.offsets(layout.leaf(layout.tracks, "trackStates_begin"))
    n_tracks = np.diff(trk_off)[ev]
    out = (index < 0) | (index >= n_tracks)
    problems.add(out, ev, "relation out of range", lambda s: (
        f"{branch}: index {index[s]} out of range: the event has {n_tracks[s]} {layout.tracks}"))
    per_track = np.full(int(trk_off[-1]), np.nan, np.float32)
    per_track[(trk_off[ev] + index)[~out]] = value[~out]
    return per_track[parts.track[rows]]
