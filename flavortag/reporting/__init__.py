"""What a person looks at after training: plots, evaluation reports, prediction files, comparisons.

One job per module: :mod:`.figures` (style, colours, saving), :mod:`.plots`
(the standard performance plots), :mod:`.predictions` (per-event prediction
files), :mod:`.report` (one evaluation: metrics, plots, working points, MLflow)
and :mod:`.comparison` (several taggers side by side; the runs come from the compare pipeline). The tables themselves are
numbers-to-text and live in :mod:`flavortag.metrics.tables`.
"""

from flavortag.reporting.comparison import read_scored, write_comparison
from flavortag.reporting.plots import (
    CLASS_COLOURS,
    plot_confusion,
    plot_discriminants,
    plot_rejection,
    plot_roc,
    plot_training_curves,
)
from flavortag.reporting.predictions import write_predictions
from flavortag.reporting.report import evaluation_settings, report

__all__ = [
    "CLASS_COLOURS",
    "evaluation_settings",
    "plot_confusion",
    "plot_discriminants",
    "plot_rejection",
    "plot_roc",
    "plot_training_curves",
    "read_scored",
    "report",
    "write_comparison",
    "write_predictions",
]
