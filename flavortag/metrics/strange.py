"""Strange tagging (issue 25): s efficiency at a fixed ud mistag rate, and s against g.

For a class scheme with ``s`` (code 4) and ``ud`` (code 0), e.g. ``[ud, c, b, g, s]``
(:func:`flavortag.classes.class_scheme`), the s tagger's score is
``D_s = ln(p_s / (1 - p_s))`` (s against every other class). Its cut is set where
a fraction :data:`UD_MISTAG` (10 %) of the ud jets pass; at that cut the
figures are the s efficiency and the g rejection (s against g), with binomial
errors: ``s_eff_at_ud10`` (``_err``) and ``s_rej_g_at_ud10`` (``_err``).
"""

from __future__ import annotations

import math

import numpy as np

from flavortag.classes import GG, SS, UDS, ClassScheme
from flavortag.metrics.discriminants import PROB_FLOOR
from flavortag.metrics.rejection import binomial_rejection, cut_at_efficiency

#: The ud mistag rate at which the s figures are quoted.
UD_MISTAG: float = 0.10


def has_strange(scheme: ClassScheme) -> bool:
    """True for a scheme with both s and ud (light) classes."""
    return scheme.index(SS) is not None and scheme.index(UDS) is not None


def strange_discriminant(probs: np.ndarray, scheme: ClassScheme) -> np.ndarray:
    """``D_s = ln(p_s / (1 - p_s))``, float64 [n] (probabilities floored as the other discriminants)."""
    s = scheme.index(SS)
    if s is None:
        raise ValueError(f"the s tagger needs an s class among {scheme.names}")
    p = np.clip(np.asarray(probs, dtype=np.float64)[:, s], PROB_FLOOR, 1.0 - PROB_FLOOR)
    return np.log(p) - np.log1p(-p)


def strange_metrics(probs: np.ndarray, labels: np.ndarray, scheme: ClassScheme,
                    ud_mistag: float = UD_MISTAG) -> dict[str, float]:
    """The s figures (see the module doc), keyed without prefix; nan where a class is missing.

    ``labels`` are model-output indices (as every metric of this package takes them).
    """
    tag = f"ud{round(100 * ud_mistag)}"
    score = strange_discriminant(probs, scheme)
    y = np.asarray(labels)
    ud, s, g = (score[y == scheme.index(code)] if scheme.index(code) is not None else score[:0]
                for code in (UDS, SS, GG))
    out = {f"s_eff_at_{tag}": math.nan, f"s_eff_at_{tag}_err": math.nan,
           f"s_rej_g_at_{tag}": math.nan, f"s_rej_g_at_{tag}_err": math.nan}
    if not len(ud) or not len(s):
        return out
    cut = cut_at_efficiency(ud, ud_mistag)
    eff = float(np.mean(s > cut))
    out[f"s_eff_at_{tag}"] = eff
    out[f"s_eff_at_{tag}_err"] = math.sqrt(eff * (1.0 - eff) / len(s))
    if len(g):
        out[f"s_rej_g_at_{tag}"], out[f"s_rej_g_at_{tag}_err"] = binomial_rejection(int(np.sum(g > cut)), len(g))
    return out
