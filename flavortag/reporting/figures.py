"""The look and the files of every plot: mplhep style, colours, Agg figures, output paths, saving.

Saving PDFs embeds font subsets through fontTools, whose ``fontTools.subset``
logger reports every glyph at INFO level; it is set to WARNING here so that
an app's log shows progress and results only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib.style
import mplhep
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend

from flavortag.metrics import (
    EvaluationResult,
    RejectionCurve,
)
from flavortag.reporting.sample import SampleInfo

logging.getLogger("fontTools").setLevel(logging.WARNING)


#: Colour of each true class (mplhep/Petroff palette): uds blue, cc orange, bb red.
CLASS_COLOURS: dict[str, str] = {"uds": "#5790fc", "cc": "#f89c20", "bb": "#e42536"}
#: Colours of models in comparisons, in order (the reference model is drawn first).
MODEL_COLOURS: tuple[str, ...] = (
    "#000000", "#5790fc", "#e42536", "#f89c20", "#964a8b", "#7a21dd", "#9c9ca1",
)
MODEL_LINESTYLES = ("-", "--", "-.", ":")
#: Legend/axis text of each class name and tagger flavour.
CLASS_TEX = {"uds": "uds", "cc": r"$c\bar{c}$", "bb": r"$b\bar{b}$"}
FLAVOUR_TEX = {"uds": "uds", "c": r"$c\bar{c}$", "b": r"$b\bar{b}$", "light": "light-jet", "g": "g-jet"}
FLAVOUR_COLOURS = {"uds": CLASS_COLOURS["uds"], "c": CLASS_COLOURS["cc"], "b": CLASS_COLOURS["bb"],
                   "light": CLASS_COLOURS["uds"], "g": "#964a8b"}
FRACTION_TEX = {"b": "f_c", "c": "f_b"}

_STYLE: dict[str, Any] = {
    **mplhep.style.ROOT,
    "font.size": 17,
    "axes.linewidth": 1.2,
    "xtick.major.size": 8,
    "xtick.minor.size": 4,
    "ytick.major.size": 8,
    "ytick.minor.size": 4,
    "lines.linewidth": 2.0,
    "legend.fontsize": "small",
    "savefig.dpi": 100,
    "pdf.fonttype": 42,
}
Formats = Sequence[str]


@contextmanager
def figure_style() -> Iterator[None]:
    with matplotlib.style.context(_STYLE):
        yield


def new_figure(width_in: float, height_in: float, constrained: bool = True) -> Figure:
    fig = Figure(figsize=(width_in, height_in), layout="constrained" if constrained else None)
    FigureCanvasAgg(fig)
    return fig


def figure_paths(path: str | os.PathLike[str], default_stem: str, formats: Formats) -> list[Path]:
    """Files to write for ``path`` (directory or stem) in each format."""
    if not formats:
        raise ValueError("formats must name at least one file format, e.g. ('png', 'pdf')")
    text = os.fspath(path)
    p = Path(text)
    if p.is_dir() or text.endswith(("/", os.sep)):
        stem = p / default_stem
    elif p.suffix.lower() in {".png", ".pdf", ".svg"}:
        stem = p.with_suffix("")
    else:
        stem = p
    stem.parent.mkdir(parents=True, exist_ok=True)
    return [stem.parent / f"{stem.name}.{fmt.lstrip('.').lower()}" for fmt in formats]


def save_figure(fig: Figure, path: str | os.PathLike[str], default_stem: str, formats: Formats) -> list[Path]:
    paths = figure_paths(path, default_stem, formats)
    for k, p in enumerate(paths):
        fig.savefig(p)
        if k == 0 and len(paths) > 1 and fig.get_layout_engine() is not None:
            # the layout is in figure coordinates: the first format's serves the others (a constrained
            # layout costs about as much as drawing; PNG + PDF laid out once: ~20 % less time a figure)
            fig.set_layout_engine("none")
    fig.clear()
    return paths


def add_caption(ax: Axes, text: str | None) -> None:
    """Small text above the top-left corner of ``ax`` (e.g. sample description)."""
    if text:
        ax.set_title(text, loc="left", fontsize="small")


def sample_block(sample: SampleInfo | None, caption: str | None) -> SampleInfo:
    """The sample block of a plot; ``caption`` is its last line unless the sample has a label."""
    info = sample or SampleInfo()
    return info.with_(label=caption) if caption and not info.label else info


def add_experiment_label(ax: Axes, sample: SampleInfo | None) -> None:
    """The experiment label above ``ax`` as mplhep draws it: bold "flavortag", italic "Simulation"
    on the left, sqrt(s) on the right. Drawn here: ``mplhep.label.exp_label`` opens a pyplot figure."""
    ax.text(0.0, 1.01, r"$\bf{flavortag}$ $\it{Simulation}$", transform=ax.transAxes, ha="left",
            va="bottom", fontsize="small")
    energy = sample.energy_text if sample is not None else None
    if energy:
        ax.text(1.0, 1.01, energy, transform=ax.transAxes, ha="right", va="bottom", fontsize="small")


def legend_outside(fig: Figure, handles: Sequence[Any], labels: Sequence[str] | None = None,
                    sample: SampleInfo | None = None, caption: str | None = None) -> Legend:
    """The figure's legend right of the axes (so it never covers a curve), the sample block as its title."""
    text = sample_block(sample, caption).text()
    args = (list(handles), list(labels)) if labels is not None else (list(handles),)
    if fig.get_layout_engine() is None:  # a fixed layout: right of the subplots' area
        place: dict[str, Any] = {"loc": "upper left",
                                 "bbox_to_anchor": (fig.subplotpars.right + 0.01, fig.subplotpars.top)}
    else:
        place = {"loc": "outside right upper"}
    return fig.legend(*args, **place, title=text or None, alignment="left",
                      frameon=False, fontsize="x-small", title_fontsize="x-small")


def decorate_axes(fig: Figure, ax: Axes, sample: SampleInfo | None, caption: str | None,
              handles: Sequence[Any] | None = None, labels: Sequence[str] | None = None) -> None:
    """Experiment label over ``ax``; legend (``ax``'s entries unless given) and sample block outside."""
    add_experiment_label(ax, sample)
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    legend_outside(fig, handles, labels, sample, caption)


def ratio_limits(ratios: Sequence[np.ndarray], rel_errors: Sequence[np.ndarray],
                 max_rel_error: float = 0.25) -> tuple[float, float]:
    """Y range of a ratio panel from its well-measured points only (relative error <= ``max_rel_error``).

    Points of poor statistics (an empty or nearly empty background bin gives a
    ratio of 0, inf or 15 with a huge error) do not stretch the axis; the range
    always holds 1, has 10% margins and is (0.5, 1.5) without any good point.
    """
    good = [np.asarray(r, dtype=np.float64)[np.isfinite(r) & (np.asarray(e) <= max_rel_error)]
            for r, e in zip(ratios, rel_errors)]
    values = np.concatenate([g for g in good if g.size] or [np.array([1.0])])
    low, high = min(float(values.min()), 1.0), max(float(values.max()), 1.0)
    if high - low < 0.1:
        low, high = low - 0.05, high + 0.05
    pad = 0.1 * (high - low)
    return max(0.0, low - pad), high + pad


# --------------------------------------------------------------------------- rejection


def as_rejection_curve(item: RejectionCurve | EvaluationResult, tagger: str) -> RejectionCurve:
    if isinstance(item, EvaluationResult):
        curve = item.taggers[tagger].curve
        if curve is None:
            raise ValueError("this EvaluationResult was computed without curves (curve_efficiencies=None)")
        return curve
    if item.tagger and item.tagger != tagger:
        raise ValueError(f"got a {item.tagger}-tagger curve for a {tagger}-tagging plot")
    return item


def finite_values(x: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(x), x, np.nan)
