"""The numba kernels of :mod:`flavortag.io.text_kernel` (imported only when they are used).

Module-level functions, so that ``cache=True`` keeps the compiled code on disk.
"""

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def fill(E: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray, x: np.ndarray, y: np.ndarray,  # noqa: N803
         z: np.ndarray, bitmap: np.ndarray, bit_offset: int, out: tuple, out_axis: np.ndarray,
         out_offsets: np.ndarray, t0: int, e0: int, e_first: int, tol_abs: np.float32,
         one_minus_rel: np.float32, axis_tol: np.float32, one: np.float32) -> tuple[int, int]:  # pragma: no cover
    """Check and copy rows ``E .. z`` (E null on axis rows, per ``bitmap``) into the outputs.

    Tracks go to ``out[k][t0:]``, axes to ``out_axis[e0:]``, each event's first
    track to ``out_offsets``; returns ``(t, e)`` after the last row, or
    ``(-1, -1)`` at the first row the checks refuse (or a track row before any
    axis row since ``e_first``). Same float32 operations, in the same order, as
    :func:`flavortag.io.checks.energy_ok_mask` and ``axis_ok_mask``.
    """
    t = t0
    e = e0
    for i in range(len(E)):
        bit = bit_offset + i
        if (bitmap[bit >> 3] >> (bit & 7)) & 1:
            if e == e_first:
                return -1, -1  # a track row before the piece's first axis row
            ev, a, b, c = E[i], px[i], py[i], pz[i]
            xv, yv, zv = x[i], y[i], z[i]
            p2 = a * a
            p2 += b * b
            p2 += c * c
            p = np.sqrt(p2) * one_minus_rel
            if not (ev + tol_abs >= p):
                return -1, -1
            if not (ev >= 0) or not np.isfinite(ev) or not np.isfinite(xv) or not np.isfinite(yv) \
                    or not np.isfinite(zv):
                return -1, -1
            out[0][t] = ev
            out[1][t] = a
            out[2][t] = b
            out[3][t] = c
            out[4][t] = xv
            out[5][t] = yv
            out[6][t] = zv
            t += 1
        else:
            ax, ay, az = x[i], y[i], z[i]
            n2 = ax * ax
            n2 += ay * ay
            n2 += az * az
            if not (np.abs(np.sqrt(n2) - one) <= axis_tol):
                return -1, -1
            out_axis[e, 0] = ax
            out_axis[e, 1] = ay
            out_axis[e, 2] = az
            out_offsets[e] = t
            e += 1
    return t, e
