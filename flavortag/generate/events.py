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
from flavortag.generate.detector_sim import (
    KINEMATIC_FIELDS,
    TRUTH_FIELDS,
    Tracks,
    TrueParticles,
    simulate_tracks,
)
from flavortag.generate.particle_flow import (
    PID_FIELDS,
    Neutrals,
    empty_neutral_columns,
    measured_neutrals,
    track_pid,
)
from flavortag.generate.pythia_setup import flavour_name, make_pythia, pythia_seed, stream_index
from flavortag.generate.thrust import thrust_axis
from flavortag.io.columns import NEUTRALS
from flavortag.ragged import offsets_from_counts

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
    #: ``qq`` (gamma*/Z -> q qbar) or ``zh`` (ZH, Z -> nu nu, H forced): :mod:`.pythia_setup`
    process: str = "qq"
    #: None: one record per event; N: one record per jet, N exclusive Durham jets (:mod:`.jets`)
    n_jets: int | None = None
    #: events per chunk of the plan (numbers the events of a jet file: chunk_index * chunk_size + k)
    chunk_size: int = DEFAULT_CHUNK_SIZE
    #: add the tracks' measured PID and the calorimeter's neutral particles (:mod:`.particle_flow`)
    particle_flow: bool = False

    def pythia_key(self) -> tuple:
        """Chunks with equal keys can share one initialised Pythia instance."""
        return (self.flavour, self.seed, self.sqrt_s_gev, self.isr, self.pythia_extra, self.process)

    def detector_rng(self) -> np.random.Generator:
        """The chunk's own numpy generator for the detector model."""
        key = [self.seed, stream_index(self.flavour), self.chunk_index, 7]
        return np.random.default_rng(key if self.process == "qq" else [*key, 1])

    def particle_flow_rng(self) -> np.random.Generator:
        """The chunk's generator of the particle-flow numbers (apart: the tracks do not depend on it)."""
        return np.random.default_rng([self.seed, stream_index(self.flavour), self.chunk_index, 11,
                                      0 if self.process == "qq" else 1])


@dataclass(frozen=True)
class ChunkColumns:
    """A chunk's events as flat numpy buffers (cheap to pickle and to concatenate).

    ``counts[k]`` tracks in event ``k``; ``columns`` one flat array per track
    field (CONTRACTS.md order); ``axis`` float32 ``[n_events, 3]``.
    """

    label: int
    counts: np.ndarray
    columns: dict[str, np.ndarray]
    axis: np.ndarray
    #: per-record labels (jets: each its own); None: every record has ``label``
    labels: np.ndarray | None = None
    #: extra per-record fields (jets: :data:`flavortag.generate.jets.JET_FIELDS`)
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    #: neutral particles per record (None: no particle flow) and their flat columns
    neutral_counts: np.ndarray | None = None
    neutral_columns: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_events(self) -> int:
        """Number of events."""
        return len(self.counts)


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
        ChunkSpec(name, k, min(chunk_size, n_events - start), chunk_size=chunk_size,
                  **spec)  # type: ignore[arg-type]
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
                spec.flavour, spec.sqrt_s_gev, seed=spec.seed, isr=spec.isr, extra=spec.pythia_extra,
                process=spec.process,
            )
            self._pythia[key] = pythia
            self._charges[key] = rec.ChargeTable(pythia.particleData)
        return self._pythia[key], self._charges[key]

    def pythia_batch(self, spec: ChunkSpec) -> ak.Array:
        """The raw ``nextBatch`` events of a chunk (exactly ``spec.n_events``)."""
        pythia, _ = self._instance(spec)
        pythia.rndm.init(pythia_seed(spec.seed, spec.flavour, spec.chunk_index, spec.process))
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

    def columns(self, spec: ChunkSpec) -> ChunkColumns:
        """The chunk's events as flat buffers (see :func:`events_from_chunks`)."""
        _, charges = self._instance(spec)
        if spec.n_events == 0:
            return _empty_chunk(class_index(spec.flavour), spec.particle_flow)
        record = rec.record_from_batch(self.pythia_batch(spec))
        particles = true_charged_particles(record, charges)
        tracks = simulate_tracks(particles, spec.detector, spec.detector_rng())
        neutrals = None
        if spec.particle_flow:
            rng = spec.particle_flow_rng()
            neutrals = measured_neutrals(record, charges, spec.detector, rng)
            tracks.columns.update(track_pid(tracks.columns, spec.detector, rng))
        if spec.n_jets is not None:
            return _jet_columns(spec, record, particles, tracks, neutrals)
        axis, _ = thrust_axis(tracks.momenta, tracks.offsets)
        return ChunkColumns(
            label=class_index(spec.flavour),
            counts=np.diff(tracks.offsets),
            columns=tracks.columns,
            axis=axis.astype(np.float32),
            neutral_counts=None if neutrals is None else np.bincount(neutrals.event, minlength=record.n_events),
            neutral_columns={} if neutrals is None else neutrals.columns,
        )

    def __call__(self, spec: ChunkSpec) -> ak.Array:
        """The chunk's events as an awkward Array (``axis``, ``tracks``, ``label``)."""
        return events_from_chunks([self.columns(spec)])


def _jet_columns(spec: ChunkSpec, record: rec.EventRecord, particles: TrueParticles,
                 tracks: Tracks, neutrals: Neutrals | None) -> ChunkColumns:
    """A chunk's jets as flat buffers (:func:`flavortag.generate.jets.jets_of_chunk`); neutrals go
    to the jet that holds their particle."""
    from flavortag.generate.jets import jets_of_chunk

    assert spec.n_jets is not None and particles.row is not None and tracks.particle is not None
    rows = np.where(tracks.particle >= 0, particles.row[np.maximum(tracks.particle, 0)], -1)
    jets = jets_of_chunk(record, tracks, rows, spec.n_jets, class_index(spec.flavour),
                         first_event=spec.chunk_index * spec.chunk_size)
    neutral_counts, neutral_columns = None, {}
    if neutrals is not None:
        neutral_jet = jets.row_jet[neutrals.row]
        order = np.argsort(neutral_jet, kind="stable")
        neutral_counts = np.bincount(neutral_jet, minlength=len(jets.labels))
        neutral_columns = {k: v[order] for k, v in neutrals.columns.items()}
    return ChunkColumns(label=class_index(spec.flavour), counts=jets.counts, columns=jets.columns,
                        axis=jets.axis, labels=jets.labels, extras=jets.extras,
                        neutral_counts=neutral_counts, neutral_columns=neutral_columns)


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
        row=idx,
    )


def events_from_chunks(chunks: Sequence[ChunkColumns]) -> ak.Array:
    """Concatenate chunks (numpy, not ``ak.concatenate``) and build the event Array.

    Layout (CONTRACTS.md): ``axis`` 3 * float32, ``tracks`` var * record of the
    track fields, ``label`` int32; built directly from the flat buffers.
    """
    if not chunks:
        return events_from_chunks([_empty_chunk(0)])
    contents = ak.contents
    counts = np.concatenate([c.counts for c in chunks])
    offsets = offsets_from_counts(counts)
    fields = list(chunks[0].columns)
    track_record = contents.RecordArray(
        [contents.NumpyArray(np.concatenate([c.columns[f] for c in chunks])) for f in fields],
        fields,
        length=int(offsets[-1]),
    )
    axis = np.concatenate([c.axis for c in chunks]).astype(np.float32).reshape(-1)
    label = np.concatenate([np.full(c.n_events, c.label, dtype=np.int32) if c.labels is None
                            else c.labels.astype(np.int32) for c in chunks])
    extra_names = list(chunks[0].extras)
    lists = [contents.RegularArray(contents.NumpyArray(axis), 3, zeros_length=len(counts)),
             contents.ListOffsetArray(ak.index.Index64(offsets), track_record),
             contents.NumpyArray(label)]
    names = ["axis", "tracks", "label"]
    if chunks[0].neutral_counts is not None:
        neutral_offsets = offsets_from_counts(np.concatenate([c.neutral_counts for c in chunks]))  # type: ignore[misc]
        neutral_fields = list(chunks[0].neutral_columns)
        neutral_record = contents.RecordArray(
            [contents.NumpyArray(np.concatenate([c.neutral_columns[f] for c in chunks])) for f in neutral_fields],
            neutral_fields, length=int(neutral_offsets[-1]))
        lists.append(contents.ListOffsetArray(ak.index.Index64(neutral_offsets), neutral_record))
        names.append(NEUTRALS)
    layout = contents.RecordArray(
        [*lists, *(contents.NumpyArray(np.concatenate([c.extras[k] for c in chunks])) for k in extra_names)],
        [*names, *extra_names],
        length=len(counts),
    )
    return ak.Array(layout)


def _empty_chunk(label: int, particle_flow: bool = False) -> ChunkColumns:
    dtypes = {"charge": np.int8, "pdg": np.int32, "origin": np.int8}
    names = KINEMATIC_FIELDS + TRUTH_FIELDS + (PID_FIELDS if particle_flow else ())
    columns = {f: np.zeros(0, dtype=dtypes.get(f, np.float32)) for f in names}
    return ChunkColumns(
        label=label,
        counts=np.zeros(0, dtype=np.int64),
        columns=columns,
        axis=np.zeros((0, 3), dtype=np.float32),
        neutral_counts=np.zeros(0, np.int64) if particle_flow else None,
        neutral_columns=empty_neutral_columns() if particle_flow else {},
    )


def empty_events(label: int = 0, particle_flow: bool = False) -> ak.Array:
    """A zero-length event Array with the generator's full type."""
    return events_from_chunks([_empty_chunk(label, particle_flow)])


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
    process: str = "qq",
    n_jets: int | None = None,
    particle_flow: bool = False,
) -> ak.Array:
    """Generate ``n_events`` events of one class in this process.

    ``process`` ``"qq"`` or ``"zh"`` (:mod:`.pythia_setup`); with ``n_jets``
    the records are jets (``n_events * n_jets`` of them, :mod:`.jets`), with the
    per-jet fields ``jet_E, jet_mass, n_constituents, event, jet, decay_class``;
    ``particle_flow`` adds the tracks' PID and the ``neutrals`` (:mod:`.particle_flow`).

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
        process=str(process),
        n_jets=None if n_jets is None else int(n_jets),
        particle_flow=bool(particle_flow),
    )
    make = ChunkGenerator()
    parts = [make.columns(spec) for spec in chunks]
    return events_from_chunks(parts or [_empty_chunk(class_index(flavour), bool(particle_flow))])
