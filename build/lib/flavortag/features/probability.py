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

Numpy only; no scipy (the complementary error function is the Numerical
Recipes Chebyshev fit, relative error below 1.2e-7 for all arguments).
"""

from __future__ import annotations

import math

import numpy as np

#: log10 of the joint probability is clipped from below at this value, so that a
#: hemisphere of K0S daughters (log10 P ~ -1e6) does not dominate a standardised input.
LOG10_JPROB_FLOOR: float = -30.0

_ERFC_COEFFS = (
    -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
    0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277,
)


def log_erfc(z: np.ndarray) -> np.ndarray:
    """Natural log of erfc(|z|), finite for every finite ``z`` (float64)."""
    z = np.abs(np.asarray(z, dtype=np.float64))
    t = 1.0 / (1.0 + 0.5 * z)
    poly = np.full_like(t, _ERFC_COEFFS[-1])
    for c in _ERFC_COEFFS[-2::-1]:
        poly = c + t * poly
    return np.log(t) - z * z + poly


def log_prompt_probability(significance: np.ndarray) -> np.ndarray:
    """ln R(S) = ln(2 Phi(-|S|)): log probability that a prompt track has |significance| >= |S|."""
    return log_erfc(np.asarray(significance, dtype=np.float64) / math.sqrt(2.0))


def log10_joint_probability(
    log_prob: np.ndarray, group: np.ndarray, n_groups: int, floor: float = LOG10_JPROB_FLOOR
) -> np.ndarray:
    """log10 of the joint prompt probability of each group of tracks.

    ``log_prob``: ln R of each track (only the tracks that take part, e.g. those
    with positive signed significance); ``group``: integer group (hemisphere or
    event) of each track, in ``[0, n_groups)``. Returns float64 ``[n_groups]``;
    a group with no tracks gets 0 (P = 1), values below ``floor`` are set to
    ``floor``.
    """
    log_prob = np.asarray(log_prob, dtype=np.float64)
    group = np.asarray(group, dtype=np.int64)
    ln_pi = np.bincount(group, weights=log_prob, minlength=n_groups)
    n = np.bincount(group, minlength=n_groups)
    y = -ln_pi  # >= 0
    # ln sum_{k<N} y^k / k!, accumulated term by term (a loop over k, not over tracks).
    ln_sum = np.zeros(n_groups)
    n_max = int(n.max()) if n_groups else 0
    with np.errstate(divide="ignore"):
        ln_y = np.log(y)
    for k in range(1, n_max):
        active = np.flatnonzero(n > k)
        term = k * ln_y[active] - math.lgamma(k + 1)
        ln_sum[active] = np.logaddexp(ln_sum[active], term)
    log10_p = (ln_pi + ln_sum) / math.log(10.0)
    log10_p = np.where(n > 0, np.minimum(log10_p, 0.0), 0.0)
    return np.maximum(log10_p, floor)
