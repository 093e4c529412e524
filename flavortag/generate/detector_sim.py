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
   ``x = d0 py/pT, y = -d0 px/pT, z = z0``, so that docs/FORMAT.md's
   ``d0 = (x py - y px)/pT`` and ``z0 = z - (x px + y py) pz/pT^2`` give back
   the smeared values. Without smearing the reference point is the true
   production vertex (generator-level sample). The variations of the detector
   model enter here: ``momentum_resolution_scale`` multiplies sigma(1/pT),
   ``d0_bias_um`` / ``z0_bias_um`` shift every smeared d0 / z0, and
   ``ip_tail_fraction`` of the tracks are smeared ``ip_tail_scale`` times wider;
4. ``E`` from the pion mass;
5. with ``fake_tracks_per_event > 0``: fake tracks (see ``DetectorModel``),
   appended after the real tracks of each event, drawn after every other
   number so that a sample without fakes is unchanged.

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
    #: row of each particle in its :class:`~flavortag.generate.record.EventRecord` (None: unknown)
    row: np.ndarray | None = None


@dataclass(frozen=True)
class Tracks:
    """Reconstructed tracks of a batch: ``columns`` flat per field, event ``k`` at ``offsets[k]:offsets[k+1]``."""

    offsets: np.ndarray
    columns: dict[str, np.ndarray]
    momenta: np.ndarray  # [n_tracks, 3] float64 (for the thrust axis)
    #: index into the :class:`TrueParticles` of each track (-1: a fake track)
    particle: np.ndarray | None = None


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
        scale = np.full(len(idx), detector.ip_resolution_scale)
        if detector.ip_tail_fraction > 0.0:  # drawn only then: a sample without tails is unchanged
            scale[rng.random(len(idx)) < detector.ip_tail_fraction] *= detector.ip_tail_scale
        d0 = d0 + gauss[0, idx] * scale * detector.sigma_d0_mm(p, sin_theta)
        z0 = z0 + gauss[1, idx] * scale * detector.sigma_z0_mm(p, sin_theta)
        d0 = d0 + detector.d0_bias_um * 1e-3
        z0 = z0 + detector.z0_bias_um * 1e-3
        inv_pt = 1.0 / pt + (gauss[2, idx] * detector.momentum_resolution_scale
                             * detector.sigma_inv_pt_per_gev(p, sin_theta))
        # |1/pT| keeps the direction; a sign flip needs a >1000 sigma fluctuation here.
        ratio = (1.0 / pt) / np.maximum(np.abs(inv_pt), 1e-9)
        ux, uy = px / pt, py / pt
        px, py, pz, p = px * ratio, py * ratio, pz * ratio, p * ratio
        x, y, z = d0 * uy, -d0 * ux, z0
    else:
        x, y, z = vx, vy, vz

    values: dict[str, np.ndarray] = {
        "p": p, "px": px, "py": py, "pz": pz, "x": np.asarray(x), "y": np.asarray(y), "z": np.asarray(z),
        "charge": particles.charge[idx], "vx": vx, "vy": vy, "vz": vz,
        "pdg": particles.pdg[idx], "origin": particles.origin[idx],
    }
    track_event = event[idx]
    source = idx.astype(np.int64)
    if detector.fake_tracks_per_event > 0.0:
        fakes, fake_event = fake_tracks(particles.n_events, detector, rng)
        track_event = np.concatenate([track_event, fake_event])
        values = {k: np.concatenate([v, fakes[k]]) for k, v in values.items()}
        source = np.concatenate([source, np.full(len(fake_event), -1, np.int64)])
        order = np.argsort(track_event, kind="stable")  # each event: real tracks, then fakes
        track_event = track_event[order]
        values = {k: v[order] for k, v in values.items()}
        source = source[order]

    counts = np.bincount(track_event, minlength=particles.n_events)
    offsets = np.zeros(particles.n_events + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    px, py, pz = values["px"], values["py"], values["pz"]
    energy = np.sqrt(values["p"] ** 2 + PION_MASS_GEV**2)
    f32 = np.float32
    columns = {"E": energy.astype(f32)}
    columns.update({k: values[k].astype(f32) for k in ("px", "py", "pz", "x", "y", "z")})
    columns["charge"] = values["charge"].astype(np.int8)
    columns.update({k: values[k].astype(f32) for k in ("vx", "vy", "vz")})
    columns["pdg"] = values["pdg"].astype(np.int32)
    columns["origin"] = values["origin"].astype(np.int8)
    return Tracks(offsets=offsets, columns=columns, momenta=np.stack([px, py, pz], axis=1),
                  particle=source)


#: ``origin`` of a fake track (real tracks: 0 light, 1 below a c hadron, 2 below a b hadron).
FAKE_ORIGIN: int = -1


def fake_tracks(
    n_events: int, detector: DetectorModel, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Fake tracks of ``DetectorModel.fake_tracks_per_event`` (flat per-field arrays, their events)."""
    n_per_event = rng.poisson(detector.fake_tracks_per_event, n_events)
    fake_event = np.repeat(np.arange(n_events, dtype=np.int64), n_per_event)
    n = len(fake_event)
    cos_theta = rng.uniform(-detector.cos_theta_max, detector.cos_theta_max, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    pt = detector.pt_min_gev + rng.exponential(detector.fake_track_pt_gev, n)
    d0 = rng.normal(0.0, detector.fake_track_ip_mm, n)
    z0 = rng.normal(0.0, detector.fake_track_ip_mm, n)
    charge = np.where(rng.random(n) < 0.5, -1, 1)
    sin_theta = np.sqrt(np.maximum(1.0 - cos_theta**2, 1e-12))
    px, py = pt * np.cos(phi), pt * np.sin(phi)
    pz = pt * cos_theta / sin_theta
    x, y = d0 * np.sin(phi), -d0 * np.cos(phi)  # d0 = (x py - y px) / pT
    fakes = {"p": pt / sin_theta, "px": px, "py": py, "pz": pz, "x": x, "y": y, "z": z0, "charge": charge,
             "vx": x, "vy": y, "vz": z0, "pdg": np.zeros(n, dtype=np.int64),
             "origin": np.full(n, FAKE_ORIGIN)}
    return fakes, fake_event
