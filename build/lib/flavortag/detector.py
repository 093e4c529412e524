"""Parametric tracking-detector model shared by the generator and the features.

The generator smears true tracks with it; the feature code uses the same
resolution functions to turn impact parameters into significances. Both read
one ``DetectorModel``, built from the Hydra group ``configs/detector/``.

Resolution forms (``(+)`` is addition in quadrature; p in GeV, theta the polar
angle):

* momentum:          sigma(1/pT) = a (+) b / (p sin theta)            [1/GeV]
* impact parameters: sigma(d0)   = a (+) b / (p sin^{3/2} theta)      [mm]
  and the same form for z0.

Numpy only (no torch) so the readers' side of the package stays light.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

PION_MASS_GEV: float = 0.13957039


@dataclass(frozen=True)
class DetectorModel:
    """Acceptance, efficiency and resolutions of a tracking detector.

    Lengths are in mm, momenta in GeV. ``smear=False`` gives generator-level
    tracks (the resolution constants are still used for significances).
    ``ip_resolution_scale`` multiplies both impact-parameter resolutions when
    smearing (not when computing significances): samples made with a worse
    detector than the tagger was trained for, for robustness studies.
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

    def sigma_d0_mm(self, p_gev: np.ndarray, sin_theta: np.ndarray) -> np.ndarray:
        """Transverse impact-parameter resolution in mm (unscaled)."""
        p = np.maximum(np.asarray(p_gev, dtype=np.float64), 1e-6)
        s = np.maximum(np.abs(np.asarray(sin_theta, dtype=np.float64)), 1e-6)
        return np.hypot(self.d0_a_mm, self.d0_b_mm_gev / (p * s**1.5))

    def sigma_z0_mm(self, p_gev: np.ndarray, sin_theta: np.ndarray) -> np.ndarray:
        """Longitudinal impact-parameter resolution in mm (unscaled)."""
        p = np.maximum(np.asarray(p_gev, dtype=np.float64), 1e-6)
        s = np.maximum(np.abs(np.asarray(sin_theta, dtype=np.float64)), 1e-6)
        return np.hypot(self.z0_a_mm, self.z0_b_mm_gev / (p * s**1.5))
