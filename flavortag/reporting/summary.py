"""What a run shows at a glance in the MLflow UI: its key figures, the run description, the table of figures.

:func:`run_summary` turns the flat metrics of a report
(:func:`flavortag.reporting.report`) into what the evaluation logs
(:func:`flavortag.evaluation.log_report`): the metrics without their errors
(an ``_err`` is not a chart of its own), the table of every figure with its
error and kind (``value`` or ``95% CL lower limit``, as a table artifact), one
tag per key figure with its error (``fig.<name>``, the runs table's columns),
the names of the figures that are lower limits, and the run description
(``mlflow.note.content``, Markdown). Nothing here touches MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from flavortag.metrics.tables import HEADLINE_METRIC, JET_HEADLINE_METRIC, format_figure

ERR_SUFFIX = "_err"
#: The key figures of an event tagger (name without prefix: what it is), the headline first.
KEY_FIGURES: dict[str, str] = {
    HEADLINE_METRIC[0]: HEADLINE_METRIC[1],
    "rej_b_at_c50": "b rejection at 50% c efficiency (D_c)",
    "rej_c_at_b70": "c rejection at 70% b efficiency (D_b)",
    "rej_uds_at_b70": "uds rejection at 70% b efficiency (D_b)",
    "acc": "accuracy",
    "auc_bb": "AUC of bb against the rest",
}
#: The key figures of a jet tagger (classes light, c, b[, g]).
JET_KEY_FIGURES: dict[str, str] = {
    JET_HEADLINE_METRIC[0]: JET_HEADLINE_METRIC[1],
    "rej_b_at_c50": "b rejection at 50% c efficiency (D_c)",
    "rej_c_at_b80": "c rejection at 80% b efficiency (D_b)",
    "rej_light_at_b80": "light rejection at 80% b efficiency (D_b)",
    "acc": "accuracy",
}
#: Tag prefix of a key figure with its error (``fig.rej_uds_at_c50`` = ``112 ± 15``).
FIGURE_TAG_PREFIX = "fig."
LOWER_LIMIT = "95% CL lower limit"


@dataclass(frozen=True)
class RunSummary:
    """What :func:`flavortag.evaluation.log_report` logs besides the plots and files."""

    metrics: dict[str, float]
    table: dict[str, list[object]]
    figure_tags: dict[str, str]
    lower_limits: tuple[str, ...]
    note: str


def key_figures(flat: Mapping[str, float], prefix: str) -> dict[str, str]:
    """The key figures present in ``flat`` (event or jet tagger), headline first: ``{name: description}``."""
    figures = KEY_FIGURES if f"{prefix}auc_uds" in flat else JET_KEY_FIGURES
    return {name: text for name, text in figures.items() if prefix + name in flat}


def _error(name: str, flat: Mapping[str, float], prefix: str, n_events: int | None) -> float | None:
    """The 1-sigma error of a figure: its ``_err`` metric, or the binomial error of the accuracy."""
    if name == "acc" and n_events:
        a = flat[prefix + name]
        return math.sqrt(max(a * (1 - a), 0.0) / n_events) if math.isfinite(a) else None
    return flat.get(prefix + name + ERR_SUFFIX)


def run_summary(flat: Mapping[str, float], prefix: str = "test/", title: str = "",
                n_events: int | None = None) -> RunSummary:
    """Split a report's flat metrics into what the run logs (see the module doc).

    A rejection whose error is nan while its value is finite is the 95% CL
    lower limit (no background event passed the cut): marked as such in the
    table, the tags and the note.
    """
    metrics = {k: v for k, v in flat.items() if not k.endswith(ERR_SUFFIX)}
    table: dict[str, list[object]] = {"metric": [], "value": [], "error": [], "kind": []}
    limits = []
    for key, value in metrics.items():
        err = flat.get(key + ERR_SUFFIX)
        is_limit = err is not None and math.isnan(err) and math.isfinite(value) and "/rej_" in f"/{key}"
        table["metric"].append(key)
        table["value"].append(None if math.isnan(value) else value)
        table["error"].append(None if err is None or math.isnan(err) else err)
        table["kind"].append(LOWER_LIMIT if is_limit else "value")
        if is_limit:
            limits.append(key)
    figures = key_figures(flat, prefix)
    cells = {}
    for name in figures:
        cell = format_figure(name, flat.get(prefix + name), _error(name, flat, prefix, n_events))
        cells[name] = cell + (f" ({LOWER_LIMIT})" if prefix + name in limits else "")
    lines = [f"**{title}**" if title else "", "",
             f"| key figure ({n_events if n_events else '?'} test events) | value |", "|---|---|"]
    lines += [f"| {text} | {cells[name]} |" for name, text in figures.items()]
    lines += ["", "Errors: binomial, 1 sigma; `> x`: the 95% CL lower limit where no background event "
              "passed the cut. Every figure: `metrics_table.json`; plots: `plots/`."]
    return RunSummary(metrics=metrics, table=table,
                      figure_tags={FIGURE_TAG_PREFIX + name: cells[name] for name in figures},
                      lower_limits=tuple(limits), note="\n".join(lines).lstrip("\n"))
