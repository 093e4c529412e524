"""Particle-flow features (issue 25): neutral particles as tokens, particle type, PID of the tracks.

* :func:`with_neutral_tokens` appends each record's ``neutrals`` to its
  ``tracks`` (after the charged ones) with a ``particle_type`` (0 charged,
  1 photon, 2 neutral hadron), reference point 0 (so every impact parameter
  and significance of a neutral is exactly 0; ``is_charged`` is the flag that
  says so) and NaN PID. It is applied whenever a model asks for a feature of
  the ``particle_type`` group (:data:`NEUTRAL_TOKEN_FEATURES`), by
  :func:`flavortag.batching.tensors.build_event_tensors`, the one place every
  training, evaluation and prediction path makes its inputs; records without
  ``neutrals`` are left as they are (all tokens charged).
* The PID features (dN/dx and time-of-flight pulls under the pion, kaon and
  proton hypotheses, the TOF mass squared) are written once against
  :mod:`flavortag.array_ops` on :class:`~flavortag.features.padded.PaddedTracks`,
  with the detector model's own PID parameters (:mod:`flavortag.pid`). A track
  without a measurement (or a neutral) gets 0 and ``has_pid`` 0.
* :func:`as_neutral_tokens`: the same conventions on padded arrays (the raw-input
  ONNX graph, whose ``particle`` input gives each slot its type).
* :func:`kaon_mask`: the kaon candidates of the LCFIPlus-era event variables
  (``n_kaons``, ...): a charged track whose combined chi^2 (dN/dx and TOF
  pulls) under the kaon hypothesis is below the pion's by more than
  :data:`KAON_CHI2_MARGIN` and below the proton's.
"""

from __future__ import annotations

import math

import awkward as ak
import numpy as np

from flavortag import pid
from flavortag.array_ops import Array, ops_for
from flavortag.features.padded import PARTICLE_FIELDS, VECTOR_INDEX, PaddedTracks

#: Track features that make the neutral particles tokens (the particle-type flags).
NEUTRAL_TOKEN_FEATURES: tuple[str, ...] = ("is_charged", "is_photon", "is_neutral_hadron")
#: Pulls are clipped to +-PULL_CLIP, the TOF mass squared to [-1, 4] GeV^2.
PULL_CLIP: float = 20.0
MASS2_RANGE_GEV2: tuple[float, float] = (-1.0, 4.0)
#: A kaon candidate's chi^2 is below the pion hypothesis's by more than this.
KAON_CHI2_MARGIN: float = 4.0
#: ``particle_type`` codes.
CHARGED, PHOTON, NEUTRAL_HADRON = 0, 1, 2
#: A neutral token's fields that are 0 (reference point at the origin: every impact parameter is 0; no
#: charge); its other fields but the 4-momentum and the type are NaN (not measured).
NEUTRAL_ZERO_FIELDS: tuple[str, ...] = ("x", "y", "z", "charge")
HYPOTHESES: dict[str, float] = {"pi": pid.PION_MASS_GEV, "k": pid.KAON_MASS_GEV, "p": pid.PROTON_MASS_GEV}


def uses_neutral_tokens(track_feature_names: tuple[str, ...] | list[str]) -> bool:
    """True when the features ask for the particle type (the neutrals then become tokens)."""
    return any(n in NEUTRAL_TOKEN_FEATURES for n in track_feature_names)


def with_neutral_tokens(events: ak.Array) -> ak.Array:
    """``events`` whose ``tracks`` also hold the ``neutrals`` (see the module doc); unchanged without them."""
    if "neutrals" not in ak.fields(events):
        return events
    tracks, neutrals = events["tracks"], events["neutrals"]
    keep = [f for f in ("E", "px", "py", "pz", "x", "y", "z", "charge", "dndx", "tof_ns", "track_length_mm",
                        "sigma_d0", "sigma_z0") if f in ak.fields(tracks)]
    charged = {f: ak.values_astype(tracks[f], np.float32) for f in keep}
    charged["particle_type"] = ak.values_astype(tracks["E"] * 0, np.int8)
    zero = ak.values_astype(neutrals["E"] * 0, np.float32)
    nan = zero + np.float32(np.nan)
    neutral = {f: (ak.values_astype(neutrals[f], np.float32) if f in ("E", "px", "py", "pz")
                   else zero if f in NEUTRAL_ZERO_FIELDS else nan) for f in keep}
    neutral["particle_type"] = ak.values_astype(
        ak.where(neutrals["pid_pdg"] == 22, PHOTON, NEUTRAL_HADRON), np.int8)
    merged = ak.concatenate([ak.zip(charged), ak.zip(neutral)], axis=1)
    return ak.with_field(events, merged, "tracks")


def as_neutral_tokens(vectors: Array, particle: Array) -> tuple[Array, Array]:
    """Padded ``vectors [B, N, 7]`` and ``particle [B, N, 5]`` (:data:`PARTICLE_FIELDS`) with every slot
    whose type is not charged written as :func:`with_neutral_tokens` writes a neutral (numpy or torch):
    its 4-momentum and type kept, :data:`NEUTRAL_ZERO_FIELDS` 0, the PID NaN."""
    ops = ops_for(vectors)
    neutral = particle[..., PARTICLE_FIELDS.index("particle_type")] != CHARGED

    def written(values: Array, names: tuple[str, ...] | list[str], kept: tuple[str, ...]) -> Array:
        return ops.stack([values[..., i] if name in kept else
                          ops.where(neutral, 0.0 if name in NEUTRAL_ZERO_FIELDS else math.nan, values[..., i])
                          for i, name in enumerate(names)], -1)

    return (written(vectors, list(VECTOR_INDEX), ("E", "px", "py", "pz")),
            written(particle, PARTICLE_FIELDS, ("particle_type",)))


def particle_type_flag(q: PaddedTracks, code: int) -> Array:
    """1.0 where the token is of type ``code`` (0 charged, 1 photon, 2 neutral hadron), else 0."""
    return q.ops.where(q.particle_field("particle_type") == code, 1.0, 0.0)


def _finite_or_zero(q: PaddedTracks, values: Array) -> Array:
    return q.ops.where(values == values, values, 0.0)  # NaN != NaN


def has_pid(q: PaddedTracks) -> Array:
    """1.0 for a track with a dN/dx measurement."""
    dndx = q.particle_field("dndx")
    return q.ops.where(dndx == dndx, 1.0, 0.0)


def dndx_pull(q: PaddedTracks, mass_gev: float) -> Array:
    """``(dndx / N(p, m) - 1) / dndx_resolution`` under the mass hypothesis (0 without dN/dx)."""
    det = q.detector
    expected = pid.expected_dndx_per_mm(q.p, mass_gev, det.dndx_mip_per_mm)
    pull = (q.particle_field("dndx") / q.ops.clip_min(expected, 1e-9) - 1.0) / det.dndx_resolution
    return q.ops.clip_max(q.ops.clip_min(_finite_or_zero(q, pull), -PULL_CLIP), PULL_CLIP)


def tof_pull(q: PaddedTracks, mass_gev: float) -> Array:
    """``(t - L / (beta c)) / sigma_t`` under the mass hypothesis (0 without a time of flight)."""
    det = q.detector
    length = q.particle_field("track_length_mm")
    expected = pid.expected_tof_ns(q.p, mass_gev, length)
    pull = (q.particle_field("tof_ns") - expected) / (det.tof_resolution_ps * 1e-3)
    return q.ops.clip_max(q.ops.clip_min(_finite_or_zero(q, pull), -PULL_CLIP), PULL_CLIP)


def mass2_tof(q: PaddedTracks) -> Array:
    """The TOF mass squared (GeV^2, :func:`flavortag.pid.mass2_tof_gev2`), clipped; 0 without TOF."""
    m2 = pid.mass2_tof_gev2(q.p, q.particle_field("tof_ns"), q.particle_field("track_length_mm"))
    low, high = MASS2_RANGE_GEV2
    return q.ops.clip_max(q.ops.clip_min(_finite_or_zero(q, m2), low), high)


def kaon_mask(q: PaddedTracks) -> Array:
    """True for a charged, measured track that the PID calls a kaon (see the module doc)."""
    chi2 = {h: dndx_pull(q, m) ** 2 + tof_pull(q, m) ** 2 for h, m in HYPOTHESES.items()}
    return (q.valid & (has_pid(q) > 0.5) & (particle_type_flag(q, CHARGED) > 0.5)
            & (chi2["k"] + KAON_CHI2_MARGIN < chi2["pi"]) & (chi2["k"] < chi2["p"]))


__all__ = ["NEUTRAL_TOKEN_FEATURES", "NEUTRAL_ZERO_FIELDS", "PARTICLE_FIELDS", "as_neutral_tokens", "kaon_mask",
           "uses_neutral_tokens", "with_neutral_tokens"]
