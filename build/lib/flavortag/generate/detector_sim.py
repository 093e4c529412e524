"""Turn the true charged final-state particles of a batch of events into tracks.

For each event (all events of a chunk at once, on flat arrays):

1. the beam spot: every vertex of an event is shifted by one Gaussian draw of
   widths ``detector.beam_spot_mm`` (the interaction point is not at the origin);
2. acceptance ``|cos theta| < cos_theta_max`` and ``pT > pt_min_gev`` (true
   momentum), then a random loss of ``1 - track_efficiency`` of the tracks;
3. with ``detector.smear``: the true impact parameters d0, z0 of the straight
   line through the (shifted) production vertex along the true momentum, each
   smeared with ``ip_resolution_scale * sigma_d0/z0(p, sin theta)``; 1/pT
   smeared with ``sigma(1/pT)``, direction kept. The reference point written
   is the smeared point of closest approach to the z axis,
   ``x = d0 py/pT, y = -d0 px/pT, z = z0``, so that FORMAT.md's
   ``d0 = (x py - y px)/pT`` and ``z0 = z - (x px + y py) pz/pT^2`` give back
   the smeared values. Without smearing the reference point is the true
   production vertex (generator-level sample);
4. ``E`` from the pion mass.

Random numbers come from the ``numpy.random.Generator`` given (one per chunk),
drawn in a fixed order for every candidate, so the result depends only on the
chunk's seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flavortag.detector import PION_MASS_GEV, DetectorModel

#: Float32 track fields in output order, then the truth extras (FORMAT + CONTRACTS).
KINEMATIC_FIELDS: tuple[str, ...] = ("E", "px", "py", "pz", "x", "y", "z")
TRUTH_FIELDS: tuple[str, ...] = ("charge", "vx", "vy", "vz", "pdg", "origin")


@dataclass(frozen=True)
class TrueParticles:
    """Charged final-state particles of a batch (flat, grouped by event in order).

    ``event`` is the event number (non-decreasing); momenta in GeV, vertices in mm.
    """

    n_events: int
    event: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    vz: np.ndarray
    charge: np.ndarray
    pdg: np.ndarray
    origin: np.ndarray


@dataclass(frozen=True)
class Tracks:
    """Reconstructed tracks of a batch: ``columns`` flat per field, event ``k`` at ``offsets[k]:offsets[k+1]``."""

    offsets: np.ndarray
    columns: dict[str, np.ndarray]
    momenta: np.ndarray  # [n_tracks, 3] float64 (for the thrust axis)


def simulate_tracks(
    particles: TrueParticles, detector: DetectorModel, rng: np.random.Generator
) -> Tracks:
    """Apply acceptance, efficiency and resolutions of ``detector`` (see the module doc)."""
    n = len(particles.px)
    event = particles.event
    # Fixed draw order: beam spot per event, then 4 numbers per candidate.
    spot = rng.standard_normal((particles.n_events, 3)) * np.asarray(detector.beam_spot_mm)
    uniform = rng.random(n)
    gauss = rng.standard_normal((3, n))

    vx = particles.vx + spot[event, 0]
    vy = particles.vy + spot[event, 1]
    vz = particles.vz + spot[event, 2]
    px, py, pz = particles.px, particles.py, particles.pz
    pt2 = px * px + py * py
    pt = np.sqrt(pt2)
    p = np.sqrt(pt2 + pz * pz)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos_theta = np.where(p > 0.0, pz / p, 1.0)
    keep = (
        (np.abs(cos_theta) < detector.cos_theta_max)
        & (pt > detector.pt_min_gev)
        & (uniform < detector.track_efficiency)
    )
    idx = np.flatnonzero(keep)
    px, py, pz, pt, pt2, p = px[idx], py[idx], pz[idx], pt[idx], pt2[idx], p[idx]
    vx, vy, vz = vx[idx], vy[idx], vz[idx]
    sin_theta = pt / p

    if detector.smear:
        d0 = (vx * py - vy * px) / pt
        z0 = vz - (vx * px + vy * py) * pz / pt2
        scale = detector.ip_resolution_scale
        d0 = d0 + gauss[0, idx] * scale * detector.sigma_d0_mm(p, sin_theta)
        z0 = z0 + gauss[1, idx] * scale * detector.sigma_z0_mm(p, sin_theta)
        inv_pt = 1.0 / pt + gauss[2, idx] * detector.sigma_inv_pt_per_gev(p, sin_theta)
        # |1/pT| keeps the direction; a sign flip needs a >1000 sigma fluctuation here.
        ratio = (1.0 / pt) / np.maximum(np.abs(inv_pt), 1e-9)
        ux, uy = px / pt, py / pt
        px, py, pz, p = px * ratio, py * ratio, pz * ratio, p * ratio
        x, y, z = d0 * uy, -d0 * ux, z0
    else:
        x, y, z = vx, vy, vz

    counts = np.bincount(event[idx], minlength=particles.n_events)
    offsets = np.zeros(particles.n_events + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    energy = np.sqrt(p * p + PION_MASS_GEV**2)
    f32 = np.float32
    columns = {
        "E": energy.astype(f32),
        "px": px.astype(f32),
        "py": py.astype(f32),
        "pz": pz.astype(f32),
        "x": np.asarray(x, dtype=f32),
        "y": np.asarray(y, dtype=f32),
        "z": np.asarray(z, dtype=f32),
        "charge": particles.charge[idx].astype(np.int8),
        "vx": vx.astype(f32),
        "vy": vy.astype(f32),
        "vz": vz.astype(f32),
        "pdg": particles.pdg[idx].astype(np.int32),
        "origin": particles.origin[idx].astype(np.int8),
    }
    return Tracks(offsets=offsets, columns=columns, momenta=np.stack([px, py, pz], axis=1))
