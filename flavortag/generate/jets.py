"""Jets of generated events: exclusive Durham clustering (fastjet), track assignment, truth labels.

For every event of a chunk (all at once, through fastjet's awkward interface):

1. **Clustering inputs**: all visible final-state particles of the Pythia
   record (status > 0, neutrinos 12/14/16 excluded), at *truth* level (true
   four-momenta, neutral hadrons and photons included: the detector model
   only smears charged tracks, see ``docs/FORMAT.md``).
2. **Clustering**: exclusive ``ee_kt`` (Durham) into exactly ``n_jets`` jets
   (E-scheme recombination), ``fastjet.ClusterSequence(...).exclusive_jets(n)``.
   Jets of an event are ordered by energy (jet 0 the most energetic).
3. **Tracks**: each reconstructed track (:mod:`.detector_sim`) goes to the jet
   that holds its true particle; a fake track (no particle) to the jet
   nearest in angle. The jet record is the event layout with ``axis`` = the
   jet's unit momentum direction (not sign-flipped).
4. **Label** (the heaviest hadron among the jet's ancestors): a jet is **b**
   (2) when any of its constituents descends from a b hadron, else **c** (1)
   when any descends from a c hadron, else **light** (0); a light jet of an
   ``H -> gg`` event is **g** (3). Ancestry is :func:`.record.heavy_ancestor_bits`
   (the ``mother1`` chain, as the per-track ``origin``). A gluon splitting
   ``g -> b bbar`` thus makes a b jet in an ``H -> gg`` event; the fraction of
   jets whose label differs from the forced decay is what ``flavortag info``
   reports (column ``decay_class``).

No Python loop over events or particles except inside fastjet.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from flavortag.classes import BB, CC, GG, SS, UDS
from flavortag.generate import record as rec
from flavortag.generate.detector_sim import Tracks
from flavortag.ragged import event_index, offsets_from_counts

#: PDG codes that are invisible to the detector (neutrinos).
INVISIBLE_PDG: tuple[int, ...] = (12, 14, 16)
#: Per-jet fields written beside ``axis, tracks, label`` (docs/FORMAT.md).
JET_FIELDS: tuple[str, ...] = ("jet_E", "jet_mass", "n_constituents", "event", "jet", "decay_class")


def visible_final_state(record: rec.EventRecord) -> np.ndarray:
    """Rows of ``record`` that are visible final-state particles (status > 0, not a neutrino)."""
    invisible = np.isin(np.abs(record.pdg), INVISIBLE_PDG)
    return np.flatnonzero((record.status > 0) & ~invisible)


@dataclass(frozen=True)
class Clustering:
    """Exclusive jets of many events: ``jets[e, j] = (px, py, pz, E)`` (GeV), energy-ordered.

    ``assignment[i]`` is the jet (0..n_jets-1, within its event) of input
    particle ``i``; ``n_constituents[e, j]`` the particles of each jet.
    """

    jets: np.ndarray
    assignment: np.ndarray
    n_constituents: np.ndarray


def cluster_exclusive(p4: np.ndarray, offsets: np.ndarray, n_jets: int) -> Clustering:
    """Durham (``ee_kt``) exclusive clustering of each event into ``n_jets`` jets with fastjet.

    ``p4`` is ``[n_particles, 4]`` (px, py, pz, E in GeV) for all events back to
    back, event ``k`` owning rows ``offsets[k]:offsets[k+1]``; every event needs
    at least ``n_jets`` particles (``ValueError`` otherwise).
    """
    import awkward as ak
    import fastjet

    p4 = np.asarray(p4, dtype=np.float64).reshape(-1, 4)
    offsets = np.asarray(offsets, dtype=np.int64)
    counts = np.diff(offsets)
    n_events = len(counts)
    if n_events and counts.min() < n_jets:
        bad = int(np.flatnonzero(counts < n_jets)[0])
        raise ValueError(f"event {bad} has {int(counts[bad])} particles, fewer than n_jets={n_jets}")
    if n_events == 0:
        return Clustering(np.zeros((0, n_jets, 4)), np.zeros(0, np.int64), np.zeros((0, n_jets), np.int64))
    particles = ak.unflatten(
        ak.zip({"px": p4[:, 0], "py": p4[:, 1], "pz": p4[:, 2], "E": p4[:, 3]}), counts)
    definition = fastjet.JetDefinition0Param(fastjet.ee_kt_algorithm)
    with warnings.catch_warnings():  # fastjet warns for exclusive jets of any algorithm but kt/CA
        warnings.simplefilter("ignore", UserWarning)
        sequence = fastjet.ClusterSequence(particles, definition)
        jets = sequence.exclusive_jets(n_jets)
        constituents = sequence.exclusive_jets_constituent_index(n_jets)
    jet_p4 = np.stack([ak.to_numpy(ak.flatten(jets[f])) for f in ("px", "py", "pz", "E")], axis=1)
    jet_p4 = jet_p4.reshape(n_events, n_jets, 4)
    # flat constituent list: event e, jet j, local particle index
    per_jet = ak.num(constituents, axis=2)  # [E, n_jets]
    n_const = ak.to_numpy(per_jet).reshape(n_events, n_jets).astype(np.int64)
    local = ak.to_numpy(ak.flatten(constituents, axis=None)).astype(np.int64)
    jet_of_entry = np.repeat(np.tile(np.arange(n_jets), n_events), n_const.reshape(-1))
    event_of_entry = np.repeat(np.arange(n_events), n_const.sum(axis=1))
    # energy order within each event
    order = np.argsort(-jet_p4[:, :, 3], axis=1, kind="stable")
    rank = np.argsort(order, axis=1)  # old jet -> new position
    jet_p4 = np.take_along_axis(jet_p4, order[:, :, None], axis=1)
    n_const = np.take_along_axis(n_const, order, axis=1)
    assignment = np.full(int(offsets[-1]), -1, np.int64)
    assignment[offsets[event_of_entry] + local] = rank[event_of_entry, jet_of_entry]
    if (assignment < 0).any():
        raise RuntimeError("fastjet left particles outside the exclusive jets")
    return Clustering(jet_p4, assignment, n_const)


def jet_labels(constituent_bits: np.ndarray, jet_id: np.ndarray, n_jets_total: int,
               gluon_decay: np.ndarray, strange_decay: np.ndarray | None = None) -> np.ndarray:
    """Label codes (int32) of jets from their constituents' heavy-ancestor bits (see the module doc).

    ``constituent_bits[i]`` are :func:`.record.heavy_ancestor_bits` of
    constituent ``i``, ``jet_id[i]`` its global jet number; ``gluon_decay``
    [n_jets_total] is True for the jets of an ``H -> gg`` event, ``strange_decay``
    for those of an ``H -> s sbar`` event (their light jets are s, code 4).
    """
    bits = np.asarray(constituent_bits, dtype=np.int64)
    has_b = np.bincount(jet_id, weights=(bits & rec.B_ANCESTOR_BIT) > 0, minlength=n_jets_total) > 0
    has_c = np.bincount(jet_id, weights=(bits & rec.C_ANCESTOR_BIT) > 0, minlength=n_jets_total) > 0
    light = np.where(np.asarray(gluon_decay, bool), GG, UDS)
    if strange_decay is not None:
        light = np.where(np.asarray(strange_decay, bool), SS, light)
    return np.where(has_b, BB, np.where(has_c, CC, light)).astype(np.int32)


@dataclass(frozen=True)
class JetChunk:
    """The jets of a chunk: tracks regrouped by jet, per-jet axis, labels and the :data:`JET_FIELDS`."""

    counts: np.ndarray
    columns: dict[str, np.ndarray]
    axis: np.ndarray
    labels: np.ndarray
    extras: dict[str, np.ndarray]
    #: global jet number of each record row (-1: not a visible final-state particle)
    row_jet: np.ndarray


def jets_of_chunk(record: rec.EventRecord, tracks: Tracks, track_rows: np.ndarray, n_jets: int,
                  decay_class: int, first_event: int = 0) -> JetChunk:
    """Cluster the events of ``record`` and regroup their ``tracks`` into jets.

    ``track_rows[t]`` is the record row of track ``t``'s particle (-1 for a
    fake track); ``decay_class`` the forced decay's label code (3 for H -> gg);
    ``first_event`` the file-wide number of the chunk's first event (column ``event``).
    """
    visible = visible_final_state(record)
    vis_event = record.event_index()[visible]
    counts = np.bincount(vis_event, minlength=record.n_events)
    vis_offsets = offsets_from_counts(counts)
    p4 = np.stack([record.px[visible], record.py[visible], record.pz[visible], record.e[visible]], axis=1)
    clustering = cluster_exclusive(p4, vis_offsets, n_jets)
    n_total = record.n_events * n_jets
    jet_id = vis_event * n_jets + clustering.assignment
    bits = rec.heavy_ancestor_bits(record)[visible]
    labels = jet_labels(bits, jet_id, n_total, np.full(n_total, decay_class == GG),
                        np.full(n_total, decay_class == SS))

    # tracks -> jets: through their particle's row, fakes to the nearest jet in angle
    row_to_jet = np.full(len(record.pdg), -1, np.int64)
    row_to_jet[visible] = jet_id
    track_event = event_index(np.diff(tracks.offsets))
    rows = np.asarray(track_rows, dtype=np.int64)
    track_jet = np.where(rows >= 0, row_to_jet[np.maximum(rows, 0)], -1)
    jets3 = clustering.jets[:, :, :3]
    direction = jets3 / np.maximum(np.linalg.norm(jets3, axis=2, keepdims=True), 1e-12)
    orphan = np.flatnonzero(track_jet < 0)
    if len(orphan):
        cosines = np.einsum("tc,tjc->tj", tracks.momenta[orphan], direction[track_event[orphan]])
        track_jet[orphan] = track_event[orphan] * n_jets + np.argmax(cosines, axis=1)
    order = np.argsort(track_jet, kind="stable")
    jet_track_counts = np.bincount(track_jet, minlength=n_total)
    columns = {k: v[order] for k, v in tracks.columns.items()}

    jet_p4 = clustering.jets.reshape(n_total, 4)
    mass2 = jet_p4[:, 3] ** 2 - (jet_p4[:, :3] ** 2).sum(axis=1)
    extras = {
        "jet_E": jet_p4[:, 3].astype(np.float32),
        "jet_mass": np.sqrt(np.maximum(mass2, 0.0)).astype(np.float32),
        "n_constituents": clustering.n_constituents.reshape(-1).astype(np.int32),
        "event": (first_event + np.repeat(np.arange(record.n_events), n_jets)).astype(np.int64),
        "jet": np.tile(np.arange(n_jets), record.n_events).astype(np.int32),
        "decay_class": np.full(n_total, decay_class, np.int32),
    }
    return JetChunk(counts=jet_track_counts, columns=columns,
                    axis=direction.reshape(n_total, 3).astype(np.float32), labels=labels, extras=extras,
                    row_jet=row_to_jet)


def label_mismatch_fraction(labels: np.ndarray, decay_class: np.ndarray) -> float:
    """Fraction of jets whose label differs from their event's forced decay (uds decay = light label)."""
    labels = np.asarray(labels)
    if not len(labels):
        return float("nan")
    return float(np.mean(labels != np.asarray(decay_class)))
