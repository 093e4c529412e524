"""Truth labels of EDM4hep records from the MC record, by the rules of ``flavortag generate``.

* **Ancestry**: each MC particle's first parent (``parents[0]``, as Pythia's
  ``mother1``), followed by :func:`flavortag.generate.record.ancestor_bits`.
* **Event class** (docs/FORMAT.md): the heaviest flavour among the *primary
  quarks*, the quarks (|PDG| 1-5) whose first parent is neither a quark nor a
  gluon (the decay products of the Z/gamma*, W, H or the beams' hard
  process): 2 = bb if one is a b, else 1 = cc if one is a c, else 0 = uds;
  -1 for an event without primary quarks (Z -> mu mu, ...).
* **Tracks**: ``pdg`` of the MC particle each reconstructed particle is
  associated with (the link of largest weight), ``origin`` from its ancestors
  (2 b hadron, 1 c hadron, 0 other, -1 no MC particle), as in generated files.
* **Jets**: :func:`flavortag.generate.jets.jet_labels` on the ancestor bits of
  the constituents' associated MC particles (b if any descends from a b
  hadron, else c, else light; a light jet of an event with H -> gg is g).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from flavortag.classes import BB, CC, UDS
from flavortag.generate import record as rec
from flavortag.io.edm4hep_layout import Layout
from flavortag.io.edm4hep_relations import Chunk, Problems, clean_links, resolve_relation
from flavortag.ragged import event_index

#: PDG codes of partons whose daughters are not primary quarks (quarks, gluon).
_PARTONS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 21)
_HIGGS, _GLUON = 25, 21


class TruthReader:
    """The MC record of a chunk, its ancestry and the reco -> MC association."""

    @staticmethod
    def leaves(layout: Layout, links: bool = True) -> list[str]:
        """The leaves read for truth (none without an MC collection); ``links``: the reco -> MC association too."""
        if layout.mc is None:
            return []
        mc = layout.mc
        leaves = [layout.leaf(mc, m) for m in ("PDG", "parents_begin", "parents_end")]
        leaves += [f"{layout.relation(mc, 'parents')}.{m}" for m in ("index", "collectionID")]
        if layout.links and links:
            leaves.append(layout.leaf(layout.links, "weight"))
            for end in (layout.link_rec, layout.link_sim):
                leaves += [f"{layout.relation(layout.links, end)}.{m}" for m in ("index", "collectionID")]
        return leaves

    def __init__(self, chunk: Chunk, layout: Layout, particle_offsets: np.ndarray, problems: Problems,
                 path: str) -> None:
        assert layout.mc is not None
        self.chunk, self.layout, self.problems, self.path = chunk, layout, problems, path
        self.n_events = chunk.n
        self.offsets = chunk.offsets(layout.leaf(layout.mc, "PDG"))
        self.pdg = chunk.values(layout.leaf(layout.mc, "PDG"))
        self.has_links = layout.links is not None
        self.particle_offsets = particle_offsets

    @cached_property
    def particle_mc(self) -> np.ndarray | None:
        """Global MC row of each reconstructed particle (-1: none); None without an association."""
        if not self.has_links:
            return None
        return self._links(self.chunk, self.layout, self.particle_offsets, self.problems)

    def parents(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The first parent (global row) of MC particles ``rows`` (all: None); a root is its own parent."""
        mc = str(self.layout.mc)
        first = resolve_relation(self.chunk, self.layout, mc, "parents", mc, self.problems, self.path, rows=rows).first
        own = np.arange(len(self.pdg)) if rows is None else rows
        return np.where(first >= 0, first, own)

    @cached_property
    def parent(self) -> np.ndarray:
        """The first parent of every MC particle (computed once, when ancestry is asked for)."""
        return self.parents()

    @cached_property
    def bits(self) -> np.ndarray:
        """:func:`flavortag.generate.record.ancestor_bits` of every MC particle."""
        return rec.ancestor_bits(self.pdg, self.parent)

    def _event_of(self, rows: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.offsets, rows, side="right") - 1

    def _links(self, chunk: Chunk, layout: Layout, particle_offsets: np.ndarray, problems: Problems) -> np.ndarray:
        """Global MC row of each reconstructed particle (-1: none), the link of largest weight."""
        assert layout.links is not None
        links = layout.links
        rows = [self._link_rows(chunk, layout, layout.link_rec, particle_offsets, layout.particles, problems),
                self._link_rows(chunk, layout, layout.link_sim, self.offsets, str(layout.mc), problems)]
        weight = chunk.values(layout.leaf(links, "weight"))
        reco, sim = rows
        ok = (reco >= 0) & (sim >= 0)
        if not ok.all():
            reco, sim, weight = reco[ok], sim[ok], weight[ok]
        particle_mc = np.full(int(particle_offsets[-1]), -1, np.int64)
        shared = np.bincount(reco, minlength=len(particle_mc))[reco] > 1  # particles with several links
        particle_mc[reco[~shared]] = sim[~shared]
        if shared.any():  # the first link of largest weight
            reco, sim, weight = reco[shared], sim[shared], weight[shared]
            order = np.lexsort((-weight, reco))
            best_reco, first = np.unique(reco[order], return_index=True)
            particle_mc[best_reco] = sim[order][first]
        return particle_mc

    @staticmethod
    def _link_rows(chunk: Chunk, layout: Layout, end: str, offsets: np.ndarray, target: str,
                   problems: Problems) -> np.ndarray:
        """Global rows of ``target`` that one end of the links points to (-1: unset)."""
        assert layout.links is not None
        branch = layout.relation(layout.links, end)
        clean = clean_links(chunk, branch, offsets, layout.ids.get(target))
        if clean is not None:
            return clean
        link_off, raw = chunk.column(f"{branch}.index")
        index = raw.astype(np.int64)
        event = event_index(np.diff(link_off))
        n_target = np.diff(offsets)[event]
        out = index >= n_target
        problems.add(out, event, "relation out of range", lambda s: (
            f"{branch}: index {index[s]} out of range: the event has {n_target[s]} {target}"))
        expected = layout.ids.get(target)
        if expected is not None:
            cid = chunk.values(f"{branch}.collectionID")
            wrong = (index >= 0) & ~out & (cid != expected)
            problems.add(wrong, event, "relation to another collection", lambda s: (
                f"{branch}: link {s - link_off[event[s]]} points to collection id {cid[s]}, "
                f"not {target} (id {expected})"))
        return np.where((index >= 0) & ~out, offsets[event] + index, -1)

    def track_fields(self, particles: np.ndarray) -> dict[str, np.ndarray]:
        """``pdg`` (int32, 0 none) and ``origin`` (int8, -1 none) of reconstructed particles ``particles``."""
        assert self.particle_mc is not None
        mc = self.particle_mc[particles]
        matched = mc >= 0
        origin = np.where(matched, rec.origin_codes(self.bits[np.maximum(mc, 0)]), -1).astype(np.int8)
        return {"pdg": np.where(matched, self.pdg[np.maximum(mc, 0)], 0).astype(np.int32), "origin": origin}

    def event_labels(self) -> np.ndarray:
        """Event class from the primary quarks (module docstring): int32, -1 where there are none."""
        apdg = np.abs(self.pdg)
        quarks = np.flatnonzero((apdg >= 1) & (apdg <= 5))
        parent = self.parents(quarks)  # the quarks' parents only: no ancestry needed
        primary = (parent != quarks) & ~np.isin(np.abs(self.pdg[parent]), _PARTONS)
        rows = quarks[primary]
        code = np.where(apdg[rows] == 5, BB, np.where(apdg[rows] == 4, CC, UDS))
        labels = np.full(self.n_events, -1, np.int64)
        np.maximum.at(labels, self._event_of(rows), code)
        return labels.astype(np.int32)

    def jet_labels(self, constituent: np.ndarray, constituent_jet: np.ndarray, jet_event: np.ndarray) -> np.ndarray | None:
        """Jet labels from the constituents' (global reco rows, and their jet) MC ancestors; None without links."""
        from flavortag.generate.jets import jet_labels

        if self.particle_mc is None:
            return None
        mc = self.particle_mc[constituent]
        bits = np.where(mc >= 0, self.bits[np.maximum(mc, 0)], 0)
        gluons = np.flatnonzero(self.pdg == _GLUON)
        from_higgs = gluons[self.pdg[self.parent[gluons]] == _HIGGS]
        h_to_gg = np.bincount(self._event_of(from_higgs), minlength=self.n_events) > 0
        return jet_labels(bits, constituent_jet, len(jet_event), h_to_gg[jet_event])
