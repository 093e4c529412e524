"""The per-track physics of the features, written once for numpy and torch, on padded events.

``PaddedTracks`` takes events as padded arrays, the layout a C++ framework
hands to the exported raw-input ONNX model:

* ``vectors [B, N, 7]``: (E, px, py, pz, x, y, z) in GeV / mm, float64;
* ``valid [B, N]``: True for a real track (any pattern; padded slots are ignored);
* ``axis [B, 3]``: the event (or jet) axis, any length (normalised here; a zero axis is +z);
* ``resolution_scale [S, 2]`` (S = 1 or B): the (d0, z0) resolution scales of a
  calibration or augmentation (None: 1); or ``[B, N, 2]``: one per track (the
  ``function`` calibration);
* ``measured_sigma [B, N, 2]``: each track's own sigma(d0), sigma(z0) in mm from
  its track fit (None: the detector model's parametric resolution; a value
  <= 0 (or NaN) also falls back to the parametric one for that track);
* ``particle [B, N, 5]``: the particle-flow fields :data:`PARTICLE_FIELDS`
  (particle type 0 charged / 1 photon / 2 neutral hadron, charge, dN/dx,
  time of flight, track length; NaN where not measured), None without them.

Every quantity is a lazily computed ``[B, N]`` array (``[B, 1]`` for the axis
components) in the namespace of the inputs (:mod:`flavortag.array_ops`): numpy
for training and analysis (:class:`flavortag.features.TrackQuantities` calls it
chunk by chunk), torch inside :mod:`flavortag.export_raw`, whose graph is
therefore the same arithmetic. Values in padded slots are finite but
meaningless; every sum over tracks masks them with ``valid``.

Conventions (see docs/FEATURES.md for the table of features):

* hemisphere ``h = +1`` if ``p . axis >= 0`` else ``-1``; the *oriented axis*
  of a track is ``h * axis`` (the axis pointing into the track's hemisphere);
* ``d0 = (x py - y px) / pT``, ``z0 = z - (x px + y py) pz / pT^2`` (mm; straight
  line from the track's reference point to the beam line, docs/FORMAT.md);
* lifetime sign of d0: sign of ``PCA_xy . oriented_axis_xy`` where
  ``PCA_xy = d0 (py, -px) / pT`` is the point of closest approach in xy;
  of z0: sign of ``z0 * oriented_axis_z`` (LCFIPlus / ATLAS convention; a zero
  dot product counts as +);
* significances divide by the track's resolution: its measured sigma where
  given (> 0), else ``DetectorModel.sigma_d0_mm(p, sin theta)`` /
  ``sigma_z0_mm``; times the resolution scale.
"""

from __future__ import annotations

import math
from functools import cached_property

from flavortag.array_ops import Array, NumpyOps, TorchOps, ops_for
from flavortag.detector import PION_MASS_GEV, DetectorModel

_TINY = 1e-12

#: Index of each raw per-track field in the last axis of ``vectors``.
VECTOR_INDEX: dict[str, int] = {name: i for i, name in enumerate(("E", "px", "py", "pz", "x", "y", "z"))}
#: The optional particle-flow fields of ``particle`` (issue 25; docs/FORMAT.md "Particle flow").
PARTICLE_FIELDS: tuple[str, ...] = ("particle_type", "charge", "dndx", "tof_ns", "track_length_mm")


def particle_fill(name: str) -> float:
    """The value of particle-flow field ``name`` where the records lack it: type 0 (charged), else NaN."""
    return 0.0 if name == "particle_type" else math.nan


class PaddedTracks:
    """Per-track quantities of padded events (see the module doc), lazily computed, float64.

    ``used_inputs`` records which optional inputs (``"resolution_scale"``,
    ``"track_sigma"``) the quantities asked for so far have read: the ONNX
    export keeps only the graph inputs that the chosen features need.
    """

    def __init__(
        self,
        vectors: Array,
        valid: Array,
        axis: Array,
        detector: DetectorModel | None = None,
        resolution_scale: Array | None = None,
        measured_sigma: Array | None = None,
        particle: Array | None = None,
    ) -> None:
        self.ops: NumpyOps | TorchOps = ops_for(vectors)
        self.vectors = vectors
        self.valid = valid
        self.raw_axis = axis
        self.detector = detector if detector is not None else DetectorModel()
        self.resolution_scale = resolution_scale
        self.measured_sigma = measured_sigma
        self.particle = particle
        self.used_inputs: set[str] = set()

    def particle_field(self, name: str) -> Array:
        """A particle-flow field ``[B, N]`` (:data:`PARTICLE_FIELDS`; all NaN but the type 0 without them)."""
        self.used_inputs.add("particle")
        index = PARTICLE_FIELDS.index(name)
        if self.particle is None:
            return self.ops.full_like(self.field("E"), particle_fill(name))
        return self.particle[..., index]

    def field(self, name: str) -> Array:
        """A raw per-track field of ``vectors`` (``E``, ``px``, ..., ``z``), ``[B, N]``."""
        if name not in VECTOR_INDEX:
            raise KeyError(f"padded tracks hold only {list(VECTOR_INDEX)}, not {name!r}")
        return self.vectors[..., VECTOR_INDEX[name]]

    # ---- the axis ------------------------------------------------------------------------
    @cached_property
    def axis_components(self) -> tuple[Array, Array, Array]:
        """Unit axis components, each ``[B, 1]`` (a zero axis becomes +z)."""
        ops, a = self.ops, self.raw_axis
        norm = ops.sqrt(a[:, 0] * a[:, 0] + a[:, 1] * a[:, 1] + a[:, 2] * a[:, 2])
        good = norm > 0.0
        safe = ops.where(good, norm, 1.0)
        ax = ops.where(good, a[:, 0] / safe, 0.0)
        ay = ops.where(good, a[:, 1] / safe, 0.0)
        az = ops.where(good, a[:, 2] / safe, 1.0)
        return ax[:, None], ay[:, None], az[:, None]

    # ---- raw kinematics ------------------------------------------------------------------
    @cached_property
    def p(self) -> Array:
        """|p| in GeV."""
        px, py, pz = self.field("px"), self.field("py"), self.field("pz")
        return self.ops.sqrt(px * px + py * py + pz * pz)

    @cached_property
    def pt(self) -> Array:
        """Transverse momentum to the beam in GeV."""
        return self.ops.hypot(self.field("px"), self.field("py"))

    @cached_property
    def sin_theta(self) -> Array:
        """sin of the polar angle."""
        return self.pt / self.ops.clip_min(self.p, _TINY)

    @cached_property
    def cos_theta(self) -> Array:
        """cos of the polar angle."""
        return self.field("pz") / self.ops.clip_min(self.p, _TINY)

    @cached_property
    def energy_pion(self) -> Array:
        """Energy with the pion mass hypothesis, sqrt(p^2 + m_pi^2), GeV."""
        return self.ops.sqrt(self.p * self.p + PION_MASS_GEV**2)

    # ---- relative to the axis ------------------------------------------------------------
    @cached_property
    def p_dot_axis(self) -> Array:
        """p . axis (GeV)."""
        ax, ay, az = self.axis_components
        return self.field("px") * ax + self.field("py") * ay + self.field("pz") * az

    @cached_property
    def plus(self) -> Array:
        """Real tracks of the + hemisphere (p . axis >= 0), bool ``[B, N]``."""
        return self.valid & (self.p_dot_axis >= 0.0)

    @cached_property
    def minus(self) -> Array:
        """Real tracks of the - hemisphere, bool ``[B, N]``."""
        return self.valid & (self.p_dot_axis < 0.0)

    @cached_property
    def hemisphere(self) -> Array:
        """+1 if p . axis >= 0 else -1 (float64)."""
        return self.ops.where(self.p_dot_axis >= 0.0, 1.0, -1.0)

    @cached_property
    def oriented_axis(self) -> tuple[Array, Array, Array]:
        """The axis pointing into the track's hemisphere, three ``[B, N]`` components."""
        ax, ay, az = self.axis_components
        h = self.hemisphere
        return ax * h, ay * h, az * h

    @cached_property
    def p_parallel(self) -> Array:
        """|p . axis| (GeV), the momentum along the oriented axis."""
        return self.ops.abs(self.p_dot_axis)

    @cached_property
    def ptrel(self) -> Array:
        """|p x axis| (GeV), momentum transverse to the axis."""
        ax, ay, az = self.axis_components
        px, py, pz = self.field("px"), self.field("py"), self.field("pz")
        cx, cy, cz = py * az - pz * ay, pz * ax - px * az, px * ay - py * ax
        return self.ops.sqrt(cx * cx + cy * cy + cz * cz)

    @cached_property
    def angle_axis(self) -> Array:
        """Angle between p and the oriented axis, in [0, pi/2] rad."""
        return self.ops.atan2(self.ptrel, self.p_parallel)

    @cached_property
    def dphi_axis(self) -> Array:
        """Azimuth of p minus azimuth of the oriented axis, wrapped to [-pi, pi)."""
        ox, oy, _ = self.oriented_axis
        dphi = self.ops.atan2(self.field("py"), self.field("px")) - self.ops.atan2(oy, ox)
        return (dphi + math.pi) % (2.0 * math.pi) - math.pi

    @cached_property
    def dtheta_axis(self) -> Array:
        """Polar angle of p minus polar angle of the oriented axis (rad)."""
        ox, oy, oz = self.oriented_axis
        theta_p = self.ops.atan2(self.pt, self.field("pz"))
        theta_a = self.ops.atan2(self.ops.hypot(ox, oy), oz)
        return theta_p - theta_a

    def hemisphere_sums(self, values: Array, mask: Array | None = None) -> Array:
        """Sum of ``values [B, N]`` over the real tracks (and ``mask``) of each hemisphere, ``[B, 2]`` (+, -)."""
        plus, minus = self.plus, self.minus
        if mask is not None:
            plus, minus = plus & mask, minus & mask
        ops = self.ops
        return ops.stack([ops.sum(ops.where(plus, values, 0.0), 1),
                          ops.sum(ops.where(minus, values, 0.0), 1)], 1)

    def hemisphere_total(self, values: Array) -> Array:
        """For each track, the sum of ``values`` over its hemisphere's real tracks, ``[B, N]``."""
        sums = self.hemisphere_sums(values)
        return self.ops.where(self.p_dot_axis >= 0.0, sums[:, 0:1], sums[:, 1:2])

    @cached_property
    def e_frac_hemi(self) -> Array:
        """E / (sum of E over the track's hemisphere)."""
        e = self.field("E")
        return e / self.ops.clip_min(self.hemisphere_total(e), _TINY)

    @cached_property
    def p_frac_hemi(self) -> Array:
        """|p| / (sum of |p| over the track's hemisphere)."""
        return self.p / self.ops.clip_min(self.hemisphere_total(self.p), _TINY)

    # ---- impact parameters ---------------------------------------------------------------
    @cached_property
    def d0(self) -> Array:
        """Transverse impact parameter (mm), geometric sign ``(x py - y px) / pT``."""
        x, y = self.field("x"), self.field("y")
        px, py = self.field("px"), self.field("py")
        return (x * py - y * px) / self.ops.clip_min(self.pt, _TINY)

    @cached_property
    def z0(self) -> Array:
        """Longitudinal impact parameter (mm): z at the point of closest approach in xy."""
        x, y, z = self.field("x"), self.field("y"), self.field("z")
        px, py, pz = self.field("px"), self.field("py"), self.field("pz")
        return z - (x * px + y * py) * pz / self.ops.clip_min(self.pt * self.pt, _TINY)

    @cached_property
    def d0_lifetime_sign(self) -> Array:
        """sign(PCA_xy . oriented_axis_xy), PCA_xy = d0 (py, -px) / pT; +1 on ties."""
        ox, oy, _ = self.oriented_axis
        dot = self.d0 * (self.field("py") * ox - self.field("px") * oy)
        return self.ops.where(dot >= 0.0, 1.0, -1.0)

    @cached_property
    def z0_lifetime_sign(self) -> Array:
        """sign(z0 * oriented_axis_z); +1 on ties."""
        return self.ops.where(self.z0 * self.oriented_axis[2] >= 0.0, 1.0, -1.0)

    def _scale(self, column: int) -> Array:
        ones = self.ops.full_like(self.p, 1.0)
        if self.resolution_scale is None:
            return ones
        self.used_inputs.add("resolution_scale")
        if len(self.resolution_scale.shape) == 3:  # one scale per track
            return self.resolution_scale[..., column] * ones
        return self.resolution_scale[:, column:column + 1] * ones

    @cached_property
    def d0_resolution_scale(self) -> Array:
        """Scale of the d0 resolution of each track's event (1 when none given), ``[B, N]``."""
        return self._scale(0)

    @cached_property
    def z0_resolution_scale(self) -> Array:
        """Scale of the z0 resolution of each track's event (1 when none given), ``[B, N]``."""
        return self._scale(1)

    def _base_sigma(self, column: int, parametric: Array) -> Array:
        if self.measured_sigma is None:
            return parametric
        self.used_inputs.add("track_sigma")
        measured = self.measured_sigma[..., column]
        return self.ops.where(measured > 0.0, measured, parametric)

    @cached_property
    def sigma_d0(self) -> Array:
        """d0 resolution (mm): measured (or the detector model's), times the resolution scale."""
        parametric = self.detector.sigma_d0_mm(self.p, self.sin_theta)
        return self._base_sigma(0, parametric) * self.d0_resolution_scale

    @cached_property
    def sigma_z0(self) -> Array:
        """z0 resolution (mm): measured (or the detector model's), times the resolution scale."""
        parametric = self.detector.sigma_z0_mm(self.p, self.sin_theta)
        return self._base_sigma(1, parametric) * self.z0_resolution_scale

    @cached_property
    def d0_sig(self) -> Array:
        """d0 / sigma_d0 (geometric sign)."""
        return self.d0 / self.sigma_d0

    @cached_property
    def z0_sig(self) -> Array:
        """z0 / sigma_z0 (geometric sign)."""
        return self.z0 / self.sigma_z0

    @cached_property
    def signed_d0(self) -> Array:
        """Lifetime-signed d0 (mm)."""
        return self.ops.abs(self.d0) * self.d0_lifetime_sign

    @cached_property
    def signed_z0(self) -> Array:
        """Lifetime-signed z0 (mm)."""
        return self.ops.abs(self.z0) * self.z0_lifetime_sign

    @cached_property
    def signed_d0_sig(self) -> Array:
        """Lifetime-signed d0 significance."""
        return self.ops.abs(self.d0_sig) * self.d0_lifetime_sign

    @cached_property
    def signed_z0_sig(self) -> Array:
        """Lifetime-signed z0 significance."""
        return self.ops.abs(self.z0_sig) * self.z0_lifetime_sign

    @cached_property
    def ip3d_sig(self) -> Array:
        """sqrt(S_d0^2 + S_z0^2), unsigned."""
        return self.ops.hypot(self.d0_sig, self.z0_sig)

    @cached_property
    def signed_ip3d_sig(self) -> Array:
        """3D significance with the lifetime sign of d0."""
        return self.ip3d_sig * self.d0_lifetime_sign


def compressed(value: Array) -> Array:
    """``sign(v) * ln(1 + |v|)``: keeps the sign, tames the tails of significances."""
    ops = ops_for(value)
    return ops.sign(value) * ops.log1p(ops.abs(value))
