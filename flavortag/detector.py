"""Parametric tracking-detector model shared by the generator and the features.

The generator smears true tracks with it; the feature code uses the same
resolution functions to turn impact parameters into significances. Both read
one ``DetectorModel``, built from the Hydra group ``configs/detector/``.

Resolution forms (``(+)`` is addition in quadrature; p in GeV, theta the polar
angle):

* momentum:          sigma(1/pT) = a (+) b / (p sin theta)            [1/GeV]
* impact parameters: sigma(d0)   = a (+) b / (p sin^{3/2} theta)      [mm]
  and the same form for z0.

Numpy only at import (no torch) so the readers' side of the package stays light; the
impact-parameter resolutions also take torch tensors (the raw-input ONNX graph).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from flavortag.array_ops import Array, NumpyOps, ops_for

PION_MASS_GEV: float = 0.13957039


@dataclass(frozen=True)
class DetectorModel:
    """Acceptance, efficiency and resolutions of a tracking detector.

    Lengths are in mm, momenta in GeV. ``smear=False`` gives generator-level
    tracks (the resolution constants are still used for significances).
    ``ip_resolution_scale`` multiplies both impact-parameter resolutions when
    smearing (not when computing significances): samples made with a worse
    detector than the tagger was trained for, for robustness studies. The
    other smearing-only variations (all defaults leave the nominal detector):

    * ``momentum_resolution_scale`` multiplies sigma(1/pT);
    * ``d0_bias_um`` / ``z0_bias_um``: a systematic shift of every measured
      d0 / z0 in micrometres (a misaligned vertex detector);
    * ``fake_tracks_per_event``: mean (Poisson) number of fake tracks added to
      each event: flat in cos theta inside the acceptance and in phi,
      ``pT = pt_min_gev + Exp(fake_track_pt_gev)``, d0 and z0 Gaussian of width
      ``fake_track_ip_mm``, pion mass, random charge, ``origin = -1``, ``pdg = 0``;
    * lost tracks: ``track_efficiency`` below its nominal 0.99;
    * non-Gaussian tails: a fraction ``ip_tail_fraction`` of the tracks is
      smeared in d0 and z0 with ``ip_tail_scale`` times the resolution
      (hard scatters, wrong hits), drawn after every other number but the
      fakes', so a sample without tails is unchanged.

    The resolution's momentum dependence of a smeared sample differs from a
    tagger's when it is made with other ``d0_a_mm``, ``d0_b_mm_gev``, ...: the
    tagger forms its significances with the detector model stored with it.

    Particle flow (written by ``flavortag generate particle_flow=true``, the
    default for jets; docs/FORMAT.md): the field ``bz_tesla`` and the
    calorimeter face (barrel radius ``calo_radius_mm``, endcap at
    ``calo_half_length_mm``) give the track length of the time of flight
    (resolution ``tof_resolution_ps``); ``dndx_mip_per_mm`` and the relative
    ``dndx_resolution`` the cluster counting (:mod:`flavortag.pid`). Neutral
    particles inside ``calo_cos_theta_max`` are measured by the ECAL
    (photons: ``sigma_E / E = ecal_stochastic / sqrt(E) (+) ecal_constant``,
    direction ``ecal_angle_mrad``) or the HCAL (neutral hadrons, ``hcal_*``)
    above ``photon_e_min_gev`` / ``neutral_hadron_e_min_gev`` (measured energy).
    """

    name: str = "ild"
    smear: bool = True
    cos_theta_max: float = 0.98
    pt_min_gev: float = 0.1
    track_efficiency: float = 0.99
    inv_pt_a_per_gev: float = 2.0e-5
    inv_pt_b: float = 1.0e-3
    d0_a_mm: float = 0.005
    d0_b_mm_gev: float = 0.010
    z0_a_mm: float = 0.005
    z0_b_mm_gev: float = 0.010
    beam_spot_mm: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0))
    ip_resolution_scale: float = 1.0
    momentum_resolution_scale: float = 1.0
    d0_bias_um: float = 0.0
    z0_bias_um: float = 0.0
    fake_tracks_per_event: float = 0.0
    fake_track_pt_gev: float = 0.5
    fake_track_ip_mm: float = 0.5
    ip_tail_fraction: float = 0.0
    ip_tail_scale: float = 3.0
    # particle flow (``generate particle_flow``): calorimeter and PID, see flavortag/pid.py
    bz_tesla: float = 3.5
    calo_radius_mm: float = 1800.0
    calo_half_length_mm: float = 2350.0
    calo_cos_theta_max: float = 0.99
    ecal_stochastic: float = 0.15
    ecal_constant: float = 0.01
    ecal_angle_mrad: float = 2.0
    hcal_stochastic: float = 0.50
    hcal_constant: float = 0.03
    hcal_angle_mrad: float = 10.0
    photon_e_min_gev: float = 0.2
    neutral_hadron_e_min_gev: float = 0.5
    dndx_mip_per_mm: float = 1.25
    dndx_resolution: float = 0.03
    tof_resolution_ps: float = 30.0

    def __post_init__(self) -> None:
        """Refuse settings that cannot describe a detector, naming the setting."""
        positive = ("ip_resolution_scale", "momentum_resolution_scale", "fake_track_pt_gev",
                    "fake_track_ip_mm", "ip_tail_scale", "bz_tesla", "calo_radius_mm", "calo_half_length_mm",
                    "dndx_mip_per_mm", "dndx_resolution", "tof_resolution_ps")
        for name in positive:
            if not float(getattr(self, name)) > 0.0:
                raise ValueError(f"detector.{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 < self.track_efficiency <= 1.0:
            raise ValueError(f"detector.track_efficiency must be in (0, 1], got {self.track_efficiency}")
        if not self.fake_tracks_per_event >= 0.0:
            raise ValueError("detector.fake_tracks_per_event must be >= 0, "
                             f"got {self.fake_tracks_per_event}")
        if not 0.0 <= self.ip_tail_fraction < 1.0:
            raise ValueError(f"detector.ip_tail_fraction must be in [0, 1), got {self.ip_tail_fraction}")
        for name in ("ecal_stochastic", "ecal_constant", "ecal_angle_mrad", "hcal_stochastic", "hcal_constant",
                     "hcal_angle_mrad", "photon_e_min_gev", "neutral_hadron_e_min_gev"):
            if not float(getattr(self, name)) >= 0.0:
                raise ValueError(f"detector.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 < self.calo_cos_theta_max <= 1.0:
            raise ValueError(f"detector.calo_cos_theta_max must be in (0, 1], got {self.calo_cos_theta_max}")
        if not 0.0 < self.cos_theta_max <= 1.0:
            raise ValueError(f"detector.cos_theta_max must be in (0, 1], got {self.cos_theta_max}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> DetectorModel:
        """Build from a mapping (e.g. a Hydra ``detector`` node); unknown keys are an error."""
        if cfg is None:
            return cls()
        data = dict(cfg)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known - {"_target_", "description", "source"}
        if unknown:
            raise ValueError(f"unknown detector settings {sorted(unknown)}; known: {sorted(known)}")
        data = {k: v for k, v in data.items() if k in known}
        if "beam_spot_mm" in data:
            data["beam_spot_mm"] = tuple(float(v) for v in data["beam_spot_mm"])
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for logging and for storing with a model)."""
        out = asdict(self)
        out["beam_spot_mm"] = list(self.beam_spot_mm)
        return out

    def sigma_inv_pt_per_gev(self, p_gev: np.ndarray, sin_theta: np.ndarray) -> np.ndarray:
        """sigma(1/pT) in 1/GeV for momentum ``p_gev`` and ``sin_theta``."""
        p = np.maximum(np.asarray(p_gev, dtype=np.float64), 1e-6)
        s = np.maximum(np.abs(np.asarray(sin_theta, dtype=np.float64)), 1e-6)
        return np.hypot(self.inv_pt_a_per_gev, self.inv_pt_b / (p * s))

    def sigma_d0_mm(self, p_gev: Array, sin_theta: Array) -> Array:
        """Transverse impact-parameter resolution in mm (unscaled); numpy arrays or torch tensors."""
        return _ip_resolution_mm(self.d0_a_mm, self.d0_b_mm_gev, p_gev, sin_theta)

    def sigma_z0_mm(self, p_gev: Array, sin_theta: Array) -> Array:
        """Longitudinal impact-parameter resolution in mm (unscaled); numpy arrays or torch tensors."""
        return _ip_resolution_mm(self.z0_a_mm, self.z0_b_mm_gev, p_gev, sin_theta)


def _ip_resolution_mm(a_mm: float, b_mm_gev: float, p_gev: Array, sin_theta: Array) -> Array:
    """``a (+) b / (p sin^{3/2} theta)`` in mm, written once for numpy (generator, features) and
    torch (the raw-input ONNX graph)."""
    ops = ops_for(p_gev)
    if isinstance(ops, NumpyOps):
        p_gev = np.asarray(p_gev, dtype=np.float64)
        sin_theta = np.asarray(sin_theta, dtype=np.float64)
    p = ops.clip_min(p_gev, 1e-6)
    s = ops.clip_min(ops.abs(sin_theta), 1e-6)
    return ops.hypot(a_mm, b_mm_gev / (p * s**1.5))
