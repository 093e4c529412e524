"""Particle flow of generated events: measured PID of the tracks and calorimeter neutrals.

``flavortag generate particle_flow=true`` (the default for ``level=jet``)
adds, from the detector model's particle-flow parameters
(:class:`flavortag.detector.DetectorModel`, :mod:`flavortag.pid`):

* per track (float32): ``dndx`` (clusters/mm), ``tof_ns`` (ns) and
  ``track_length_mm`` (mm; NaN for ``tof_ns`` and the length of a track
  that never reaches the calorimeter face). The true species sets only the
  mass of the draw (a fake track is a pion);
* per record, ``neutrals`` (:data:`flavortag.io.columns.NEUTRAL_FIELDS`):
  every visible neutral final-state particle inside ``calo_cos_theta_max``,
  energy smeared with the ECAL (photons, ``pid_pdg = 22``) or HCAL (every
  neutral hadron: K0L, n, nbar, ..., ``pid_pdg = 130``) resolution,
  direction with ``ecal_angle_mrad`` / ``hcal_angle_mrad`` in each of two
  transverse angles, kept above ``photon_e_min_gev`` /
  ``neutral_hadron_e_min_gev`` (measured energy), massless
  (``|p| = E``). ``detector.smear=false`` keeps the true values.

The numbers come from a generator of their own (:meth:`ChunkSpec.particle_flow_rng`),
drawn in a fixed order (neutrals: energy, direction; tracks: dN/dx, time),
so the tracks of a sample are the same with particle flow on or off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flavortag import pid
from flavortag.detector import DetectorModel
from flavortag.generate import record as rec
from flavortag.generate.jets import visible_final_state

#: ``pid_pdg`` of a photon and of any neutral hadron (the K0L code, as particle-flow outputs write it).
PHOTON_PDG: int = 22
NEUTRAL_HADRON_PDG: int = 130
#: Per-track PID fields that particle flow adds (docs/FORMAT.md).
PID_FIELDS: tuple[str, ...] = ("dndx", "tof_ns", "track_length_mm")


def track_pid(columns: dict[str, np.ndarray], detector: DetectorModel,
              rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The measured :data:`PID_FIELDS` of tracks (``columns``: the track fields with ``pdg``)."""
    px, py, pz = (columns[k].astype(np.float64) for k in ("px", "py", "pz"))
    pt = np.hypot(px, py)
    p = np.sqrt(pt * pt + pz * pz)
    mass = pid.mass_of_pdg(columns["pdg"])
    n = len(p)
    gauss = rng.standard_normal((2, n))
    dndx = pid.expected_dndx_per_mm(p, mass, detector.dndx_mip_per_mm)
    length = pid.track_length_mm(pt, pz, detector.bz_tesla, detector.calo_radius_mm,
                                 detector.calo_half_length_mm)
    tof = pid.expected_tof_ns(p, mass, length)
    if detector.smear:
        dndx = dndx * (1.0 + detector.dndx_resolution * gauss[0])
        tof = tof + detector.tof_resolution_ps * 1e-3 * gauss[1]
    return {"dndx": np.maximum(dndx, 0.0).astype(np.float32), "tof_ns": tof.astype(np.float32),
            "track_length_mm": length.astype(np.float32)}


@dataclass(frozen=True)
class Neutrals:
    """Measured neutral particles of a batch: ``row`` in the record, ``event`` and the columns (flat)."""

    row: np.ndarray
    event: np.ndarray
    columns: dict[str, np.ndarray]


def measured_neutrals(record: rec.EventRecord, charges: rec.ChargeTable, detector: DetectorModel,
                      rng: np.random.Generator) -> Neutrals:
    """The calorimeter's neutral particles of ``record`` (see the module doc), in record order."""
    visible = visible_final_state(record)
    rows = visible[charges(record.pdg[visible]) == 0]
    n = len(rows)
    gauss_e = rng.standard_normal(n)
    gauss_dir = rng.standard_normal((n, 3))
    photon = record.pdg[rows] == PHOTON_PDG
    energy = record.e[rows].astype(np.float64)
    momentum = np.stack([record.px[rows], record.py[rows], record.pz[rows]], axis=1).astype(np.float64)
    direction = momentum / np.maximum(np.linalg.norm(momentum, axis=1, keepdims=True), 1e-12)
    cos_theta = direction[:, 2]
    if detector.smear:
        stochastic = np.where(photon, detector.ecal_stochastic, detector.hcal_stochastic)
        constant = np.where(photon, detector.ecal_constant, detector.hcal_constant)
        relative = np.hypot(stochastic / np.sqrt(np.maximum(energy, 1e-9)), constant)
        energy = energy * (1.0 + relative * gauss_e)
        angle = np.where(photon, detector.ecal_angle_mrad, detector.hcal_angle_mrad) * 1e-3
        # the component of the kick along the direction cancels to first order: two transverse angles
        direction = direction + angle[:, None] * gauss_dir
        direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-12)
    threshold = np.where(photon, detector.photon_e_min_gev, detector.neutral_hadron_e_min_gev)
    keep = (np.abs(cos_theta) < detector.calo_cos_theta_max) & (energy > threshold) & (energy > 0.0)
    energy, direction = energy[keep], direction[keep]
    columns = {"E": energy.astype(np.float32)}
    for k, name in enumerate(("px", "py", "pz")):
        columns[name] = (energy * direction[:, k]).astype(np.float32)
    columns["pid_pdg"] = np.where(photon[keep], PHOTON_PDG, NEUTRAL_HADRON_PDG).astype(np.int32)
    return Neutrals(row=rows[keep], event=record.event_index()[rows[keep]], columns=columns)


def empty_neutral_columns() -> dict[str, np.ndarray]:
    """Zero neutral particles with the :data:`flavortag.io.columns.NEUTRAL_FIELDS` dtypes."""
    columns = {k: np.zeros(0, np.float32) for k in ("E", "px", "py", "pz")}
    columns["pid_pdg"] = np.zeros(0, np.int32)
    return columns
