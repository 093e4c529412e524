"""The evaluation report of one set of predictions: metrics, plots, working points, predictions.

:func:`report` computes everything and writes it under an output directory;
the evaluation (:func:`flavortag.evaluation.log_report`) logs that directory to
the MLflow run. Nothing here touches MLflow.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from flavortag import metrics as ftm
from flavortag.classes import EVENT_SCHEME, ClassScheme
from flavortag.metrics.tables import JET_TABLE_METRICS
from flavortag.reporting import plots
from flavortag.reporting.binned import binned_plots, event_variables
from flavortag.reporting.predictions import write_predictions
from flavortag.reporting.sample import SampleInfo

log = logging.getLogger("flavortag.evaluate")


def evaluation_settings(eval_cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``evaluate`` node with defaults filled in: ``f_c``, ``f_b``, ``efficiencies``, ``write_predictions``,
    ``vs_variables_efficiency`` (``{"b": 0.7, "c": 0.5}``: the working points of the plots versus a variable),
    ``plot_formats`` (the file formats of every plot)."""
    cfg = dict(eval_cfg or {})
    return {
        "f_c": ftm.DEFAULT_F_C if cfg.get("f_c") is None else float(cfg["f_c"]),
        "f_b": ftm.DEFAULT_F_B if cfg.get("f_b") is None else float(cfg["f_b"]),
        "efficiencies": tuple(float(e) for e in (cfg.get("efficiencies") or ftm.DEFAULT_EFFICIENCIES)),
        "write_predictions": bool(cfg.get("write_predictions", True)),
        "vs_variables_efficiency": {"b": float(cfg.get("vs_variables_b_efficiency") or 0.7),
                                    "c": float(cfg.get("vs_variables_c_efficiency") or 0.5)},
        "plot_formats": tuple(str(f) for f in (cfg.get("plot_formats") or ("png", "pdf"))),
    }


def report(
    probs: np.ndarray,
    labels: np.ndarray,
    eval_cfg: Mapping[str, Any] | None,
    out_dir: str | Path,
    prefix: str = "test/",
    history: Mapping[str, Sequence[float]] | None = None,
    events: ak.Array | None = None,
    caption: str | None = None,
    sample: SampleInfo | None = None,
    vs_variables: bool = True,
    scheme: ClassScheme = EVENT_SCHEME,
) -> dict[str, float]:
    """Compute metrics, make plots, working points and predictions, all written under ``out_dir``.

    ``scheme``: the classes of the columns of ``probs`` (jets: ``light, c, b[, g]``).
    ``sample`` is the plots' sample block (its number of events defaults to
    ``len(labels)``); with ``events`` and ``vs_variables`` the efficiency and
    rejection versus the axis polar angle, the number of tracks and the visible
    energy are drawn too (``plots/performance_vs_variables_{b,c}``; event scheme only).
    Returns the flat metrics (``test/acc``, ``test/rej_c_at_b80``, ...; jets
    also ``test/rej_light_at_c50``, ``test/rej_g_at_c50``).
    """
    settings = evaluation_settings(eval_cfg)
    sample = sample or SampleInfo()
    if sample.n_events is None:
        sample = sample.with_(n_events=len(labels))
    out = Path(out_dir)
    plot_dir = out / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    result = ftm.evaluate_predictions(probs, labels, efficiencies=settings["efficiencies"],
                                      f_c=settings["f_c"], f_b=settings["f_b"], scheme=scheme)
    # zero mistag: log the 95% CL lower limit rather than inf (stays finite in MLflow and JSON)
    flat = result.flat_metrics(prefix, infinite_rejection="limit")
    name = caption or "model"
    formats = settings["plot_formats"]
    plots.plot_rejection({name: result}, plot_dir / "rejection_b", tagger="b", caption=caption, sample=sample, formats=formats)
    plots.plot_rejection({name: result}, plot_dir / "rejection_c", tagger="c", caption=caption, sample=sample, formats=formats)
    plots.plot_roc(result, plot_dir / "roc", caption=caption, sample=sample, formats=formats)
    plots.plot_discriminants(probs, labels, plot_dir / "discriminants",
                             f_c=settings["f_c"], f_b=settings["f_b"], caption=caption, sample=sample,
                             scheme=scheme, formats=formats)
    plots.plot_confusion(result, plot_dir / "confusion", caption=caption, sample=sample, formats=formats)
    if vs_variables and scheme == EVENT_SCHEME and events is not None and len(events) == len(labels):
        binned_plots({name: probs}, {name: np.asarray(labels)}, {name: event_variables(events)}, plot_dir,
                     f_c=settings["f_c"], f_b=settings["f_b"], working_points=settings["vs_variables_efficiency"],
                     sample=sample, caption=caption, formats=formats)
    if history:
        curves = {k: v for k, v in history.items() if "loss" in k or "acc" in k}
        if curves and max(len(v) for v in curves.values()) > 1:
            plots.plot_training_curves(curves, plot_dir / "training_curves", caption=caption,
                                       sample=sample.with_(n_events=None), formats=formats)
    wp = result.working_points()
    (out / "working_points.json").write_text(json.dumps(wp, indent=2))
    (out / "metrics.json").write_text(
        json.dumps({k: (v if np.isfinite(v) else None) for k, v in flat.items()}, indent=2))
    if settings["write_predictions"]:
        write_predictions(probs, events, labels, out / "predictions" / "predictions",
                                       settings["f_c"], settings["f_b"], scheme=scheme)
    log.info("%s\n%s", caption or "evaluation",
             ftm.format_comparison_table({caption or "model": flat}, prefix=prefix,
                                         metrics=ftm.DEFAULT_TABLE_METRICS if scheme.is_event_scheme
                                         else tuple(m for m in JET_TABLE_METRICS if prefix + m in flat)))
    return flat
