"""Efficiency and rejection versus an event variable at a fixed working point, per model.

:func:`event_variables` takes the variables from the events (the polar angle
of the event axis, the number of tracks, the visible energy);
:func:`plot_performance_vs_variables` draws, for one tagger, a column per
variable with the signal efficiency on top and each background's rejection
below it, one colour per model (numbers from
:func:`flavortag.metrics.performance_vs_variable`); :func:`binned_plots` does
both taggers for ``evaluate`` and ``compare``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import awkward as ak
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from flavortag.metrics import DEFAULT_F_B, DEFAULT_F_C, BinnedPerformance, performance_vs_variable
from flavortag.reporting.figures import (
    FLAVOUR_TEX,
    MODEL_COLOURS,
    Formats,
    decorate_axes,
    figure_style,
    new_figure,
    save_figure,
)
from flavortag.reporting.sample import SampleInfo

__all__ = ["VARIABLES", "binned_plots", "default_edges", "event_variables", "performance_vs_variables_figure",
           "plot_performance_vs_variables"]

#: The variables and their axis labels.
VARIABLES: dict[str, str] = {
    "abs_cos_theta_axis": r"$|\cos\theta|$ of the event axis",
    "n_tracks": "Number of tracks",
    "e_visible_gev": "Visible energy (sum of track E) [GeV]",
}
#: Working points of the plots (inclusive signal efficiency of each tagger).
DEFAULT_WORKING_POINTS: dict[str, float] = {"b": 0.7, "c": 0.5}


def event_variables(events: ak.Array) -> dict[str, np.ndarray]:
    """``abs_cos_theta_axis`` (|z| of the unit axis), ``n_tracks`` and ``e_visible_gev`` of each event."""
    axis = np.asarray(ak.to_numpy(events["axis"]), dtype=np.float64).reshape(len(events), -1)
    norm = np.linalg.norm(axis, axis=1)
    cos = np.abs(axis[:, 2]) / np.where(norm > 0, norm, 1.0)
    tracks = events["tracks"]
    return {"abs_cos_theta_axis": cos,
            "n_tracks": ak.to_numpy(ak.num(tracks, axis=1)).astype(np.float64),
            "e_visible_gev": ak.to_numpy(ak.sum(tracks["E"], axis=1)).astype(np.float64)}


def default_edges(name: str, values: np.ndarray, n_bins: int = 8) -> np.ndarray:
    """Bin edges: 10 equal bins of |cos theta| in [0, 1]; else quantile bins (about equal counts).

    Quantile edges of the number of tracks are whole numbers (bins hold
    ``[lo, hi)`` track counts); duplicate edges are merged.
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if name == "abs_cos_theta_axis":
        return np.linspace(0.0, 1.0, 11)
    if values.size == 0:
        return np.array([0.0, 1.0])
    edges = np.quantile(values, np.linspace(0.0, 1.0, n_bins + 1))
    if name == "n_tracks":
        edges = np.round(edges)
        edges[-1] = values.max() + 1
    else:
        edges[-1] = np.nextafter(edges[-1], np.inf)  # the largest value in the last bin
    return np.unique(edges)


def plot_performance_vs_variables(
    results: Mapping[str, Mapping[str, BinnedPerformance]],
    path: str | os.PathLike[str],
    tagger: str = "b",
    sample: SampleInfo | None = None,
    caption: str | None = None,
    formats: Formats = ("png", "pdf"),
) -> list[Path]:
    """``results[model][variable]``: efficiency (top row) and rejections (one row per background).

    Points at the bin centres with the bin width as x error and binomial y
    errors; a bin where no background passes shows no rejection point.
    Legend and sample block right of the panels. Default file name
    ``performance_vs_variables_<tagger>``.
    """
    with figure_style():
        fig = performance_vs_variables_figure(results, tagger=tagger, sample=sample, caption=caption)
        return save_figure(fig, path, f"performance_vs_variables_{tagger}", formats)


def performance_vs_variables_figure(
    results: Mapping[str, Mapping[str, BinnedPerformance]],
    tagger: str = "b",
    sample: SampleInfo | None = None,
    caption: str | None = None,
) -> Figure:
    """The figure of :func:`plot_performance_vs_variables` (no file): to adjust before saving."""
    if not results:
        raise ValueError("plot_performance_vs_variables needs at least one model")
    first = next(iter(results.values()))
    variables = list(first)
    example = first[variables[0]]
    backgrounds = list(example.rejection)
    signal = {"b": "b", "c": "c"}[tagger]
    with figure_style():
        # a fixed layout (nine panels of ticks make the constrained one cost most of the time)
        width = 5.0 * len(variables) + 3.5
        fig = new_figure(width, 3.4 * (1 + len(backgrounds)), constrained=False)
        fig.subplots_adjust(left=1.3 / width, right=1.0 - 3.6 / width, bottom=0.08, top=0.95,
                            wspace=0.32, hspace=0.08)
        axes = np.atleast_2d(fig.subplots(1 + len(backgrounds), len(variables), sharex="col", squeeze=False))
        for col, var in enumerate(variables):
            for i, (model, by_var) in enumerate(results.items()):
                r = by_var[var]
                colour = MODEL_COLOURS[i % len(MODEL_COLOURS)]
                xerr = 0.5 * np.diff(r.edges)
                axes[0, col].errorbar(r.centres, r.efficiency, xerr=xerr, yerr=np.nan_to_num(r.efficiency_err), color=colour,
                                      marker="o", markersize=4, linestyle="none", label=model)
                for row, bkg in enumerate(backgrounds, start=1):
                    rej = np.where(np.isfinite(r.rejection[bkg]), r.rejection[bkg], np.nan)
                    err = np.nan_to_num(r.rejection_err[bkg])
                    yerr = np.vstack([np.minimum(err, 0.9 * np.nan_to_num(rej)), err])  # stays > 0 on the log axis
                    axes[row, col].errorbar(r.centres, rej, xerr=xerr, yerr=yerr,
                                            color=colour, marker="o", markersize=4, linestyle="none")
            axes[0, col].axhline(example.target_efficiency, color="grey", linestyle=":", linewidth=1.0)
            axes[0, col].set_ylim(0.0, 1.05)
            axes[0, col].set_ylabel(f"{FLAVOUR_TEX[signal]} efficiency")
            for row, bkg in enumerate(backgrounds, start=1):
                axes[row, col].set_yscale("log")
                axes[row, col].yaxis.set_minor_formatter(NullFormatter())
                axes[row, col].set_ylabel(f"{FLAVOUR_TEX[bkg]} rejection")
                shown = np.concatenate([by_var[var].rejection[bkg] for by_var in results.values()])
                shown = shown[np.isfinite(shown) & (shown > 0)]
                if shown.size == 0:  # no background passes in any bin: a log axis needs limits
                    axes[row, col].set_ylim(1.0, 10.0)
                    axes[row, col].text(0.5, 0.5, "no background passes the cut", ha="center",
                                        transform=axes[row, col].transAxes, fontsize="x-small")
            axes[-1, col].set_xlabel(VARIABLES.get(var, var))
            for ax in axes[:, col]:
                ax.grid(True, which="major", alpha=0.4)
        wp = f"{tagger}-tagger, cut at {example.target_efficiency:.0%} inclusive {FLAVOUR_TEX[signal]} efficiency"
        axes[0, 0].text(0.03, 0.04, wp, transform=axes[0, 0].transAxes, fontsize="x-small", va="bottom")
        decorate_axes(fig, axes[0, 0], sample, caption, *axes[0, 0].get_legend_handles_labels())
        return fig


def binned_plots(
    probs: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    variables: Mapping[str, Mapping[str, np.ndarray]],
    out_dir: str | os.PathLike[str],
    f_c: float = DEFAULT_F_C,
    f_b: float = DEFAULT_F_B,
    working_points: Mapping[str, float] | None = None,
    sample: SampleInfo | None = None,
    caption: str | None = None,
    formats: Formats = ("png", "pdf"),
) -> list[Path]:
    """Both taggers' ``performance_vs_variables_<b|c>`` plots of the models in ``probs``.

    ``probs[model]`` [n, 3], ``labels[model]`` [n] and ``variables[model][name]``
    [n] per model (models may have been scored on different events); the
    bins are those of the first model, so every model shares them.
    """
    wps = {**DEFAULT_WORKING_POINTS, **(working_points or {})}
    first = next(iter(variables.values()))
    edges = {name: default_edges(name, values) for name, values in first.items()}
    written: list[Path] = []
    for tagger in ("b", "c"):
        results = {model: {name: performance_vs_variable(p, labels[model], variables[model][name], edges[name],
                                                         tagger=tagger, efficiency=wps[tagger], f_c=f_c, f_b=f_b,
                                                         variable=name)
                           for name in edges}
                   for model, p in probs.items()}
        written += plot_performance_vs_variables(results, Path(out_dir) / f"performance_vs_variables_{tagger}",
                                                 tagger=tagger, sample=sample, caption=caption, formats=formats)
    return written
