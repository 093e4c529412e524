"""Pythia event records as flat numpy arrays, and truth ancestry on them.

``pythia.nextBatch(n)`` (pythia8mc >= 8.315) returns a whole batch of events
as one awkward Array, filled in C++: the only bulk accessor of the Python
interface (reading ``pythia.event[i].px()`` particle by particle costs a
Python call per attribute and is ~50x slower). :func:`record_from_batch`
turns that batch into flat numpy columns plus event offsets, and everything
downstream (ancestry, detector simulation, thrust) works on those columns for
all events of a chunk at once.

Ancestry follows each particle's first mother (``mother1``) up to the beams
by pointer jumping: after k steps every particle knows whether a b or c hadron
sits among its 2**k nearest ancestors, so ~7 vectorised steps cover the
deepest chains (showers included). ``mother1`` is the decaying particle for
every decay product and the first parton of the string for string hadrons;
a string made by a partonic b-hadron decay holds only that hadron's
descendants, so following ``mother1`` reaches the b hadron (checked against
a full mother-list walk in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from flavortag.ragged import event_index

#: Bits of :func:`heavy_ancestor_bits`.
C_ANCESTOR_BIT: int = 1
B_ANCESTOR_BIT: int = 2
#: ``origin`` codes (the per-track truth field).
ORIGIN_LIGHT, ORIGIN_C, ORIGIN_B = 0, 1, 2


@dataclass(frozen=True)
class EventRecord:
    """Flat columns of all particles of a batch of events (entry 0 of each = system).

    Event ``k`` owns rows ``offsets[k]:offsets[k+1]``; ``mother1`` is an index
    inside its own event (0 = none). Momenta in GeV, vertices in mm.
    """

    offsets: np.ndarray
    pdg: np.ndarray
    status: np.ndarray
    mother1: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    vz: np.ndarray

    @property
    def n_events(self) -> int:
        """Number of events."""
        return len(self.offsets) - 1

    def event_index(self) -> np.ndarray:
        """Event number of every row (int64)."""
        return event_index(np.diff(self.offsets))


def _column(flat: ak.Array) -> np.ndarray:
    return np.ascontiguousarray(ak.to_numpy(flat))


def _vertex_columns(vertex: ak.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y, z of the optional ``vProd`` records, missing -> 0 (mm)."""
    layout = ak.to_layout(vertex)
    if isinstance(layout, ak.contents.IndexedOptionArray):  # what nextBatch builds: index + records
        index = np.asarray(layout.index)
        present = index >= 0
        content = ak.Array(layout.content)
        out = []
        for name in ("px", "py", "pz"):
            values = np.zeros(len(index))
            values[present] = ak.to_numpy(content[name])[index[present]]
            out.append(values)
        return out[0], out[1], out[2]
    x, y, z = (ak.to_numpy(ak.fill_none(vertex[name], 0.0)) for name in ("px", "py", "pz"))
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), np.asarray(z, dtype=np.float64)


def record_from_batch(batch: ak.Array) -> EventRecord:
    """Flat columns of a ``pythia.nextBatch`` result (fields ``prt.id``, ``prt.p.px``, ...).

    Particles without a production vertex (``vProd`` missing: the beams and the
    hard process) get the origin.
    """
    # Work on the flat particle content under the event offsets: per-column
    # ak.flatten would re-check the jagged structure for each of 11 columns.
    jagged = ak.to_layout(batch["prt"]).to_ListOffsetArray64(True)
    offsets = np.asarray(jagged.offsets, dtype=np.int64)
    prt = ak.Array(jagged.content[: int(offsets[-1])])
    momentum = prt["p"]
    vx, vy, vz = _vertex_columns(prt["vProd"])
    return EventRecord(
        offsets=offsets,
        pdg=_column(prt["id"]),
        status=_column(prt["status"]),
        mother1=_column(prt["mother1"]),
        px=_column(momentum["px"]),
        py=_column(momentum["py"]),
        pz=_column(momentum["pz"]),
        e=_column(momentum["e"]),
        vx=vx,
        vy=vy,
        vz=vz,
    )


def heavy_hadron_bits(pdg: np.ndarray) -> np.ndarray:
    """Per particle: bit 1 set for a b hadron, bit 0 for a c hadron (uint8).

    A hadron's heaviest quark is the hundreds digit of a meson code
    (``nq2``, e.g. 511, 421, 10413) and the thousands digit of a baryon code
    (``nq1``, e.g. 5122, 4122). Quarks (|id| < 100), diquarks (tens digit 0)
    and non-hadrons get 0. Charmonium counts as a c hadron, b-c states as b.
    """
    aid = np.abs(np.asarray(pdg, dtype=np.int32))  # PDG codes fit in int32, whose arithmetic is quicker
    bits = np.zeros(aid.shape, np.uint8)
    # A c or b digit in the hundreds or thousands place needs |id| >= 400: the digits are
    # worked out for those few codes only (pions, kaons, photons and leptons are below).
    rows = np.flatnonzero(aid >= 400)
    aid = aid[rows]
    nq1 = (aid // 1000) % 10
    nq2 = (aid // 100) % 10
    nq3 = (aid // 10) % 10
    hadron = (nq3 > 0) & (aid < 1_000_000_000)
    is_b = hadron & ((nq1 == 5) | (nq2 == 5))
    is_c = hadron & ((nq1 == 4) | (nq2 == 4)) & ~is_b
    bits[rows] = (is_b.astype(np.uint8) * B_ANCESTOR_BIT) | (is_c.astype(np.uint8) * C_ANCESTOR_BIT)
    return bits


def heavy_ancestor_bits(record: EventRecord) -> np.ndarray:
    """Per particle: OR of :func:`heavy_hadron_bits` over all its ``mother1`` ancestors (uint8).

    The particle itself is not included.
    """
    n = len(record.pdg)
    start = record.offsets[:-1][event_index(np.diff(record.offsets))]  # first row of each row's event
    local = record.mother1.astype(np.int64)
    # Roots (no mother, or a broken index) point to themselves.
    valid = (local > 0) & (start + local < n)
    return ancestor_bits(record.pdg, np.where(valid, start + local, np.arange(n)))


#: Generations below the heavy hadrons that :func:`ancestor_bits` follows one pass at a time
#: before it turns to pointer jumping (real records need 5-10).
PROPAGATION_PASSES: int = 16


def ancestor_bits(pdg: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Per particle: OR of :func:`heavy_hadron_bits` over the chain ``parent[i], parent[parent[i]], ...``.

    ``parent`` holds global row numbers (a root points to itself); the particle
    itself is not included. Heavy hadrons are few and their decay chains
    short, so the bits are passed down one generation per vectorised pass
    (``bits = own[parent] | bits[parent]``) until no row changes; a record
    still changing after :data:`PROPAGATION_PASSES` passes (deep or cyclic
    chains) is done by pointer jumping instead, which gives the same bits.
    Used for Pythia records (``mother1``) and EDM4hep MC records (first parent).
    """
    parent = np.asarray(parent, dtype=np.int64)
    own = heavy_hadron_bits(pdg)
    root = parent == np.arange(len(parent))
    from_parent = np.where(root, 0, own[parent]).astype(np.uint8)  # the parent's own bits
    bits = from_parent
    for _ in range(PROPAGATION_PASSES):  # after pass k: the ancestors up to k + 1 generations up
        deeper = from_parent | bits[parent]
        if np.array_equal(deeper, bits):  # a fixed point: every chain is complete
            return bits
        bits = deeper
    return _ancestor_bits_by_jumping(own, parent, root)


def _ancestor_bits_by_jumping(own: np.ndarray, parent: np.ndarray, root: np.ndarray) -> np.ndarray:
    """:func:`ancestor_bits` by pointer jumping: after k steps each row knows its 2**k nearest ancestors."""
    bits = np.where(root, 0, own[parent]).astype(np.uint8)  # ancestors at distance 1 .. 2**k
    jump = parent.copy()  # the 2**k-th ancestor (roots stay put)
    active = np.flatnonzero(~root[parent] & ~root)  # rows whose chain goes on beyond jump
    for _ in range(64):  # 2**64 generations: a cap against malformed (cyclic) records
        if not len(active):
            break
        # Rows are updated in place: a row read here may already hold a longer chain,
        # which an OR of ancestors only completes sooner (jump and bits are read together).
        target = jump[active]
        bits[active] |= bits[target]
        jump[active] = jump[target]
        active = active[jump[active] != jump[jump[active]]]
    return bits


def origin_codes(ancestor_bits: np.ndarray) -> np.ndarray:
    """``origin`` (int8): 2 below a b hadron, 1 below a c hadron but no b hadron, else 0."""
    bits = np.asarray(ancestor_bits)
    return np.where(
        bits & B_ANCESTOR_BIT, ORIGIN_B, np.where(bits & C_ANCESTOR_BIT, ORIGIN_C, ORIGIN_LIGHT)
    ).astype(np.int8)


class ChargeTable:
    """Electric charge (units of e) of PDG codes, looked up once per code in Pythia's ParticleData."""

    def __init__(self, particle_data: Any) -> None:
        self._particle_data = particle_data
        self._codes = np.zeros(0, dtype=np.int64)
        self._charges = np.zeros(0, dtype=np.int8)

    def __call__(self, pdg: np.ndarray) -> np.ndarray:
        """Charges (int8) of ``pdg`` codes; fractional (quark) charges are rounded."""
        pdg = np.asarray(pdg, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._codes, pdg), max(len(self._codes) - 1, 0))
        known = self._codes[pos] == pdg if len(self._codes) else np.zeros(len(pdg), dtype=bool)
        if known.all():
            return self._charges[pos]
        missing = np.unique(pdg[~known])
        charges = [round(self._particle_data.charge(int(code))) for code in missing]
        codes = np.concatenate([self._codes, missing])
        values = np.concatenate([self._charges, np.asarray(charges, dtype=np.int8)])
        order = np.argsort(codes)
        self._codes, self._charges = codes[order], values[order]
        return self._charges[np.searchsorted(self._codes, pdg)]
