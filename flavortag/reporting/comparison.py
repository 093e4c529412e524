"""Several evaluated taggers side by side: the figures and tables of ``flavortag compare``.

From each tagger's test predictions (a Parquet file, :func:`read_scored`)
or its logged numbers, writes one table (text + CSV) and overlays of the b-
and c-tagging rejection curves with ratio panels to a reference model
(:func:`write_comparison`). Event taggers (uds, cc, bb) and jet taggers
(light, c, b[, g]) are each compared with their own classes' columns; the
two kinds are not mixed in one table. Which runs, where their predictions
come from and the MLflow record: the compare pipeline
(:mod:`flavortag.pipelines.compare`); nothing here touches MLflow.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from flavortag import metrics as ftm
from flavortag.classes import EVENT_SCHEME, ClassScheme, class_scheme
from flavortag.metrics.tables import JET_TABLE_METRICS
from flavortag.reporting import plots
from flavortag.reporting.binned import binned_plots, event_variables
from flavortag.reporting.sample import SampleInfo

log = logging.getLogger("flavortag.compare")

#: What a tagger's test predictions hold: probabilities, labels, the event variables, the classes.
Scored = tuple[np.ndarray, np.ndarray, dict[str, np.ndarray] | None, ClassScheme]


def read_scored(path: str | Path) -> Scored:
    """Probabilities, labels, the event variables of :func:`flavortag.reporting.binned.event_variables`
    where the predictions carry their events (else None), and the classes of the probabilities
    (read from the ``prob_<class>`` columns: uds, cc, bb for events; light, c, b[, g] for jets)."""
    fields = ak.metadata_from_parquet(path)["form"].fields
    scheme = class_scheme([f.removeprefix("prob_") for f in fields if f.startswith("prob_")] or None)
    prob_columns = [f"prob_{name}" for name in scheme.names]
    with_events = "axis" in fields and "tracks" in fields
    columns = [*prob_columns, "label", *(["axis", "tracks"] if with_events else [])]
    table = ak.from_parquet(path, columns=columns)
    probs = np.stack([ak.to_numpy(table[f]) for f in prob_columns], axis=1)
    variables = event_variables(table) if with_events and scheme.is_event_scheme else None
    return probs.astype(np.float64), ak.to_numpy(table["label"]).astype(np.int64), variables, scheme


def table_metrics(event_taggers: bool, prefix: str,
                   results: dict[str, Any]) -> tuple[str, ...]:
    """The table's columns: the event figures, or the jet figures of the classes the runs have."""
    if event_taggers:
        return ftm.DEFAULT_TABLE_METRICS
    flat = [r.flat_metrics(prefix) if isinstance(r, ftm.EvaluationResult) else r for r in results.values()]
    return tuple(m for m in JET_TABLE_METRICS if any(prefix + m in f for f in flat))


def metrics_scheme(metrics: dict[str, float], prefix: str) -> ClassScheme:
    """The classes of a tagger without predictions, from its logged metric names (``auc_<flavour>``)."""
    names = [k.removeprefix(f"{prefix}auc_") for k in metrics
             if k.startswith(f"{prefix}auc_") and not k.endswith("_err")]
    try:
        return class_scheme(names) if names else EVENT_SCHEME
    except ValueError:
        return EVENT_SCHEME


def write_comparison(results: dict[str, Any], scored: dict[str, Scored], reference: str | None,
                     sample: SampleInfo | None, out: Path, prefix: str,
                     settings: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The table (``comparison.txt``, ``.csv``) and the overlays of the taggers in ``out``; the flat metrics.

    ``results``: per tagger an :class:`~flavortag.metrics.EvaluationResult`
    (from its predictions) or its logged metrics; ``scored``: the predictions
    (:func:`read_scored`) of those that have them; ``reference``: the ratio
    panels' reference; ``settings``: :func:`flavortag.reporting.report.evaluation_settings`.
    """
    schemes = {name: s[3] for name, s in scored.items()}
    schemes.update({name: metrics_scheme(r, prefix) for name, r in results.items() if name not in scored})
    kinds = {s.is_event_scheme for s in schemes.values()}
    if len(kinds) > 1:
        raise ValueError("the runs mix event taggers (uds, cc, bb) and jet taggers: "
                         + ", ".join(f"{n} ({'/'.join(s.names)})" for n, s in schemes.items())
                         + "; compare each kind on its own (runs=[...] or another experiment_name)")
    out.mkdir(parents=True, exist_ok=True)
    table = ftm.format_comparison_table(results, prefix=prefix,
                                        metrics=table_metrics(kinds != {False}, prefix, results))
    (out / "comparison.txt").write_text(table)
    ftm.write_comparison_csv(results, out / "comparison.csv", prefix=prefix)
    curves = {k: v for k, v in results.items() if isinstance(v, ftm.EvaluationResult)}
    if curves and reference is not None:
        for tagger in ("b", "c"):
            plots.plot_rejection(curves, out / f"rejection_{tagger}", tagger=tagger,
                                 reference=reference, sample=sample, formats=settings["plot_formats"])
        plots.plot_roc(curves, out / "roc", sample=sample, formats=settings["plot_formats"])
        binned = {name: s for name, s in scored.items() if s[2] is not None}
        if binned:  # the models' own test events: the bins are the reference's (or the first's)
            order = sorted(binned, key=lambda n: n != reference)
            binned_plots({n: binned[n][0] for n in order}, {n: binned[n][1] for n in order},
                         {n: binned[n][2] for n in order if binned[n][2] is not None}, out,  # type: ignore[misc]
                         f_c=settings["f_c"], f_b=settings["f_b"],
                         working_points=settings["vs_variables_efficiency"], sample=sample,
                         formats=settings["plot_formats"])
    print(table)
    return {name: (r.flat_metrics(prefix) if isinstance(r, ftm.EvaluationResult) else r)
            for name, r in results.items()}
