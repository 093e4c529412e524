"""The b- and c-tagging discriminants ``D_b`` / ``D_c`` and the constants that define them.

See :mod:`flavortag.metrics` for the formulas and the default background
fractions (hadronic Z decays).
"""

from __future__ import annotations

import numpy as np

from flavortag.classes import BB, CC, EVENT_SCHEME, UDS, ClassScheme
from flavortag.metrics.inputs import validate_probs

#: Probabilities are clipped to at least this value before taking logs.
PROB_FLOOR: float = 1e-12
#: c fraction of the non-b background in hadronic Z decays, R_c / (R_c + R_uds).
DEFAULT_F_C: float = 0.22
#: b fraction of the non-c background in hadronic Z decays, R_b / (R_b + R_uds).
DEFAULT_F_B: float = 0.26
#: Signal efficiencies at which rejections are reported.


#: Short flavour name of each class index, used in tagger and metric names.
FLAVOUR: dict[int, str] = {UDS: "uds", CC: "c", BB: "b"}
#: tagger name -> (signal class, background classes in reporting order).
TAGGERS: dict[str, tuple[int, tuple[int, ...]]] = {
    "b": (BB, (CC, UDS)),
    "c": (CC, (BB, UDS)),
}
_FRACTION_NAME = {"b": "f_c", "c": "f_b"}
_FORMULA = {
    "b": "D_b = ln(p_b / (f_c * p_c + (1 - f_c) * p_uds))",
    "c": "D_c = ln(p_c / (f_b * p_b + (1 - f_b) * p_uds))",
}
#: The same for jets with a gluon class (:func:`scheme_discriminant`: the rest is light + g).
_JET_FORMULA = {
    "b": "D_b = ln(p_b / (f_c * p_c + (1 - f_c) * (p_light + p_g)))",
    "c": "D_c = ln(p_c / (f_b * p_b + (1 - f_b) * (p_light + p_g)))",
}


def scheme_taggers(scheme: ClassScheme = EVENT_SCHEME) -> dict[str, tuple[int, tuple[int, ...]]]:
    """:data:`TAGGERS` of a class scheme: tagger -> (signal output index, background indices).

    The backgrounds are the other tagger's class first, then the rest in
    scheme order (event scheme: exactly :data:`TAGGERS`; jets with g:
    ``b: (b, (c, light, g))``). Needs both b and c in the scheme.
    """
    b, c = scheme.index(BB), scheme.index(CC)
    if b is None or c is None:
        raise ValueError(f"the b and c taggers need both b and c among the classes {scheme.names}")
    rest = tuple(k for k in range(len(scheme)) if k not in (b, c))
    return {"b": (b, (c, *rest)), "c": (c, (b, *rest))}


def scheme_discriminant(probs: np.ndarray, tagger: str, fraction: float,
                        scheme: ClassScheme = EVENT_SCHEME) -> np.ndarray:
    """``D = ln(p_sig / (f p_other_tag + (1 - f) sum(p_rest)))`` of any scheme, float64 [n].

    ``p_rest`` sums the classes that are neither b nor c (uds for events: the
    formulas of :func:`discriminant_b` / :func:`discriminant_c` exactly; light
    + g for jets with a gluon class, in the proportion the model was trained on).
    """
    signal, backgrounds = scheme_taggers(scheme)[validate_tagger(tagger)]
    p = validate_probs(probs, scheme.names)
    if scheme.is_event_scheme:
        return log_ratio(p, signal, backgrounds[0], fraction)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"background fraction must lie in [0, 1], got {fraction}")
    q = np.maximum(p, PROB_FLOOR)
    rest = q[:, list(backgrounds[1:])].sum(axis=1)
    return np.log(q[:, signal]) - np.log(fraction * q[:, backgrounds[0]] + (1.0 - fraction) * rest)


def validate_tagger(tagger: str) -> str:
    if tagger not in TAGGERS:
        raise ValueError(f"unknown tagger {tagger!r}; use one of {sorted(TAGGERS)}")
    return tagger


def log_ratio(p: np.ndarray, signal: int, bkg_main: int, fraction: float) -> np.ndarray:
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"background fraction must lie in [0, 1], got {fraction}")
    q = np.maximum(p, PROB_FLOOR)
    denominator = fraction * q[:, bkg_main] + (1.0 - fraction) * q[:, UDS]
    return np.log(q[:, signal]) - np.log(denominator)


def discriminant_b(probs: np.ndarray, f_c: float = DEFAULT_F_C) -> np.ndarray:
    """b-tagging discriminant ``D_b = ln(p_b / (f_c p_c + (1 - f_c) p_uds))``, float64 [n]."""
    return log_ratio(validate_probs(probs), BB, CC, f_c)


def discriminant_c(probs: np.ndarray, f_b: float = DEFAULT_F_B) -> np.ndarray:
    """c-tagging discriminant ``D_c = ln(p_c / (f_b p_b + (1 - f_b) p_uds))``, float64 [n]."""
    return log_ratio(validate_probs(probs), CC, BB, f_b)


def discriminant(probs: np.ndarray, tagger: str, fraction: float | None = None) -> np.ndarray:
    """Discriminant of ``tagger`` ("b" or "c"); ``fraction`` is f_c resp. f_b (None: default)."""
    if validate_tagger(tagger) == "b":
        return discriminant_b(probs, DEFAULT_F_C if fraction is None else fraction)
    return discriminant_c(probs, DEFAULT_F_B if fraction is None else fraction)


#: The score columns of an event tagger, in this order (jet taggers: ``prob_<class>``, ``D_b``, ``D_c``):
#: what ``flavortag predict`` writes and :meth:`flavortag.Tagger.score` returns.
SCORE_FIELDS: tuple[str, ...] = ("prob_uds", "prob_cc", "prob_bb", "D_b", "D_c")


def score_columns(probs: np.ndarray, f_c: float, f_b: float,
                     scheme: ClassScheme = EVENT_SCHEME) -> dict[str, np.ndarray]:
    """Per-event output columns: class probabilities and the b / c discriminants.

    Event scheme: ``prob_uds, prob_cc, prob_bb, D_b, D_c``; another scheme:
    ``prob_<class>`` for each of its classes (``prob_light, prob_c, prob_b, prob_g``), ``D_b, D_c``.
    """
    if not scheme.is_event_scheme:
        out = {f"prob_{name}": probs[:, k].astype(np.float32) for k, name in enumerate(scheme.names)}
        out["D_b"] = scheme_discriminant(probs, "b", f_c, scheme).astype(np.float32)
        out["D_c"] = scheme_discriminant(probs, "c", f_b, scheme).astype(np.float32)
        return out
    return {
        "prob_uds": probs[:, 0].astype(np.float32),
        "prob_cc": probs[:, 1].astype(np.float32),
        "prob_bb": probs[:, 2].astype(np.float32),
        "D_b": discriminant_b(probs, f_c).astype(np.float32),
        "D_c": discriminant_c(probs, f_b).astype(np.float32),
    }
