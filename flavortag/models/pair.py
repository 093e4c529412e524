"""Pairwise track features for attention biases (Particle-Transformer style, adapted to e+e-).

Computed inside the model from the raw track four-momenta and reference
points ``vectors [B, N, 7] = (E, px, py, pz, x, y, z)`` in GeV and mm, for every
ordered pair ``(i, j)``:

* ``ln_delta``: ln of the 3D opening angle Delta between the momenta (rad). In
  e+e- there is no preferred boost axis, so the angle replaces ParT's
  (rapidity, phi) distance.
* ``ln_kt``:    ln kT with the Durham form ``kT = min(E_i, E_j) * 2 sin(Delta/2)`` (GeV).
* ``ln_z``:     ln ``min(E_i, E_j) / (E_i + E_j)``.
* ``ln_m2``:    ln of the pair invariant mass squared (GeV^2), written as
  ``m_i^2 + m_j^2 + 2 (E_i E_j - |p_i||p_j|) + 4 |p_i||p_j| sin^2(Delta/2)`` with
  ``E_i E_j - |p_i||p_j| = (E_i^2 m_j^2 + |p_j|^2 m_i^2) / (E_i E_j + |p_i||p_j|)``, so
  that float32 does not cancel away small masses of energetic collinear pairs
  (the naive ``(E_i + E_j)^2 - |p_i + p_j|^2`` does). A particle whose own
  ``E^2 - |p|^2`` is below ``MASSLESS_M2_PER_E2 * E^2`` counts as massless: for the
  neutral tokens (photons, neutral hadrons, ``|p| = E``) it is float32 rounding noise
  of either sign, which differs between torch and onnxruntime (and then swung
  ``ln_m2`` of energetic neutral pairs by several units); a charged track (pion
  mass hypothesis) lies above the cut up to E = 140 GeV.
* ``ln_dca``:   ln of the distance of closest approach between the two tracks'
  straight lines (reference point + momentum direction), in mm. Tracks from
  one displaced (b/c) vertex have a small DCA, which is how this feature
  carries secondary-vertex information. Straight lines ignore the magnetic
  field bending, a fair approximation over the millimetres that matter.

Every quantity is floored before the log (``FLOORS``) and shifted/scaled by
fixed constants measured on simulated Z-pole events (``STANDARDISATION``) so the
embedding network sees numbers of order one. Pairs involving a padded track are 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from flavortag.models.base import pack_slots, slot_index, unpack_slots
from flavortag.models.layers import dense_stack

PAIR_FEATURES: tuple[str, ...] = ("ln_kt", "ln_z", "ln_delta", "ln_m2", "ln_dca")

KT_FLOOR_GEV: float = 1e-4
Z_FLOOR: float = 1e-4
DELTA_FLOOR_RAD: float = 1e-5
M2_FLOOR_GEV2: float = 1e-6
DCA_FLOOR_MM: float = 1e-4  # 0.1 micron, far below the impact-parameter resolution

#: Values below these are raised to them before taking the log (units as above).
FLOORS: dict[str, float] = {
    "ln_kt": KT_FLOOR_GEV,
    "ln_z": Z_FLOOR,
    "ln_delta": DELTA_FLOOR_RAD,
    "ln_m2": M2_FLOOR_GEV2,
    "ln_dca": DCA_FLOOR_MM,
}

#: (centre, width) subtracted/divided after the log: mean and standard deviation over
#: distinct track pairs of Pythia 8 Z-pole uds + bb events with the default ILD-like
#: detector (flavortag.generate, 200 events), rounded. Fixed constants, not fitted.
STANDARDISATION: dict[str, tuple[float, float]] = {
    "ln_kt": (-0.3, 1.1),
    "ln_z": (-1.5, 0.7),
    "ln_delta": (0.1, 1.0),
    "ln_m2": (0.8, 1.8),
    "ln_dca": (-2.5, 2.7),
}

#: ``E^2 - |p|^2`` below this times ``E^2`` is 0 (float32 rounding of a massless particle is ~1e-7 E^2).
MASSLESS_M2_PER_E2: float = 1e-6
PARALLEL_SIN: float = 1e-4  # below this |sin(angle)| the two lines count as parallel


def _cross(a: Tensor, b: Tensor) -> Tensor:
    """Cross product over the last axis (explicit components: exports to ONNX everywhere)."""
    ax, ay, az = a[..., 0], a[..., 1], a[..., 2]
    bx, by, bz = b[..., 0], b[..., 1], b[..., 2]
    return torch.stack((ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx), dim=-1)


def _norm(a: Tensor) -> Tensor:
    """Euclidean norm over the last axis."""
    return (a * a).sum(dim=-1).sqrt()


def pair_features(
    vectors: Tensor,
    valid: Tensor,
    kt_floor_gev: float = KT_FLOOR_GEV,
    z_floor: float = Z_FLOOR,
    delta_floor_rad: float = DELTA_FLOOR_RAD,
    m2_floor_gev2: float = M2_FLOOR_GEV2,
    dca_floor_mm: float = DCA_FLOOR_MM,
    parallel_sin: float = PARALLEL_SIN,
    massless_m2_per_e2: float = MASSLESS_M2_PER_E2,
) -> Tensor:
    """Return raw pair features ``[B, N, N, 5]`` in ``PAIR_FEATURES`` order (logs, not standardised).

    ``vectors [B, N, 7]`` are raw (E, px, py, pz, x, y, z) in GeV/mm; ``valid
    [B, N]`` bool. Values in padded slots are ignored; pairs with a padded track
    give 0 in every feature. The floors (see ``FLOORS``), the ``|sin(angle)|``
    below which two lines count as parallel and the massless cut can be changed (default
    arguments, not module globals: TorchScript compiles this function and reads no globals).
    """
    v = vectors.float().masked_fill(~valid.unsqueeze(-1), 0.0)
    energy = v[..., 0]
    momentum = v[..., 1:4]
    point = v[..., 4:7]
    p_abs = _norm(momentum)
    direction = momentum / p_abs.clamp(min=1e-12).unsqueeze(-1)

    e_i, e_j = energy.unsqueeze(2), energy.unsqueeze(1)
    p_i, p_j = p_abs.unsqueeze(2), p_abs.unsqueeze(1)
    u_i, u_j = direction.unsqueeze(2), direction.unsqueeze(1)

    # chord = |u_i - u_j| = 2 sin(Delta/2): accurate at small angles, unlike acos(u_i . u_j).
    chord = _norm(u_i - u_j).clamp(max=2.0)
    delta = 2.0 * torch.asin(0.5 * chord)
    e_min = torch.minimum(e_i, e_j)
    kt = e_min * chord
    z = e_min / (e_i + e_j).clamp(min=1e-12)
    mass2 = (energy - p_abs) * (energy + p_abs)
    mass2 = torch.where(mass2 > massless_m2_per_e2 * energy * energy, mass2, torch.zeros_like(mass2))
    m2_i, m2_j = mass2.unsqueeze(2), mass2.unsqueeze(1)
    # E_i E_j - |p_i||p_j| without cancellation: (E_i^2 m_j^2 + p_j^2 m_i^2) / (E_i E_j + |p_i||p_j|)
    energy_term = (e_i * e_i * m2_j + p_j * p_j * m2_i) / (e_i * e_j + p_i * p_j).clamp(min=1e-12)
    m2 = m2_i + m2_j + 2.0 * energy_term + p_i * p_j * chord * chord

    normal = _cross(u_i.expand(-1, -1, u_j.shape[2], -1), u_j.expand(-1, u_i.shape[1], -1, -1))
    sin_angle = _norm(normal)
    separation = point.unsqueeze(2) - point.unsqueeze(1)
    skew = (separation * normal).sum(dim=-1).abs() / sin_angle.clamp(min=parallel_sin)
    parallel = _norm(_cross(separation, u_i.expand_as(separation)))
    dca = torch.where(sin_angle > parallel_sin, skew, parallel)

    logs = torch.stack(
        (
            torch.log(kt.clamp(min=kt_floor_gev)),
            torch.log(z.clamp(min=z_floor)),
            torch.log(delta.clamp(min=delta_floor_rad)),
            torch.log(m2.clamp(min=m2_floor_gev2)),
            torch.log(dca.clamp(min=dca_floor_mm)),
        ),
        dim=-1,
    )
    pair_valid = valid.unsqueeze(2) & valid.unsqueeze(1)
    return logs.masked_fill(~pair_valid.unsqueeze(-1), 0.0)


class PairEmbedding(nn.Module):
    """Pairwise features -> one additive attention bias per head, ``[B, H, N, N]``.

    A pointwise MLP (``hidden_dims``) on the selected, standardised pair
    features (``names``, a subset of ``PAIR_FEATURES``).
    """

    if TYPE_CHECKING:  # buffer types for mypy; TorchScript cannot read string class annotations
        feature_index: Tensor
        centre: Tensor
        width: Tensor

    def __init__(self, names: Sequence[str], num_heads: int, hidden_dims: Sequence[int] = (32, 32),
                 activation: str = "gelu") -> None:
        super().__init__()
        names = list(names)
        unknown = sorted(set(names) - set(PAIR_FEATURES))
        if not names or unknown:
            raise ValueError(f"pair_features must be a non-empty list from {PAIR_FEATURES}, got {names}")
        self.names = names
        index = [PAIR_FEATURES.index(n) for n in names]
        self.register_buffer("feature_index", torch.tensor(index, dtype=torch.long), persistent=False)
        self.register_buffer(
            "centre", torch.tensor([STANDARDISATION[n][0] for n in names]), persistent=False
        )
        self.register_buffer(
            "width", torch.tensor([STANDARDISATION[n][1] for n in names]), persistent=False
        )
        self.net = dense_stack(len(names), [*hidden_dims, num_heads], activation, activate_last=False)

    def forward(self, vectors: Tensor, valid: Tensor) -> Tensor:
        """Return the bias ``[B, H, N, N]``; 0 for pairs with a padded track.

        The network runs on the valid pairs only (typically a fifth of the
        ``N x N`` grid), which is most of the cost of pairwise features.
        """
        pair_valid = valid.unsqueeze(2) & valid.unsqueeze(1)
        index = slot_index(pair_valid)
        raw = pair_features(vectors, valid).index_select(-1, self.feature_index)
        embedded = self.net((pack_slots(raw, index) - self.centre) / self.width)
        return unpack_slots(embedded, index, pair_valid).permute(0, 3, 1, 2)
