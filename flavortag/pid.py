"""Particle identification of charged tracks: cluster counting (dN/dx) and time of flight.

Ground floor (numpy only at import, beside ``detector.py``): the generator
draws the measured quantities with it, the features turn them back into
per-track PID variables with the same functions (numpy for training, torch
in the raw-input ONNX graph through :mod:`flavortag.array_ops`).

The model (docs/FORMAT.md "Particle identification", parameters in
:class:`flavortag.detector.DetectorModel`):

* **dN/dx** (clusters per mm, an IDEA-like drift chamber): the expected
  number of primary ionisation clusters per mm of a particle of ``x = beta
  gamma = p / m`` is ``dndx_mip_per_mm * F(x) / F_MIN`` with the saturating
  Bethe-Bloch form ``F(x) = (K + ln(x^2 / (1 + (x / X_PLATEAU)^2))) / beta^2 - 1``
  (``beta^2 = x^2 / (1 + x^2)``, :data:`DNDX_K`, :data:`DNDX_X_PLATEAU`): it
  falls as ``1/beta^2`` at low momentum, has its minimum (``F_MIN``, the
  minimum-ionising value) at ``x`` ~ 3.5 and rises by :data:`DNDX_PLATEAU_RATIO`
  to the Fermi plateau. The measured value is Gaussian around it with the
  relative resolution ``dndx_resolution``.
* **time of flight** (ns) to the calorimeter face, ``t = L / (beta c)``
  smeared by ``tof_resolution_ps``; ``L`` (:func:`track_length_mm`) is the
  helix length from the beam line to the barrel (radius ``calo_radius_mm``)
  or the endcap (``|z| = calo_half_length_mm``), whichever the track reaches
  first in the field ``bz_tesla``. From ``t``, ``L`` and ``p`` the mass follows:
  ``m^2 = p^2 (c^2 t^2 / L^2 - 1)`` (:func:`mass2_tof_gev2`).

The true species enters only the generator's draw (its mass); files hold
the measured ``dndx``, ``tof_ns`` and ``track_length_mm``.
"""

from __future__ import annotations

import numpy as np

from flavortag.array_ops import Array, NumpyOps, ops_for

#: Speed of light in mm/ns.
C_MM_PER_NS: float = 299.792458
#: Curvature constant: ``pT [GeV] = 0.299792458e-3 * Bz [T] * R [mm]``.
CURVATURE_GEV_PER_T_MM: float = 0.299792458e-3
#: Shape constants of the dN/dx curve (see the module doc).
DNDX_K: float = 8.0
DNDX_X_PLATEAU: float = 300.0
#: Masses (GeV) of the long-lived charged species by |PDG|; any other code (0: a fake track) is a pion.
MASS_GEV: dict[int, float] = {11: 0.000510999, 13: 0.1056584, 211: 0.13957039, 321: 0.493677,
                              2212: 0.93827209, 3112: 1.197449, 3222: 1.18937, 3312: 1.32171,
                              3334: 1.67245}
PION_MASS_GEV: float = MASS_GEV[211]
KAON_MASS_GEV: float = MASS_GEV[321]
PROTON_MASS_GEV: float = MASS_GEV[2212]


def _shape(x: Array) -> Array:
    """``F(beta gamma)`` of the module doc (numpy or torch)."""
    ops = ops_for(x)
    x = ops.clip_min(x, 1e-3)
    x2 = x * x
    beta2 = x2 / (1.0 + x2)
    return (DNDX_K + ops.log(x2 / (1.0 + x2 / DNDX_X_PLATEAU**2))) / beta2 - 1.0


_GRID = np.logspace(-1, 4, 20001)
#: The minimum of F (minimum ionising) and the plateau's height relative to it.
F_MIN: float = float(np.min(_shape(_GRID)))
DNDX_PLATEAU_RATIO: float = float(_shape(np.array([1e6]))[0] / F_MIN)


def mass_of_pdg(pdg: np.ndarray) -> np.ndarray:
    """Mass in GeV of each |PDG| code of :data:`MASS_GEV` (the pion mass for any other)."""
    codes = np.abs(np.asarray(pdg, dtype=np.int64))
    mass = np.full(codes.shape, PION_MASS_GEV)
    for code, value in MASS_GEV.items():
        mass[codes == code] = value
    return mass


def expected_dndx_per_mm(p_gev: Array, mass_gev: Array | float, mip_per_mm: float) -> Array:
    """Expected clusters per mm for momentum ``p_gev`` and ``mass_gev`` (numpy or torch)."""
    ops = ops_for(p_gev)
    if isinstance(ops, NumpyOps):
        p_gev = np.asarray(p_gev, dtype=np.float64)
    return mip_per_mm * _shape(ops.clip_min(p_gev, 1e-6) / mass_gev) / F_MIN


def expected_tof_ns(p_gev: Array, mass_gev: Array | float, length_mm: Array) -> Array:
    """Flight time in ns over ``length_mm`` at momentum ``p_gev`` of a particle of ``mass_gev``."""
    ops = ops_for(p_gev)
    p = ops.clip_min(p_gev, 1e-6)
    return length_mm / C_MM_PER_NS * ops.sqrt(1.0 + (mass_gev * mass_gev) / (p * p))


def mass2_tof_gev2(p_gev: Array, tof_ns: Array, length_mm: Array) -> Array:
    """Mass squared (GeV^2) from momentum, time of flight and track length: ``p^2 (c^2 t^2 / L^2 - 1)``."""
    ops = ops_for(p_gev)
    ratio = tof_ns * C_MM_PER_NS / ops.clip_min(length_mm, 1e-6)
    return p_gev * p_gev * (ratio * ratio - 1.0)


def track_length_mm(pt_gev: np.ndarray, pz_gev: np.ndarray, bz_tesla: float, radius_mm: float,
                    half_length_mm: float) -> np.ndarray:
    """Helix length (mm) from the beam line to the calorimeter face (NaN: never reaches it).

    The transverse arc to the barrel is ``2 R asin(r / 2R)`` for a helix of
    radius ``R = pT / (0.3e-3 Bz)`` (none when ``2R < r``: a looper); to the
    endcap it is ``z_max pT / |pz|``; the shorter one, times ``p / pT``.
    """
    pt = np.maximum(np.asarray(pt_gev, dtype=np.float64), 1e-9)
    pz = np.abs(np.asarray(pz_gev, dtype=np.float64))
    helix_mm = pt / (CURVATURE_GEV_PER_T_MM * bz_tesla) if bz_tesla > 0 else np.full(pt.shape, np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        sine = radius_mm / (2.0 * helix_mm)
        barrel = np.where(sine <= 1.0, 2.0 * helix_mm * np.arcsin(np.minimum(sine, 1.0)), np.inf)
        endcap = np.where(pz > 0, half_length_mm * pt / pz, np.inf)
        arc = np.minimum(barrel, endcap)
        length = arc * np.sqrt(pt * pt + pz * pz) / pt
    return np.where(np.isfinite(length), length, np.nan)


def separation(p_gev: float, mass_a_gev: float, mass_b_gev: float, dndx_resolution: float,
               tof_resolution_ps: float, length_mm: float) -> tuple[float, float]:
    """Separation power ``(dN/dx, TOF)`` of two species at ``p_gev``, in standard deviations.

    dN/dx: ``|N_a - N_b| / (dndx_resolution * (N_a + N_b) / 2)``; TOF:
    ``|t_a - t_b| / sigma_t`` over ``length_mm``. This is what the docs' table
    lists and what the tests measure on generated tracks.
    """
    na = float(expected_dndx_per_mm(np.array(p_gev), mass_a_gev, 1.0))
    nb = float(expected_dndx_per_mm(np.array(p_gev), mass_b_gev, 1.0))
    dndx = abs(na - nb) / (dndx_resolution * 0.5 * (na + nb))
    ta = float(expected_tof_ns(np.array(p_gev), mass_a_gev, np.array(length_mm)))
    tb = float(expected_tof_ns(np.array(p_gev), mass_b_gev, np.array(length_mm)))
    return dndx, abs(ta - tb) / (tof_resolution_ps * 1e-3)
