"""The few array operations the feature code needs, for numpy arrays and torch tensors alike.

Ground floor (beside ``detector.py`` and ``ragged.py``): numpy only at import.

The feature math (:mod:`flavortag.features.padded`) is written once against
this namespace: numpy runs it for training and analysis (no torch imported),
torch runs the same lines inside the exported raw-input ONNX graph
(:mod:`flavortag.export_raw`). Only operations that the TorchScript ONNX
exporter and onnxruntime both support in float64 are offered (``hypot`` on
torch, for instance, is written out).

:func:`ops_for` picks the namespace of an array; torch is imported only when
a torch tensor is handed in.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: An array of either namespace (numpy ndarray or torch Tensor).
Array = Any


class NumpyOps:
    """numpy implementations (float64 in, float64 out)."""

    name = "numpy"

    @staticmethod
    def where(cond: Array, a: Array | float, b: Array | float) -> Array:
        """Elementwise ``a`` where ``cond`` else ``b``."""
        return np.where(cond, a, b)

    @staticmethod
    def clip_min(x: Array, lo: float) -> Array:
        """``max(x, lo)`` elementwise."""
        return np.maximum(x, lo)

    @staticmethod
    def clip_max(x: Array, hi: float) -> Array:
        """``min(x, hi)`` elementwise."""
        return np.minimum(x, hi)

    @staticmethod
    def hypot(a: Array, b: Array | float) -> Array:
        """sqrt(a^2 + b^2)."""
        return np.hypot(a, b)

    @staticmethod
    def atan2(y: Array, x: Array) -> Array:
        """Four-quadrant arctangent."""
        return np.arctan2(y, x)

    sqrt = staticmethod(np.sqrt)

    @staticmethod
    def log(x: Array) -> Array:
        """Natural log (-inf at 0, without numpy's warning: callers mask those entries)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(x)

    log1p = staticmethod(np.log1p)
    exp = staticmethod(np.exp)
    abs = staticmethod(np.abs)
    sign = staticmethod(np.sign)

    @staticmethod
    def float64(x: Array) -> Array:
        """``x`` (bool, int or float) as float64."""
        return np.asarray(x, dtype=np.float64)

    @staticmethod
    def sum(x: Array, axis: int) -> Array:
        """Sum over ``axis``."""
        return np.sum(x, axis=axis)

    @staticmethod
    def max(x: Array, axis: int) -> Array:
        """Maximum over ``axis``."""
        return np.max(x, axis=axis)

    @staticmethod
    def min(x: Array, axis: int) -> Array:
        """Minimum over ``axis``."""
        return np.min(x, axis=axis)

    @staticmethod
    def stack(arrays: list[Array], axis: int) -> Array:
        """Stack along a new ``axis``."""
        return np.stack(arrays, axis=axis)

    @staticmethod
    def concat(arrays: list[Array], axis: int) -> Array:
        """Concatenate along ``axis``."""
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def full_like(x: Array, value: float) -> Array:
        """An array shaped like ``x`` (float64) filled with ``value``."""
        return np.full(np.shape(x), value, dtype=np.float64)

    @staticmethod
    def top_k(x: Array, k: int) -> Array:
        """The ``k`` largest values along the last axis, descending (``x`` has >= k there)."""
        return -np.sort(-x, axis=-1)[..., :k]

    @staticmethod
    def arange_like_last(x: Array) -> Array:
        """``0, 1, ..., n-1`` (float64) for ``n`` = the size of the last axis of ``x``."""
        return np.arange(x.shape[-1], dtype=np.float64)

    @staticmethod
    def cumsum(x: Array, axis: int) -> Array:
        """Cumulative sum along ``axis``."""
        return np.cumsum(x, axis=axis)


class TorchOps:
    """torch implementations that the ONNX exporter turns into float64 onnxruntime kernels."""

    name = "torch"

    def __init__(self) -> None:
        import torch

        self.torch = torch

    def where(self, cond: Array, a: Array | float, b: Array | float) -> Array:
        """Elementwise ``a`` where ``cond`` else ``b`` (two scalars give float64)."""
        t = self.torch
        if not isinstance(a, t.Tensor) and not isinstance(b, t.Tensor):
            a = t.tensor(float(a), dtype=t.float64)
        return t.where(cond, a, b)

    def clip_min(self, x: Array, lo: float) -> Array:
        """``max(x, lo)`` elementwise."""
        return self.torch.clamp(x, min=lo)

    def clip_max(self, x: Array, hi: float) -> Array:
        """``min(x, hi)`` elementwise."""
        return self.torch.clamp(x, max=hi)

    def hypot(self, a: Array, b: Array | float) -> Array:
        """sqrt(a^2 + b^2), written out (no ONNX hypot)."""
        return self.torch.sqrt(a * a + b * b)

    def atan2(self, y: Array, x: Array) -> Array:
        """Four-quadrant arctangent of float64 ``y, x``, to float64 precision.

        onnxruntime has no float64 ``Atan``: a float32 first guess ``t0`` is
        corrected once in float64, ``t = t0 + atan(e)`` with ``tan(e) =
        (y cos t0 - x sin t0) / (x cos t0 + y sin t0)``; ``|e| ~ 1e-7``, so
        ``atan(e) = tan(e)`` to far below float64 rounding. ``atan2(0, 0) = 0``.
        """
        t = self.torch
        origin = (x == 0.0) & (y == 0.0)
        x_safe = t.where(origin, t.ones_like(x), x)
        guess = t.atan2(y.to(t.float32), x_safe.to(t.float32)).to(t.float64)
        sin, cos = t.sin(guess), t.cos(guess)
        along = x_safe * cos + y * sin  # r cos(e) > 0
        across = y * cos - x_safe * sin  # r sin(e)
        return guess + t.where(along > 0.0, across / t.where(along > 0.0, along, t.ones_like(along)),
                               t.zeros_like(along))

    def sqrt(self, x: Array) -> Array:
        """Square root."""
        return self.torch.sqrt(x)

    def log(self, x: Array) -> Array:
        """Natural log."""
        return self.torch.log(x)

    def log1p(self, x: Array) -> Array:
        """ln(1 + x)."""
        return self.torch.log1p(x)

    def exp(self, x: Array) -> Array:
        """e^x."""
        return self.torch.exp(x)

    def abs(self, x: Array) -> Array:
        """|x|."""
        return self.torch.abs(x)

    def sign(self, x: Array) -> Array:
        """-1, 0 or +1."""
        return self.torch.sign(x)

    def float64(self, x: Array) -> Array:
        """``x`` (bool, int or float) as float64."""
        return x.to(self.torch.float64)

    def sum(self, x: Array, axis: int) -> Array:
        """Sum over ``axis``."""
        return self.torch.sum(x, dim=axis)

    def max(self, x: Array, axis: int) -> Array:
        """Maximum over ``axis``."""
        return self.torch.amax(x, dim=axis)

    def min(self, x: Array, axis: int) -> Array:
        """Minimum over ``axis``."""
        return self.torch.amin(x, dim=axis)

    def stack(self, arrays: list[Array], axis: int) -> Array:
        """Stack along a new ``axis``."""
        return self.torch.stack(arrays, dim=axis)

    def concat(self, arrays: list[Array], axis: int) -> Array:
        """Concatenate along ``axis``."""
        return self.torch.cat(arrays, dim=axis)

    def full_like(self, x: Array, value: float) -> Array:
        """A float64 tensor shaped like ``x`` filled with ``value``."""
        return self.torch.full_like(x, value, dtype=self.torch.float64)

    def top_k(self, x: Array, k: int) -> Array:
        """The ``k`` largest values along the last axis, descending (``x`` has >= k there)."""
        return self.torch.topk(x, k, dim=-1, largest=True, sorted=True).values

    def arange_like_last(self, x: Array) -> Array:
        """``0, 1, ..., n-1`` (float64) for ``n`` = the size of the last axis of ``x`` (dynamic in ONNX)."""
        return self.torch.arange(x.shape[-1], dtype=self.torch.float64)

    def cumsum(self, x: Array, axis: int) -> Array:
        """Cumulative sum along ``axis``."""
        return self.torch.cumsum(x, dim=axis)


_NUMPY = NumpyOps()
_TORCH: TorchOps | None = None


def ops_for(x: Array) -> NumpyOps | TorchOps:
    """The namespace of ``x``: :class:`TorchOps` for a torch tensor, else :class:`NumpyOps`."""
    global _TORCH
    if isinstance(x, np.ndarray) or np.isscalar(x):
        return _NUMPY
    if type(x).__module__.startswith("torch"):
        if _TORCH is None:
            _TORCH = TorchOps()
        return _TORCH
    return _NUMPY


LN10: float = math.log(10.0)
