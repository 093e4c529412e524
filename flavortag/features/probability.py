"""Track and hemisphere probabilities of being prompt (the LEP / LCFIPlus joint probability).

For a track with impact-parameter significance ``S`` drawn from a unit Gaussian
resolution function (a prompt track), the probability of a significance at
least as large in magnitude is ``R(S) = 2 Phi(-|S|) = erfc(|S| / sqrt 2)``.
The probabilities of ``N`` independent prompt tracks combine (ALEPH, LCFIPlus)
into

    P = Pi * sum_{k=0}^{N-1} (-ln Pi)^k / k!,     Pi = prod_i R(S_i),

which is uniform on [0, 1] for a group of prompt tracks and small for a group
of displaced ones. Everything is done in logarithms so that groups of very
displaced tracks (``Pi`` far below the smallest float) stay finite.

numpy or torch (:mod:`flavortag.array_ops`: the same lines run in the raw-input
ONNX graph); no scipy (the complementary error function is the Numerical
Recipes Chebyshev fit, relative error below 1.2e-7 for all arguments).
"""

from __future__ import annotations

import math

import numpy as np

from flavortag.array_ops import LN10, Array, NumpyOps, ops_for
from flavortag.ragged import offsets_from_counts, ragged_to_padded

#: log10 of the joint probability is clipped from below at this value, so that a
#: hemisphere of K0S daughters (log10 P ~ -1e6) does not dominate a standardised input.
LOG10_JPROB_FLOOR: float = -30.0

_ERFC_COEFFS = (
    -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
    0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277,
)


def log_erfc(z: Array) -> Array:
    """Natural log of erfc(|z|), finite for every finite ``z`` (float64; numpy or torch)."""
    ops = ops_for(z)
    if isinstance(ops, NumpyOps):
        z = np.asarray(z, dtype=np.float64)
    z = ops.abs(z)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = t * 0.0 + _ERFC_COEFFS[-1]
    for c in _ERFC_COEFFS[-2::-1]:
        poly = c + t * poly
    return ops.log(t) - z * z + poly


def log_prompt_probability(significance: Array) -> Array:
    """ln R(S) = ln(2 Phi(-|S|)): log probability that a prompt track has |significance| >= |S|."""
    if isinstance(ops_for(significance), NumpyOps):
        significance = np.asarray(significance, dtype=np.float64)
    return log_erfc(significance / math.sqrt(2.0))


def log10_joint_probability_padded(log_prob: Array, take: Array, floor: float = LOG10_JPROB_FLOOR) -> Array:
    """log10 of the joint prompt probability of each group, groups padded along the last axis.

    ``log_prob [..., K]``: ln R of each slot; ``take [..., K]`` (bool): the
    slots that take part (e.g. real lifetime tracks with positive signed
    significance). Returns ``[...]``; a group with no slot taken gets 0 (P = 1),
    values below ``floor`` are set to ``floor``; ``K`` must be at least 1. numpy or torch: the one
    implementation behind :func:`log10_joint_probability` and the raw-input ONNX graph.
    """
    ops = ops_for(log_prob)
    # ln R <= 0; the erfc fit gives ln R(0) a hair above 0 (exactly prompt tracks of a
    # generator-level sample), which would make -ln Pi negative and its log nan
    ln_r = ops.where(take, ops.clip_max(log_prob, 0.0), 0.0)
    ln_pi = ops.sum(ln_r, -1)
    n = ops.sum(ops.float64(take), -1)
    # y = -ln Pi >= 0; at y = 0 (Pi = 1) every k > 0 term vanishes, as it does (to far below
    # float precision, and the result is clipped to <= 0) with y floored at 1e-300
    ln_y = ops.log(ops.clip_min(-ln_pi, 1e-300))
    k = ops.arange_like_last(log_prob)
    ln_k_factorial = ops.cumsum(ops.log(ops.clip_min(k, 1.0)), 0)
    # ln sum_{k<N} y^k / k!
    terms = k * ln_y[..., None] - ln_k_factorial
    terms = ops.where(k < n[..., None], terms, -math.inf)
    top = ops.where(n > 0.0, ops.max(terms, -1), 0.0)
    ln_sum = top + ops.log(ops.sum(ops.exp(terms - top[..., None]), -1))
    log10_p = (ln_pi + ln_sum) / LN10
    log10_p = ops.where(n > 0.0, ops.clip_max(log10_p, 0.0), 0.0)
    return ops.clip_min(log10_p, floor)


def log10_joint_probability(
    log_prob: np.ndarray, group: np.ndarray, n_groups: int, floor: float = LOG10_JPROB_FLOOR
) -> np.ndarray:
    """log10 of the joint prompt probability of each group of tracks (flat numpy form).

    ``log_prob``: ln R of each track (only the tracks that take part, e.g. those
    with positive signed significance); ``group``: integer group (hemisphere or
    event) of each track, in ``[0, n_groups)``. Returns float64 ``[n_groups]``;
    a group with no tracks gets 0 (P = 1), values below ``floor`` are set to
    ``floor``. Pads the groups and calls :func:`log10_joint_probability_padded`.
    """
    log_prob = np.asarray(log_prob, dtype=np.float64)
    group = np.asarray(group, dtype=np.int64)
    order = np.argsort(group, kind="stable")
    offsets = offsets_from_counts(np.bincount(group, minlength=n_groups))
    counts = np.diff(offsets)
    longest = int(counts.max()) if len(counts) else 0
    padded, take = ragged_to_padded(log_prob[order], offsets, max(longest, 1))
    return np.asarray(log10_joint_probability_padded(padded, take, floor), dtype=np.float64)
