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

from flavortag.metrics import (
    EvaluationResult,
    RejectionCurve,
)

logging.getLogger("fontTools").setLevel(logging.WARNING)


#: Colour of each true class (mplhep/Petroff palette): uds blue, cc orange, bb red.
CLASS_COLOURS: dict[str, str] = {"uds": "#5790fc", "cc": "#f89c20", "bb": "#e42536"}
#: Colours of models in comparisons, in order (the reference model is drawn first).
MODEL_COLOURS: tuple[str, ...] = (
    "#000000", "#5790fc", "#e42536", "#f89c20", "#964a8b", "#7a21dd", "#9c9ca1",
)
_MODEL_LINESTYLES = ("-", "--", "-.", ":")
#: Legend/axis text of each class name and tagger flavour.
_CLASS_TEX = {"uds": "uds", "cc": r"$c\bar{c}$", "bb": r"$b\bar{b}$"}
_FLAVOUR_TEX = {"uds": "uds", "c": r"$c\bar{c}$", "b": r"$b\bar{b}$", "light": "light-jet", "g": "g-jet"}
_FLAVOUR_COLOUR = {"uds": CLASS_COLOURS["uds"], "c": CLASS_COLOURS["cc"], "b": CLASS_COLOURS["bb"],
                   "light": CLASS_COLOURS["uds"], "g": "#964a8b"}
_FRACTION_TEX = {"b": "f_c", "c": "f_b"}

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
def _style() -> Iterator[None]:
    with matplotlib.style.context(_STYLE):
        yield


def _new_figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _output_paths(path: str | os.PathLike[str], default_stem: str, formats: Formats) -> list[Path]:
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


def _save(fig: Figure, path: str | os.PathLike[str], default_stem: str, formats: Formats) -> list[Path]:
    paths = _output_paths(path, default_stem, formats)
    for p in paths:
        fig.savefig(p)
    fig.clear()
    return paths


def _caption(ax: Axes, text: str | None) -> None:
    """Small text above the top-left corner of ``ax`` (e.g. sample description)."""
    if text:
        ax.set_title(text, loc="left", fontsize="small")


# --------------------------------------------------------------------------- rejection


def _as_curve(item: RejectionCurve | EvaluationResult, tagger: str) -> RejectionCurve:
    if isinstance(item, EvaluationResult):
        curve = item.taggers[tagger].curve
        if curve is None:
            raise ValueError("this EvaluationResult was computed without curves (curve_efficiencies=None)")
        return curve
    if item.tagger and item.tagger != tagger:
        raise ValueError(f"got a {item.tagger}-tagger curve for a {tagger}-tagging plot")
    return item


def _finite(x: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(x), x, np.nan)
