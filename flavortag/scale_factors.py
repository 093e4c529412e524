"""Data/MC-like scale factors: efficiencies and mistag rates at the nominal working points' cuts.

A working point is a cut on the tagger's discriminant chosen on the nominal
sample (e.g. the cut that keeps 70% of the b events there,
:func:`flavortag.metrics.working_points`). Applied unchanged to a shifted
sample it gives that sample's signal efficiency and mistag rates (fraction of
each background tagged); their ratio to the nominal ones is what an analysis
quotes as a scale factor (SF = eff_shifted / eff_nominal). Errors are
binomial (:func:`flavortag.metrics.binned.binomial_efficiency`), the two
samples independent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flavortag import metrics as ftm
from flavortag.metrics.binned import binomial_efficiency

#: (tagger, signal efficiency) of the working points reported.
SCALE_FACTOR_POINTS: tuple[tuple[str, float], ...] = (("b", 0.7), ("b", 0.8), ("c", 0.5))
#: Signal and background class index of each tagger's flavours.
_CLASS: dict[str, int] = {"uds": 0, "c": 1, "b": 2}
_BACKGROUNDS: dict[str, tuple[str, ...]] = {"b": ("c", "uds"), "c": ("uds", "b")}


@dataclass(frozen=True)
class Rate:
    """A fraction of events passing a cut, with its binomial error."""

    value: float
    error: float
    n_total: int


@dataclass(frozen=True)
class ScaleFactors:
    """One working point on a nominal and a shifted sample: rates per flavour and their ratios."""

    tagger: str
    efficiency: float
    cut: float
    nominal: dict[str, Rate]
    shifted: dict[str, Rate]

    def ratio(self, flavour: str) -> tuple[float, float]:
        """``shifted / nominal`` of ``flavour``'s rate and its error (independent samples)."""
        n, s = self.nominal[flavour], self.shifted[flavour]
        if not n.value or not math.isfinite(n.value):
            return math.nan, math.nan
        r = s.value / n.value
        rel = math.hypot(n.error / n.value, s.error / s.value) if s.value else math.nan
        return r, abs(r) * rel


def rates_at_cut(probs: np.ndarray, labels: np.ndarray, working_points: Mapping[str, Any],
                 tagger: str, efficiency: float) -> dict[str, Rate]:
    """Fraction of each flavour's events tagged by ``tagger`` at the working point's cut."""
    tagged = ftm.apply_working_point(probs, working_points, tagger, efficiency)
    labels = np.asarray(labels)
    out = {}
    for flavour in (tagger, *_BACKGROUNDS[tagger]):
        of = labels == _CLASS[flavour]
        value, error = binomial_efficiency(np.asarray(float(np.sum(tagged & of))),
                                           np.asarray(float(np.sum(of))))
        out[flavour] = Rate(float(value), float(error), int(np.sum(of)))
    return out


def scale_factors(
    nominal_probs: np.ndarray, nominal_labels: np.ndarray, shifted_probs: np.ndarray,
    shifted_labels: np.ndarray, points: Sequence[tuple[str, float]] = SCALE_FACTOR_POINTS,
) -> list[ScaleFactors]:
    """Rates and scale factors of each working point in ``points`` (cuts from the nominal sample)."""
    efficiencies = sorted({e for _, e in points})
    wps = ftm.working_points(nominal_probs, nominal_labels, efficiencies=efficiencies)
    out = []
    for tagger, eff in points:
        cut = next(w["cut"] for w in wps["taggers"][tagger]["working_points"]
                   if abs(w["efficiency"] - eff) < 1e-9)
        out.append(ScaleFactors(tagger, eff, float(cut),
                                rates_at_cut(nominal_probs, nominal_labels, wps, tagger, eff),
                                rates_at_cut(shifted_probs, shifted_labels, wps, tagger, eff)))
    return out


def _pct(rate: Rate) -> str:
    """A rate in percent with its error, enough digits for a mistag rate of 0.1%."""
    digits = 1 if rate.value >= 0.1 else 2
    return f"{100 * rate.value:.{digits}f} ± {100 * rate.error:.{digits}f}"


def scale_factor_rows(tagger_name: str, sample: str, factors: Sequence[ScaleFactors]) -> list[dict[str, str]]:
    """Table rows (one per working point and flavour): rates in % and SF with errors."""
    rows = []
    for sf in factors:
        for flavour in sf.nominal:
            ratio, error = sf.ratio(flavour)
            what = "efficiency" if flavour == sf.tagger else "mistag"
            rows.append({"tagger": tagger_name, "sample": sample,
                         "working point": f"{sf.tagger}-tag {100 * sf.efficiency:g}%",
                         "flavour": f"{flavour} ({what})", "nominal %": _pct(sf.nominal[flavour]),
                         "shifted %": _pct(sf.shifted[flavour]),
                         "SF": f"{ratio:.3f} ± {error:.3f}" if math.isfinite(ratio) else "-"})
    return rows


def format_scale_factor_markdown(rows: Sequence[Mapping[str, str]]) -> str:
    """Rows of :func:`scale_factor_rows` as one Markdown table."""
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["### Scale factors at the nominal working points (shifted / nominal)", "",
             "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(r[k] for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def scale_factor_metrics(factors: Sequence[ScaleFactors]) -> dict[str, float]:
    """Flat MLflow metrics ``sf/<tagger><eff>/<flavour>`` (and ``_err``)."""
    out: dict[str, float] = {}
    for sf in factors:
        for flavour in sf.nominal:
            ratio, error = sf.ratio(flavour)
            key = f"sf/{sf.tagger}{100 * sf.efficiency:g}/{flavour}"
            out[key], out[key + "_err"] = float(ratio), float(error)
    return out
