"""Comparison tables of several models' metrics: plain text and CSV."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from flavortag.metrics.result import EvaluationResult

# --------------------------------------------------------------------------- comparison tables

#: Default columns of :func:`format_comparison_table` (metric names without prefix).
DEFAULT_TABLE_METRICS: tuple[str, ...] = (
    "acc", "loss", "auc_uds", "auc_cc", "auc_bb",
    "rej_c_at_b70", "rej_uds_at_b70", "rej_b_at_c50", "rej_uds_at_c50",
)
#: Columns for jet taggers (``light, c, b, g``): the figures of issue 13.
JET_TABLE_METRICS: tuple[str, ...] = (
    "acc", "loss", "auc_b", "auc_c", "auc_light", "auc_ud", "auc_g", "auc_s",
    "rej_c_at_b80", "rej_light_at_b80", "rej_ud_at_b80", "rej_g_at_b80", "rej_b_at_c50", "rej_light_at_c50",
    "rej_ud_at_c50", "rej_g_at_c50", "rej_s_at_c50", "s_eff_at_ud10", "s_rej_g_at_ud10",
)

#: The headline figure (name without prefix, what it is) that ranks taggers: the light-quark
#: rejection of the c tagger at 50% c efficiency, the hardest separation at the Z pole.
HEADLINE_METRIC: tuple[str, str] = ("rej_uds_at_c50", "uds rejection at 50% c efficiency (D_c)")
JET_HEADLINE_METRIC: tuple[str, str] = ("rej_light_at_c50", "light rejection at 50% c efficiency (D_c)")
STRANGE_HEADLINE_METRIC: tuple[str, str] = ("rej_ud_at_c50", "ud rejection at 50% c efficiency (D_c)")


def headline_metric(names: Sequence[str]) -> tuple[str, str]:
    """The headline ``(name, description)`` for classes ``names`` (event: uds/cc/bb; jets: light/c/b[/g])."""
    return HEADLINE_METRIC if "uds" in names else STRANGE_HEADLINE_METRIC if "ud" in names else JET_HEADLINE_METRIC


def rank_by(flat: Mapping[str, Mapping[str, float]], metric: str) -> list[str]:
    """The keys of ``flat`` (model -> flat metrics, prefixed names) best first by ``metric`` (higher is
    better; a lower limit counts as its value; missing or nan last, in their given order)."""
    def key(item: tuple[int, str]) -> tuple[bool, float, int]:
        value = flat[item[1]].get(metric, math.nan)
        return (math.isnan(value), -value if not math.isnan(value) else 0.0, item[0])

    return [name for _, name in sorted(enumerate(flat), key=key)]


def _as_flat(result: EvaluationResult | Mapping[str, float], prefix: str,
             infinite_rejection: Literal["inf", "limit"] = "inf") -> dict[str, float]:
    """Metrics of one model without ``prefix``; accepts a result or a flat dict (e.g. from MLflow)."""
    if isinstance(result, EvaluationResult):
        return result.flat_metrics(prefix="", infinite_rejection=infinite_rejection)
    return {k[len(prefix):]: float(v) for k, v in result.items() if k.startswith(prefix)}


def _decimals(name: str, value: float) -> int:
    """Decimals shown for a metric: 4 for fractions, 0-2 for rejections by magnitude."""
    if not name.startswith("rej_"):
        return 4
    a = abs(value)
    return 0 if a >= 100 else 1 if a >= 10 else 2


def format_figure(name: str, value: float | None, err: float | None) -> str:
    """One figure as text: ``value ± err``, ``> limit`` for a rejection lower limit (nan error), "-" if missing."""
    return _format_cell(name, value, err, True)


def _format_cell(name: str, value: float | None, err: float | None, with_errors: bool) -> str:
    """One table cell: ``value ± err``, ``> limit`` for a rejection where no background passed, "-" if missing.

    A finite rejection whose error is nan is the 95% CL lower limit logged
    when no background event passed the cut (see
    :meth:`EvaluationResult.flat_metrics`); an inf from older runs stays "inf".
    """
    if value is None or math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf"
    d = _decimals(name, value)
    if name.startswith("rej_") and err is not None and math.isnan(err):
        return f"> {value:.{d}f}"
    cell = f"{value:.{d}f}"
    if with_errors and err is not None and math.isfinite(err):
        cell += f" ± {err:.{d}f}"
    return cell


def format_comparison_table(
    results: Mapping[str, EvaluationResult | Mapping[str, float]],
    metrics: Sequence[str] = DEFAULT_TABLE_METRICS,
    prefix: str = "test/",
    with_errors: bool = True,
) -> str:
    """Plain-text table comparing models: one row per model, one column per metric.

    ``results`` maps model name -> :class:`EvaluationResult` or flat metrics
    (names carrying ``prefix``, as logged to MLflow). ``metrics`` are names
    without prefix. Rejections are shown as ``value ± err`` when
    ``with_errors`` and the ``_err`` metric exists; missing values as "-".
    Where no background event passed, the 95% CL lower limit is shown as
    ``> limit`` (for example "> 450").
    """
    flat = {model: _as_flat(r, prefix, infinite_rejection="limit") for model, r in results.items()}
    header = ["model", *metrics]
    rows = []
    for model, m in flat.items():
        row = [model]
        for name in metrics:
            cell = _format_cell(name, m.get(name), m.get(f"{name}_err"), with_errors)
            row.append(cell)
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:]))]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)]) + "\n"


def write_comparison_csv(
    results: Mapping[str, EvaluationResult | Mapping[str, float]],
    path: str | Path,
    metrics: Sequence[str] | None = None,
    prefix: str = "test/",
) -> Path:
    """Write a CSV with a ``model`` column and one column per metric; returns the path.

    ``metrics`` (names without prefix) defaults to every metric of any model,
    in first-seen order (the :meth:`EvaluationResult.flat_metrics` order).
    Values are written with full precision (``repr``); inf as ``inf``,
    missing or nan as an empty cell.
    """
    flat = {model: _as_flat(r, prefix) for model, r in results.items()}
    if metrics is None:
        metrics = list(dict.fromkeys(name for m in flat.values() for name in m))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", *metrics])
        for model, m in flat.items():
            cells = []
            for name in metrics:
                v = m.get(name)
                cells.append("" if v is None or math.isnan(v) else repr(float(v)))
            writer.writerow([model, *cells])
    return path
