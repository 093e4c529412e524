"""Pythia 8 + detector model -> awkward Array of events, one chunk at a time.

A chunk is ``chunk_size`` consecutive events of one class, identified by
``(seed, class, chunk index)``; its content depends on nothing else (not on
the process that makes it, nor on the number of processes), which is what
makes the parallel driver's output independent of ``workers``.

Per chunk: ``pythia.nextBatch`` (the whole batch filled in C++), flat numpy
columns (:mod:`.record`), b/c ancestry by pointer jumping, charges from one
ParticleData lookup per PDG code, the detector model (:mod:`.detector_sim`),
the thrust axis (:mod:`.thrust`) and finally an awkward Array built directly
from the flat buffers. There is no Python loop over events or particles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from flavortag.classes import class_index
from flavortag.detector import DetectorModel
from flavortag.generate import record as rec
from flavortag.generate.detector_sim import Tracks, TrueParticles, simulate_tracks
from flavortag.generate.pythia_setup import flavour_name, make_pythia, pythia_seed
from flavortag.generate.thrust import thrust_axis

DEFAULT_SQRT_S_GEV: float = 91.188
DEFAULT_CHUNK_SIZE: int = 500
#: Give up on a chunk when Pythia fails this many events in a row.
MAX_FAILED_BATCHES: int = 10


@dataclass(frozen=True)
class ChunkSpec:
    """Everything that determines one chunk of events (hashable, picklable)."""

    flavour: str
    chunk_index: int
    n_events: int
    seed: int = 1
    sqrt_s_gev: float = DEFAULT_SQRT_S_GEV
    isr: bool = False
    pythia_extra: tuple[str, ...] = ()
    detector: DetectorModel = field(default_factory=DetectorModel)

    def pythia_key(self) -> tuple:
        """Chunks with equal keys can share one initialised Pythia instance."""
        return (self.flavour, self.seed, self.sqrt_s_gev, self.isr, self.pythia_extra)

    def detector_rng(self) -> np.random.Generator:
        """The chunk's own numpy generator for the detector model."""
        return np.random.default_rng([self.seed, class_index(self.flavour), self.chunk_index, 7])


def plan_chunks(
    flavour: str,
    n_events: int,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    **spec: object,
) -> list[ChunkSpec]:
    """Split ``n_events`` of one class into chunks 0, 1, ... of ``chunk_size`` (the last may be short)."""
    if n_events < 0:
        raise ValueError(f"n_events must be >= 0, not {n_events}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, not {chunk_size}")
    name = flavour_name(flavour)
    return [
        ChunkSpec(name, k, min(chunk_size, n_events - start), **spec)  # type: ignore[arg-type]
        for k, start in enumerate(range(0, n_events, chunk_size))
    ]


class ChunkGenerator:
    """Makes chunks; keeps one initialised Pythia per (class, seed, energy, settings).

    One instance per process (Pythia objects cannot be pickled). Call it with a
    :class:`ChunkSpec`.
    """

    def __init__(self) -> None:
        self._pythia: dict[tuple, Any] = {}
        self._charges: dict[tuple, rec.ChargeTable] = {}

    def _instance(self, spec: ChunkSpec) -> tuple[Any, rec.ChargeTable]:
        key = spec.pythia_key()
        if key not in self._pythia:
            pythia = make_pythia(
                spec.flavour, spec.sqrt_s_gev, seed=spec.seed, isr=spec.isr, extra=spec.pythia_extra
            )
            self._pythia[key] = pythia
            self._charges[key] = rec.ChargeTable(pythia.particleData)
        return self._pythia[key], self._charges[key]

    def pythia_batch(self, spec: ChunkSpec) -> ak.Array:
        """The raw ``nextBatch`` events of a chunk (exactly ``spec.n_events``)."""
        pythia, _ = self._instance(spec)
        pythia.rndm.init(pythia_seed(spec.seed, spec.flavour, spec.chunk_index))
        parts = []
        missing, failures = spec.n_events, 0
        while missing > 0:
            batch = pythia.nextBatch(missing, "skip")
            parts.append(batch)
            failures = failures + 1 if len(batch) == 0 else 0
            if failures >= MAX_FAILED_BATCHES:
                raise RuntimeError(f"Pythia keeps failing to generate events for {spec}")
            missing -= len(batch)
        return parts[0] if len(parts) == 1 else ak.concatenate(parts)

    def __call__(self, spec: ChunkSpec) -> ak.Array:
        """The chunk's events as an awkward Array (``axis``, ``tracks``, ``label``)."""
        _, charges = self._instance(spec)
        if spec.n_events == 0:
            return empty_events()
        record = rec.record_from_batch(self.pythia_batch(spec))
        particles = true_charged_particles(record, charges)
        tracks = simulate_tracks(particles, spec.detector, spec.detector_rng())
        axis, _ = thrust_axis(tracks.momenta, tracks.offsets)
        return events_array(tracks, axis, class_index(spec.flavour))


def true_charged_particles(record: rec.EventRecord, charges: rec.ChargeTable) -> TrueParticles:
    """The charged final-state (status > 0) particles of ``record`` with charge, pdg and origin."""
    final = np.flatnonzero(record.status > 0)
    charge = charges(record.pdg[final])
    idx = final[charge != 0]
    origin = rec.origin_codes(rec.heavy_ancestor_bits(record)[idx])
    return TrueParticles(
        n_events=record.n_events,
        event=record.event_index()[idx],
        px=record.px[idx],
        py=record.py[idx],
        pz=record.pz[idx],
        vx=record.vx[idx],
        vy=record.vy[idx],
        vz=record.vz[idx],
        charge=charge[charge != 0],
        pdg=record.pdg[idx],
        origin=origin,
    )


def events_array(tracks: Tracks, axis: np.ndarray, label: int) -> ak.Array:
    """Build the event Array (CONTRACTS.md layout) directly from flat buffers."""
    contents = ak.contents
    n_events = len(tracks.offsets) - 1
    track_record = contents.RecordArray(
        [contents.NumpyArray(col) for col in tracks.columns.values()], list(tracks.columns)
    )
    layout = contents.RecordArray(
        [
            contents.RegularArray(
                contents.NumpyArray(np.ascontiguousarray(axis, dtype=np.float32).reshape(-1)), 3
            ),
            contents.ListOffsetArray(ak.index.Index64(tracks.offsets), track_record),
            contents.NumpyArray(np.full(n_events, label, dtype=np.int32)),
        ],
        ["axis", "tracks", "label"],
        length=n_events,
    )
    return ak.Array(layout)


def empty_events() -> ak.Array:
    """A zero-length event Array with the generator's full type."""
    from flavortag.generate.detector_sim import KINEMATIC_FIELDS, TRUTH_FIELDS

    dtypes = {"charge": np.int8, "pdg": np.int32, "origin": np.int8}
    columns = {f: np.zeros(0, dtype=dtypes.get(f, np.float32)) for f in KINEMATIC_FIELDS + TRUTH_FIELDS}
    tracks = Tracks(offsets=np.zeros(1, dtype=np.int64), columns=columns, momenta=np.zeros((0, 3)))
    return events_array(tracks, np.zeros((0, 3)), 0)


def generate_events(
    flavour: str,
    n_events: int,
    sqrt_s_gev: float = DEFAULT_SQRT_S_GEV,
    seed: int = 1,
    detector: DetectorModel | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    isr: bool = False,
    pythia_extra: Sequence[str] = (),
) -> ak.Array:
    """Generate ``n_events`` events of one class in this process.

    ``flavour`` is ``uds``, ``cc`` or ``bb`` (or an alias/index); ``detector``
    defaults to the ILD-like :class:`DetectorModel`. Returns the event Array
    (``axis`` float32[3], ``tracks`` with E, px, py, pz, x, y, z and the truth
    fields charge, vx, vy, vz, pdg, origin, ``label`` int32). The same
    arguments give the same events as the parallel driver
    (:func:`flavortag.generate.produce_samples`) with any number of workers.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, not {seed}")
    chunks = plan_chunks(
        flavour,
        n_events,
        chunk_size=chunk_size,
        seed=int(seed),
        sqrt_s_gev=float(sqrt_s_gev),
        isr=bool(isr),
        pythia_extra=tuple(pythia_extra),
        detector=detector or DetectorModel(),
    )
    if not chunks:
        return empty_events()
    make = ChunkGenerator()
    parts = [make(spec) for spec in chunks]
    return parts[0] if len(parts) == 1 else ak.concatenate(parts)
