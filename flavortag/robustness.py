"""Robustness report: trained taggers scored on the nominal test split and on shifted samples.

For every tagger (an MLflow run) and every shifted sample (a detector
variation, e.g. 1.5x worse impact-parameter resolution) the headline figures
of flavour tagging are computed on the tagger's own held-out test split
(nominal) and on the shifted sample, with binomial uncertainties, and the
fraction kept ``shifted / nominal`` with its uncertainty (the two samples are
independent). Overlay plots draw the rejection curves nominal (solid) and
shifted (dashed, dotted, ...).

``calibration`` chooses how the significances are formed on each sample:
``none`` (the detector model's nominal resolution), ``scale`` (one overall
resolution scale fitted on that sample) or ``auto`` (the resolution function of
``flavortag.calibration``, fitted on that very sample's tracks, applied relative
to the tagger's training sample; the nominal test split is calibrated the same
way). A sample whose fit is refused (too few tracks, implausible: a
generator-level sample) is left out of that mode's rows, with a log line.

A kept fraction compares a tagger with itself; it cannot say how much a
shifted detector lets any tagger do. ``ceilings`` (a tagger trained on a
shifted sample's own detector, scored there without calibration) estimate
that bound: :func:`ceiling_rows` reports each tagger's shifted figure as a fraction
of the ceiling's ("of ceiling") and the most it could have kept ("kept at
most" = ceiling / nominal).

Beside the kept fractions, :func:`scale_factor_table` gives the efficiencies
and mistag rates at the nominal working points' cuts on each shifted sample
and their ratio to nominal (:mod:`flavortag.scale_factors`).

The MLflow side (one parent run, a child per (run, sample)) lives in the app,
``flavortag.apps.robustness``; this module is numbers, tables and plots.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np

from flavortag import metrics as ftm
from flavortag.calibration import (
    MIN_TRACKS,
    Calibration,
)

if TYPE_CHECKING:
    from flavortag.reporting.sample import SampleInfo

#: Headline figures of the report: (flat metric key without prefix, label).
HEADLINE: tuple[tuple[str, str], ...] = (
    ("acc", "accuracy"),
    ("rej_c_at_b70", "c rejection at 70% b efficiency"),
    ("rej_c_at_b80", "c rejection at 80% b efficiency"),
    ("rej_uds_at_b80", "uds rejection at 80% b efficiency"),
    ("rej_uds_at_c50", "uds rejection at 50% c efficiency"),
    ("rej_b_at_c50", "b rejection at 50% c efficiency"),
)

#: ``calibration`` of the report: none, scale (one overall scale), auto (the resolution function);
#: ``both`` = none + auto, ``all`` = all three.
CALIBRATION_MODES: tuple[str, ...] = ("none", "scale", "function", "auto")
CALIBRATION_GROUPS: dict[str, tuple[str, ...]] = {"both": ("none", "auto"), "all": CALIBRATION_MODES}


@dataclass(frozen=True)
class Figure:
    """A value with its uncertainty; ``limit`` marks a 95% CL lower limit (no background passed)."""

    value: float
    error: float
    limit: bool = False

    def format(self) -> str:
        """``0.909 ± 0.003``, ``61 ± 7``, ``> 450``; ``-`` for nan."""
        if not math.isfinite(self.value):
            return "-"
        digits = 3 if abs(self.value) < 2 else (1 if abs(self.value) < 20 else 0)
        if self.limit:
            return f"> {self.value:.{digits}f}"
        if not math.isfinite(self.error):
            return f"{self.value:.{digits}f}"
        return f"{self.value:.{digits}f} ± {self.error:.{digits}f}"


@dataclass
class Scored:
    """One tagger on one sample: its metrics and the calibration used (if any)."""

    tagger: str
    sample: str
    result: ftm.EvaluationResult
    calibration: Calibration | None = None
    #: the predictions (for scale factors at the nominal working points); None when not kept
    probs: np.ndarray | None = None
    labels: np.ndarray | None = None

    def figure(self, key: str) -> Figure:
        """The headline figure ``key`` (see ``HEADLINE``) with its uncertainty."""
        if key == "acc":
            a, n = self.result.accuracy, self.result.n_events
            return Figure(a, math.sqrt(a * (1 - a) / n) if n else math.nan)
        background, rest = key[len("rej_"):].split("_at_")
        tagger, eff = rest[0], float(rest[1:]) / 100.0
        r = self.result.rejection(tagger, background, eff)
        if r.rejection_lower_limit is not None:
            return Figure(float(r.rejection_lower_limit), math.nan, limit=True)
        return Figure(r.rejection, r.rejection_err)


def kept_fraction(nominal: Figure, shifted: Figure) -> Figure:
    """``shifted / nominal`` with the uncertainty of a ratio of independent figures."""
    if nominal.limit or shifted.limit or not nominal.value:
        return Figure(math.nan, math.nan)
    ratio = shifted.value / nominal.value
    rel = math.hypot(nominal.error / nominal.value, shifted.error / shifted.value) \
        if shifted.value else math.nan
    return Figure(ratio, abs(ratio) * rel)


def score_events(
    model: Any,
    events: ak.Array,
    calibration: str | Calibration | None = None,
    min_tracks: int = MIN_TRACKS,
) -> tuple[np.ndarray, np.ndarray, Calibration | None]:
    """Probabilities ``[n, 3]``, labels and the calibration used for ``events`` scored by ``model``.

    ``calibration``: as ``flavortag.calibration.resolve_calibration`` takes it
    (None / ``"none"``, ``"auto"``: fit on these events' tracks, labels not
    read; a ``Calibration``; a calibration file). The events are cut
    and ordered as the model was trained (:meth:`flavortag.Tagger.predict`).
    """
    from flavortag.scoring.tagger import Tagger

    prediction = Tagger.from_model(model).predict(events, calibration, min_tracks=min_tracks)
    return prediction.probs, prediction.labels, prediction.calibration


def without_reference(calibration: Calibration) -> Calibration:
    """A fitted calibration stripped of the tagger it was applied for (reusable for another tagger)."""
    from flavortag.calibration_function import FunctionCalibration

    return calibration.fitted_only() if isinstance(calibration, FunctionCalibration) else calibration


def evaluate_scores(probs: np.ndarray, labels: np.ndarray,
                    efficiencies: Sequence[float] = (0.5, 0.7, 0.8)) -> ftm.EvaluationResult:
    """Metrics of one set of predictions at the report's efficiencies (curves included)."""
    return ftm.evaluate_predictions(probs, labels, efficiencies=sorted(set(efficiencies) | {0.5, 0.7, 0.8}))


def robustness_rows(
    scored: Mapping[str, Mapping[str, Scored]], nominal: str = "nominal"
) -> dict[str, list[dict[str, str]]]:
    """One table per headline figure: rows ``tagger, sample, nominal, shifted, kept``.

    ``scored[tagger][sample]``; ``scored[tagger][nominal]`` is the reference.
    """
    tables: dict[str, list[dict[str, str]]] = {}
    for key, _label in HEADLINE:
        rows = []
        for tagger, by_sample in scored.items():
            if nominal not in by_sample:
                continue
            ref = by_sample[nominal].figure(key)
            for sample, item in by_sample.items():
                if sample == nominal:
                    continue
                shifted = item.figure(key)
                rows.append({"tagger": tagger, "sample": sample, "nominal": ref.format(),
                             "shifted": shifted.format(), "kept": kept_fraction(ref, shifted).format()})
        tables[key] = rows
    return tables


def scale_factor_table(scored: Mapping[str, Mapping[str, Scored]], nominal: str = "nominal") -> str:
    """Markdown table of the scale factors of every (tagger, shifted sample) with predictions kept."""
    from flavortag.scale_factors import (
        format_scale_factor_markdown,
        scale_factor_rows,
        scale_factors,
    )

    rows = []
    for tagger, by_sample in scored.items():
        ref = by_sample.get(nominal)
        if ref is None or ref.probs is None or ref.labels is None:
            continue
        for sample, item in by_sample.items():
            if sample == nominal or item.probs is None or item.labels is None:
                continue
            rows += scale_factor_rows(tagger, sample, scale_factors(ref.probs, ref.labels, item.probs,
                                                                    item.labels))
    return format_scale_factor_markdown(rows)


def scale_factor_metrics_of(nominal: Scored, shifted: Scored) -> dict[str, float]:
    """Flat MLflow metrics ``sf/...`` of one (tagger, shifted sample) (empty without predictions)."""
    from flavortag.scale_factors import scale_factor_metrics, scale_factors

    if nominal.probs is None or nominal.labels is None or shifted.probs is None or shifted.labels is None:
        return {}
    return scale_factor_metrics(scale_factors(nominal.probs, nominal.labels, shifted.probs, shifted.labels))


def kept_metrics(nominal: Scored, shifted: Scored) -> dict[str, float]:
    """Flat MLflow metrics of one (tagger, shifted sample): ``nominal/``, ``shifted/``, ``kept/``."""
    out: dict[str, float] = {}
    for key, _label in HEADLINE:
        ref, new = nominal.figure(key), shifted.figure(key)
        kept = kept_fraction(ref, new)
        for prefix, fig in (("nominal/", ref), ("shifted/", new), ("kept/", kept)):
            out[prefix + key] = float(fig.value)
            out[prefix + key + "_err"] = float(fig.error)
    return out


def ceiling_rows(
    scored: Mapping[str, Mapping[str, Scored]], ceilings: Mapping[str, Scored], nominal: str = "nominal"
) -> dict[str, list[dict[str, str]]]:
    """One table per headline figure: rows ``tagger, sample, shifted, ceiling, of ceiling, kept at most``.

    ``ceilings[sample]``: a tagger trained on that sample's detector, scored on
    it; "of ceiling" = shifted / ceiling, "kept at most" = ceiling / the
    tagger's nominal (the best kept fraction a tagger with this nominal could reach).
    """
    tables: dict[str, list[dict[str, str]]] = {}
    for key, _label in HEADLINE:
        rows = []
        for tagger, by_sample in scored.items():
            for sample, item in by_sample.items():
                if sample == nominal or sample not in ceilings:
                    continue
                ceiling, shifted = ceilings[sample].figure(key), item.figure(key)
                ref = by_sample[nominal].figure(key) if nominal in by_sample else Figure(math.nan, math.nan)
                rows.append({"tagger": tagger, "sample": sample, "shifted": shifted.format(),
                             "ceiling": ceiling.format(), "of ceiling": kept_fraction(ceiling, shifted).format(),
                             "kept at most": kept_fraction(ref, ceiling).format()})
        tables[key] = rows
    return tables


def score_ceiling(model: Any, events: ak.Array, sample: str, label: str = "ceiling") -> Scored:
    """A ceiling: ``model``, trained on ``sample``'s own detector, scored on ``events`` without calibration."""
    probs, labels, _ = score_events(model, events, None)
    return Scored(label, sample, evaluate_scores(probs, labels))


def report_markdown(scored: Mapping[str, Mapping[str, Scored]], tables: Mapping[str, Sequence[Mapping[str, str]]],
                    ceiling_tables: Mapping[str, Sequence[Mapping[str, str]]]) -> str:
    """The whole report: the kept-fraction tables, the ceiling tables (if any), the scale factors."""
    text = format_markdown(tables) + "\n"
    if ceiling_tables:
        text += format_markdown(ceiling_tables) + "\n"
    return text + scale_factor_table(scored)


def ceiling_metrics(shifted: Scored, ceiling: Scored) -> dict[str, float]:
    """Flat MLflow metrics ``ceiling/<key>`` and ``of_ceiling/<key>`` (with ``_err``) of one (tagger, sample)."""
    out: dict[str, float] = {}
    for key, _label in HEADLINE:
        top = ceiling.figure(key)
        for prefix, fig in (("ceiling/", top), ("of_ceiling/", kept_fraction(top, shifted.figure(key)))):
            out[prefix + key] = float(fig.value)
            out[prefix + key + "_err"] = float(fig.error)
    return out


def format_markdown(tables: Mapping[str, Sequence[Mapping[str, str]]]) -> str:
    """The tables of ``robustness_rows`` as Markdown, one section per headline figure."""
    labels = dict(HEADLINE)
    lines: list[str] = []
    for key, rows in tables.items():
        columns = list(rows[0]) if rows else ["tagger", "sample", "nominal", "shifted", "kept"]
        lines += [f"### {labels.get(key, key)}" + (" against the ceiling" if "ceiling" in columns else ""), "",
                  "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(r[c] for c in columns) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def write_csv(tables: Mapping[str, Sequence[Mapping[str, str]]], path: str | Path) -> Path:
    """All tables in one CSV (column ``figure`` says which)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["figure", "tagger", "sample", "nominal", "shifted", "kept"])
        writer.writeheader()
        for key, rows in tables.items():
            for row in rows:
                writer.writerow({"figure": key, **row})
    return path


_LINESTYLES: tuple[Any, ...] = ("--", ":", "-.", (0, (5, 1, 1, 1)))


def plot_overlay(
    scored: Mapping[str, Mapping[str, Scored]],
    path: str | Path,
    tagger: str = "b",
    nominal: str = "nominal",
    formats: Sequence[str] = ("png", "pdf"),
    sample: SampleInfo | None = None,
) -> list[Path]:
    """Rejection versus efficiency of every tagger: nominal solid, each shifted sample dashed/dotted.

    One panel per background of ``tagger`` ("b": c and uds; "c": uds and b),
    logarithmic rejection; the legend (outside, right) gives one colour per
    tagger and one line style per sample, under the nominal sample's block
    (``sample``, a :class:`flavortag.reporting.sample.SampleInfo`).
    """
    from matplotlib.lines import Line2D

    from flavortag.reporting.figures import (
        FLAVOUR_TEX,
        MODEL_COLOURS,
        add_experiment_label,
        figure_style,
        new_figure,
        sample_block,
        save_figure,
    )

    backgrounds = ("c", "uds") if tagger == "b" else ("uds", "b")
    signal = "b" if tagger == "b" else "c"
    samples = [s for s in next(iter(scored.values())) if s != nominal]
    colours = list(MODEL_COLOURS) + [f"C{i}" for i in range(10)]
    styles: dict[str, Any] = {nominal: "-", **{s: _LINESTYLES[i % len(_LINESTYLES)] for i, s in enumerate(samples)}}
    with figure_style():
        fig = new_figure(6.5 * len(backgrounds) + 4.5, 6.0)
        axes = np.atleast_1d(fig.subplots(1, len(backgrounds)))
        for ax, bkg in zip(axes, backgrounds):
            for i, by_sample in enumerate(scored.values()):
                for name, style in styles.items():
                    curve = by_sample[name].result.taggers[tagger].curve if name in by_sample else None
                    if curve is None:
                        continue
                    rej = np.asarray(curve.rejection[bkg], dtype=np.float64)
                    ok = np.isfinite(rej) & (rej > 0)
                    ax.plot(curve.efficiency[ok], rej[ok], color=colours[i % len(colours)],
                            linestyle=style, linewidth=1.6)
            ax.set_yscale("log")
            ax.set_xlim(0.4, 1.0)
            ax.set_xlabel(f"{FLAVOUR_TEX[signal]} efficiency ({tagger}-tagger)")
            ax.set_ylabel(f"{FLAVOUR_TEX[bkg]} rejection")
            ax.grid(True, which="major", alpha=0.3)
        handles = [Line2D([], [], color=colours[i % len(colours)], label=name)
                   for i, name in enumerate(scored)]
        handles += [Line2D([], [], color="grey", linestyle=style, label=name)
                    for name, style in styles.items()]
        add_experiment_label(axes[0], sample)
        block = sample_block(sample, None).text()
        fig.legend(handles=handles, loc="outside right upper", fontsize="x-small", frameon=False,
                   title=f"nominal: {block}" if block else None, alignment="left", title_fontsize="x-small")
        return save_figure(fig, path, f"overlay_{tagger}_tagger", formats)


def ablation_features(
    group: str, kind: str, current: Sequence[str]
) -> list[str]:
    """``current`` (names of ``kind`` "track" / "event") without the features of ablation ``group``.

    Groups: ``impact_parameters`` (lengths, significances, and the event
    features built on them), ``kinematics`` (energies, momenta, multiplicity
    and event shape), ``angles`` (the track's angles to the axis).
    """
    from flavortag.features import FEATURE_GROUPS

    if group not in ABLATION_GROUPS:
        raise ValueError(f"unknown ablation {group!r}; known: {sorted(ABLATION_GROUPS)}")
    drop: set[str] = set()
    for feature_group in ABLATION_GROUPS[group]:
        drop |= set(FEATURE_GROUPS.get(feature_group, ()))
    if group == "impact_parameters":
        # multiplicities of displaced tracks are impact-parameter features too
        drop |= {n for n in FEATURE_GROUPS.get("multiplicity", ()) if "sig" in n or "far" in n}
    return [n for n in current if n not in drop]


#: Ablation name -> the feature groups (track and event) it removes.
ABLATION_GROUPS: dict[str, tuple[str, ...]] = {
    "impact_parameters": ("impact_parameters", "ip_significances", "leading_significances",
                          "displaced_tracks", "joint_probability"),
    "kinematics": ("kinematics", "event_shape"),
    "angles": ("axis_relative",),
}
