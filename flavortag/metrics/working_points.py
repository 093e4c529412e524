"""Working points: per-tagger results at each efficiency and their JSON form."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flavortag.classes import EVENT_SCHEME, ClassScheme
from flavortag.metrics.discriminants import (
    _FORMULA,
    _FRACTION_NAME,
    DEFAULT_F_B,
    DEFAULT_F_C,
    FLAVOUR,
    PROB_FLOOR,
    TAGGERS,
    discriminant,
    log_ratio,
    scheme_discriminant,
    scheme_taggers,
    validate_tagger,
)
from flavortag.metrics.inputs import validate_efficiencies, validate_labels, validate_probs
from flavortag.metrics.rejection import (
    DEFAULT_EFFICIENCIES,
    RejectionCurve,
    WorkingPoint,
    rejection_at_efficiency,
    rejection_curve,
)

WORKING_POINTS_FORMAT: str = "flavortag.working_points/1"


# --------------------------------------------------------------------------- per tagger


@dataclass(frozen=True)
class TaggerResult:
    """Performance of one tagger ("b" or "c") on one set of predictions.

    ``fraction`` is f_c for the b-tagger and f_b for the c-tagger
    (``fraction_name`` says which); ``working_points`` follow the requested
    efficiencies; ``curve`` is None when curves were not requested.
    """

    tagger: str
    signal: str
    backgrounds: tuple[str, ...]
    fraction_name: str
    fraction: float
    working_points: list[WorkingPoint]
    curve: RejectionCurve | None = None

    def working_point(self, efficiency: float) -> WorkingPoint:
        """The working point at target ``efficiency`` (matched to 1e-9)."""
        for wp in self.working_points:
            if abs(wp.efficiency - efficiency) < 1e-9:
                return wp
        have = [wp.efficiency for wp in self.working_points]
        raise KeyError(f"{self.tagger}-tagger has no working point at {efficiency}; have {have}")


def tagger_result(
    p: np.ndarray,
    y: np.ndarray,
    tagger: str,
    fraction: float,
    efficiencies: np.ndarray,
    curve_efficiencies: np.ndarray | None,
    scheme: ClassScheme = EVENT_SCHEME,
) -> TaggerResult:
    if scheme.is_event_scheme:
        signal, backgrounds = TAGGERS[tagger]
        d = log_ratio(p, signal, backgrounds[0], fraction)
        flavour = FLAVOUR
    else:
        signal, backgrounds = scheme_taggers(scheme)[tagger]
        d = scheme_discriminant(p, tagger, fraction, scheme)
        flavour = dict(enumerate(scheme.flavours))
    sig = d[y == signal]
    bkg_names = tuple(flavour[b] for b in backgrounds)
    points: list[WorkingPoint] = []
    per_bkg = [
        rejection_at_efficiency(sig, d[y == b], efficiencies, flavour[b], tagger) for b in backgrounds
    ]
    for i in range(len(efficiencies)):
        first = per_bkg[0][i]
        points.append(WorkingPoint(
            tagger=tagger,
            efficiency=first.efficiency,
            cut=first.cut,
            signal_efficiency=first.signal_efficiency,
            n_signal=first.n_signal,
            backgrounds={name: rows[i].backgrounds[name] for name, rows in zip(bkg_names, per_bkg)},
        ))
    curve = None
    if curve_efficiencies is not None:
        curve = rejection_curve(sig, {flavour[b]: d[y == b] for b in backgrounds},
                                curve_efficiencies, tagger, flavour[signal], float(fraction))
    return TaggerResult(tagger, flavour[signal], bkg_names, _FRACTION_NAME[tagger], float(fraction),
                        points, curve)


def _scheme_formula(tagger: str, scheme: ClassScheme) -> str:
    """The discriminant of :func:`scheme_discriminant` in words, with the scheme's class names."""
    signal, backgrounds = scheme_taggers(scheme)[tagger]
    f = scheme.flavours
    rest = " + ".join(f"p_{f[k]}" for k in backgrounds[1:]) or "0"
    return f"D_{tagger} = ln(p_{f[signal]} / ({_FRACTION_NAME[tagger]} * p_{f[backgrounds[0]]} + " \
           f"(1 - {_FRACTION_NAME[tagger]}) * ({rest})))"


def efficiency_tag(efficiency: float) -> str:
    """``0.7 -> "70"``, ``0.775 -> "77.5"``: the efficiency in percent as used in metric names."""
    return f"{round(100.0 * efficiency, 6):g}"


def _json_float(x: float | None) -> float | None:
    """Float for JSON: None for inf or nan (strict JSON has neither)."""
    if x is None or not math.isfinite(x):
        return None
    return float(x)


def working_points_dict(taggers: Mapping[str, TaggerResult],
                         scheme: ClassScheme = EVENT_SCHEME) -> dict[str, Any]:
    out: dict[str, Any] = {
        "format": WORKING_POINTS_FORMAT,
        "class_names": list(scheme.names),
        "selection": "an event is tagged when D > cut",
        "taggers": {},
    }
    for name, t in taggers.items():
        out["taggers"][name] = {
            "signal": t.signal,
            "discriminant": _FORMULA[name] if scheme.is_event_scheme else _scheme_formula(name, scheme),
            t.fraction_name: t.fraction,
            "prob_floor": PROB_FLOOR,
            "working_points": [
                {
                    "efficiency": wp.efficiency,
                    "cut": _json_float(wp.cut),
                    "signal_efficiency": _json_float(wp.signal_efficiency),
                    "n_signal": wp.n_signal,
                    "backgrounds": {
                        b: {
                            "mistag": _json_float(r.mistag),
                            "mistag_err": _json_float(r.mistag_err),
                            "rejection": _json_float(r.rejection),
                            "rejection_err": _json_float(r.rejection_err),
                            "rejection_lower_limit_95cl": _json_float(r.rejection_lower_limit),
                            "n_pass": r.n_pass,
                            "n_total": r.n_total,
                        }
                        for b, r in wp.backgrounds.items()
                    },
                }
                for wp in t.working_points
            ],
        }
    return out


def working_points(
    probs: np.ndarray,
    labels: np.ndarray,
    efficiencies: Sequence[float] = DEFAULT_EFFICIENCIES,
    f_c: float = DEFAULT_F_C,
    f_b: float = DEFAULT_F_B,
    scheme: ClassScheme = EVENT_SCHEME,
) -> dict[str, Any]:
    """Discriminant cuts of the b- and c-tagger at each efficiency, as a JSON-serialisable dict.

    Layout::

        {"format": "flavortag.working_points/1", "class_names": [...],
         "selection": "an event is tagged when D > cut",
         "taggers": {"b": {"signal": "b", "discriminant": "D_b = ...", "f_c": 0.22,
                           "prob_floor": 1e-12,
                           "working_points": [{"efficiency": 0.7, "cut": ..., "signal_efficiency": ...,
                                               "n_signal": ..., "backgrounds": {"c": {"mistag": ...,
                                               "mistag_err", "rejection", "rejection_err",
                                               "rejection_lower_limit_95cl", "n_pass", "n_total"},
                                               "uds": {...}}}, ...]},
                     "c": {... "f_b": 0.26 ...}}}

    Infinite or undefined values are written as null. Apply a cut with
    :func:`apply_working_point`.
    """
    p = validate_probs(probs, scheme.names)
    y = validate_labels(labels, len(p), scheme.names)
    e = np.atleast_1d(validate_efficiencies(efficiencies))
    taggers = {
        "b": tagger_result(p, y, "b", f_c, e, None, scheme),
        "c": tagger_result(p, y, "c", f_b, e, None, scheme),
    }
    return working_points_dict(taggers, scheme)


def apply_working_point(
    probs: np.ndarray, working_points: Mapping[str, Any], tagger: str, efficiency: float
) -> np.ndarray:
    """Boolean mask [n] of events tagged by ``tagger`` at ``efficiency`` of a working-point dict.

    Uses the background fraction stored with the working points, so the
    discriminant is the one the cut was made for.
    """
    from flavortag.classes import class_scheme

    entry = working_points["taggers"][validate_tagger(tagger)]
    fraction = entry[_FRACTION_NAME[tagger]]
    scheme = class_scheme(working_points.get("class_names"))
    for wp in entry["working_points"]:
        if abs(wp["efficiency"] - efficiency) < 1e-9:
            if wp["cut"] is None:
                raise ValueError(f"{tagger}-tagger working point at {efficiency} has no cut (no signal)")
            if scheme.is_event_scheme:
                return discriminant(probs, tagger, fraction) > wp["cut"]
            return scheme_discriminant(probs, tagger, fraction, scheme) > wp["cut"]
    have = [wp["efficiency"] for wp in entry["working_points"]]
    raise KeyError(f"{tagger}-tagger has no working point at {efficiency}; have {have}")
