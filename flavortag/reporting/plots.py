"""Standard performance plots of the flavour tagger, written as PNG and PDF.

Every function takes plain results (:class:`flavortag.metrics.EvaluationResult`,
:class:`flavortag.metrics.RejectionCurve`, numpy arrays or a dict of lists),
an output ``path`` and ``formats`` (default PNG and PDF), writes one file per
format and returns the written paths. ``path`` is either a directory (an
existing one, or a string ending in "/"), in which case the function's default
file name is used (e.g. ``rejection_b``), or a file stem (``plots/rej_b``; a
``.png``/``.pdf`` suffix is dropped). Missing parent directories are created.

Figures are built with the object-oriented API on an Agg canvas, never through
``pyplot``: no display is needed, no global figure registry is touched, and
nothing stays open after a call. The look is mplhep's neutral "ROOT" style
(HEP conventions: ticks inside on all sides, minor ticks, axis labels at the
axis ends, TeX Gyre Heros fonts shipped with mplhep so the output is the same
on every machine), applied through a style context so the caller's
matplotlib settings are left alone.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from flavortag.classes import CLASS_NAMES, EVENT_SCHEME, ClassScheme
from flavortag.metrics import (
    DEFAULT_F_B,
    DEFAULT_F_C,
    EvaluationResult,
    RejectionCurve,
    discriminant_b,
    discriminant_c,
    scheme_discriminant,
)
from flavortag.reporting.figures import (
    CLASS_COLOURS,
    CLASS_TEX,
    FLAVOUR_COLOURS,
    FLAVOUR_TEX,
    FRACTION_TEX,
    MODEL_COLOURS,
    MODEL_LINESTYLES,
    Formats,
    as_rejection_curve,
    decorate_axes,
    figure_style,
    finite_values,
    new_figure,
    ratio_limits,
    save_figure,
)
from flavortag.reporting.sample import SampleInfo
from flavortag.schema.groups import BDT

#: Colours of the jet classes (light, c, b like uds, cc, bb; g its own).
_JET_COLOURS: dict[str, str] = {"light": CLASS_COLOURS["uds"], "c": CLASS_COLOURS["cc"],
                                "b": CLASS_COLOURS["bb"], "g": "#964a8b"}

__all__ = [
    "CLASS_COLOURS",
    "plot_confusion",
    "plot_discriminants",
    "plot_rejection",
    "plot_roc",
    "plot_training_curves",
    "rejection_figure",
    "roc_figure",
]


def plot_rejection(
    curves: Mapping[str, RejectionCurve | EvaluationResult],
    path: str | os.PathLike[str],
    tagger: str = "b",
    reference: str | None = None,
    efficiency_range: tuple[float, float] = (0.4, 1.0),
    caption: str | None = None,
    formats: Formats = ("png", "pdf"),
    sample: SampleInfo | None = None,
    max_ratio_rel_error: float = 0.5,
) -> list[Path]:
    """Background rejection versus signal efficiency, one column per background.

    ``curves`` maps a model name to its :class:`RejectionCurve` of ``tagger``
    (or to an :class:`EvaluationResult`, whose ``tagger`` curve is used). The
    rejection axis is logarithmic; shaded bands are the binomial ±1 sigma
    uncertainties, points without any passing background are left out. With
    several models a ratio panel to ``reference`` (default: the BDT, a model
    named ``bdt...``, else the first) is drawn under each column; ratio points
    whose relative error exceeds ``max_ratio_rel_error`` (empty or nearly
    empty background bins) are not drawn, and the ratio axis is bounded by the
    well-measured points (:func:`~flavortag.reporting.figures.ratio_limits`).
    The legend and the sample block (``sample``; ``caption`` its last line)
    sit right of the panels. Default file name ``rejection_<tagger>``.
    """
    with figure_style():
        fig = rejection_figure(curves, tagger=tagger, reference=reference, efficiency_range=efficiency_range,
                               caption=caption, sample=sample, max_ratio_rel_error=max_ratio_rel_error)
        return save_figure(fig, path, f"rejection_{tagger}", formats)


def rejection_figure(
    curves: Mapping[str, RejectionCurve | EvaluationResult],
    tagger: str = "b",
    reference: str | None = None,
    efficiency_range: tuple[float, float] = (0.4, 1.0),
    caption: str | None = None,
    sample: SampleInfo | None = None,
    max_ratio_rel_error: float = 0.5,
) -> Figure:
    """The figure of :func:`plot_rejection` (same arguments, no file): to adjust before saving."""
    if not curves:
        raise ValueError("plot_rejection needs at least one model")
    resolved = {name: as_rejection_curve(c, tagger) for name, c in curves.items()}
    if reference is None:
        reference = default_reference(list(resolved))
    if reference not in resolved:
        raise ValueError(f"reference model {reference!r} is not among {list(resolved)}")
    order = [reference, *(n for n in resolved if n != reference)]
    backgrounds = list(resolved[reference].rejection)
    with_ratio = len(resolved) > 1
    signal = resolved[reference].signal or tagger
    fraction = resolved[reference].fraction

    with figure_style():
        fig = new_figure(6.5 * len(backgrounds) + 3.0, 7.0 if with_ratio else 5.5)
        grid = fig.add_gridspec(2 if with_ratio else 1, len(backgrounds),
                                height_ratios=[3, 1] if with_ratio else [1])
        first_ax = None
        for j, bkg in enumerate(backgrounds):
            ax = fig.add_subplot(grid[0, j])
            first_ax = first_ax or ax
            ax_ratio = fig.add_subplot(grid[1, j], sharex=ax) if with_ratio else None
            ref = resolved[reference]
            drawn: list[tuple[np.ndarray, np.ndarray]] = []
            for i, name in enumerate(order):
                c = resolved[name]
                colour = MODEL_COLOURS[i % len(MODEL_COLOURS)]
                style = MODEL_LINESTYLES[(i // len(MODEL_COLOURS)) % len(MODEL_LINESTYLES)]
                x = c.efficiency
                rej = finite_values(c.rejection[bkg])
                err = np.nan_to_num(c.rejection_err[bkg], nan=0.0, posinf=0.0)
                ax.plot(x, rej, color=colour, linestyle=style, label=name)
                ax.fill_between(x, np.clip(rej - err, 1e-3, None), rej + err,
                                color=colour, alpha=0.2, linewidth=0)
                if ax_ratio is not None:
                    ratio, rel = _ratio_to(c, ref, bkg, same=name == reference)
                    ratio = np.where(rel <= max_ratio_rel_error, ratio, np.nan)  # poor statistics: not drawn
                    drawn.append((ratio, rel))
                    ax_ratio.plot(x, ratio, color=colour, linestyle=style)
                    ax_ratio.fill_between(x, ratio * (1 - rel), ratio * (1 + rel),
                                          color=colour, alpha=0.2, linewidth=0)
            if ax_ratio is not None:
                in_range = (ref.efficiency >= efficiency_range[0]) & (ref.efficiency <= efficiency_range[1])
                ax_ratio.set_ylim(*ratio_limits([r[in_range] for r, _ in drawn],
                                                [e[in_range] for _, e in drawn]))
            ax.set_yscale("log")
            ax.set_xlim(*efficiency_range)
            ax.set_ylabel(f"{FLAVOUR_TEX.get(bkg, bkg)} rejection (1 / mistag rate)")
            top = max(
                np.nanmax(finite_values(c.rejection[bkg][(c.efficiency >= efficiency_range[0])
                                                    & (c.efficiency <= efficiency_range[1])]),
                          initial=1.0)
                for c in resolved.values()
            )
            ax.set_ylim(0.8, max(10.0, top) * 3.0)
            text = f"{tagger}-tagging: {FLAVOUR_TEX.get(bkg, bkg)} background"
            if fraction is not None:
                text += f"\n${FRACTION_TEX.get(tagger, 'f')}$ = {fraction:g}"
            ax.text(0.05, 0.05, text, transform=ax.transAxes, fontsize="small", va="bottom")
            ax.grid(True, which="major")
            xlabel = f"{FLAVOUR_TEX.get(signal, signal)} efficiency"
            if ax_ratio is not None:
                ax.tick_params(labelbottom=False)
                ax_ratio.axhline(1.0, color="grey", linewidth=1.0, linestyle=":")
                ax_ratio.set_ylabel(f"Ratio to {reference}", fontsize="x-small")
                ax_ratio.set_xlabel(xlabel)
                ax_ratio.grid(True, which="major")
            else:
                ax.set_xlabel(xlabel)
        assert first_ax is not None
        decorate_axes(fig, first_ax, sample, caption)
        return fig


def default_reference(names: Sequence[str]) -> str:
    """The reference of ratio panels: the BDT (the first name starting with "bdt"), else the first."""
    for name in names:
        if str(name).lower().startswith(BDT):
            return name
    return names[0]


def _ratio_to(curve: RejectionCurve, ref: RejectionCurve, bkg: str, same: bool) -> tuple[np.ndarray, np.ndarray]:
    """Rejection ratio of ``curve`` to ``ref`` on ``curve``'s grid, and its relative error (nan/inf: unknown)."""
    x = curve.efficiency
    rej = finite_values(curve.rejection[bkg])
    ref_rej = np.interp(x, ref.efficiency, finite_values(ref.rejection[bkg]))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.asarray(curve.rejection_err[bkg], dtype=np.float64) / rej
        ref_rel = np.interp(x, ref.efficiency, np.asarray(ref.rejection_err[bkg], dtype=np.float64)
                            / finite_values(ref.rejection[bkg]))
        ratio = rej / ref_rej
    total = rel if same else np.hypot(rel, ref_rel)
    return ratio, np.where(np.isfinite(total), total, np.inf)


# --------------------------------------------------------------------------- ROC


def plot_roc(
    results: EvaluationResult | Mapping[str, EvaluationResult],
    path: str | os.PathLike[str],
    caption: str | None = None,
    formats: Formats = ("png", "pdf"),
    sample: SampleInfo | None = None,
) -> list[Path]:
    """The field's ROC: background rejection against signal efficiency, one panel per tagger discriminant.

    b-tagging (D_b) with the c and uds rejections, c-tagging (D_c) with the b
    and uds rejections (jets: light and g too), over the whole efficiency
    range, log rejection. ``results`` is one :class:`EvaluationResult` or
    ``{model name: result}`` (backgrounds keep their colour, models get line
    styles). Default file name ``roc``.
    """
    with figure_style():
        return save_figure(roc_figure(results, caption, sample), path, "roc", formats)


def roc_figure(results: EvaluationResult | Mapping[str, EvaluationResult], caption: str | None = None,
               sample: SampleInfo | None = None) -> Figure:
    """The figure of :func:`plot_roc` (same arguments, no file)."""
    models = {"": results} if isinstance(results, EvaluationResult) else dict(results)
    taggers = [t for t in ("b", "c") if all(t in r.taggers for r in models.values())]
    with figure_style():
        fig = new_figure(6.5 * len(taggers) + 3.0, 5.8)
        axes = [fig.add_subplot(1, len(taggers), j + 1) for j in range(len(taggers))]
        for ax, tagger in zip(axes, taggers, strict=True):
            for i, (model, r) in enumerate(models.items()):
                curve = as_rejection_curve(r, tagger)
                for bkg, rejection in curve.rejection.items():
                    label = f"{FLAVOUR_TEX.get(bkg, bkg)} rejection" + (f" ({model})" if model else "")
                    ax.plot(curve.efficiency, finite_values(rejection), color=FLAVOUR_COLOURS.get(bkg, "black"),
                            linestyle=MODEL_LINESTYLES[i % len(MODEL_LINESTYLES)], label=label)
            signal = FLAVOUR_TEX.get(tagger, tagger)
            ax.set_yscale("log")
            ax.set_xlim(0, 1)
            ax.set_xlabel(f"{signal} efficiency ($D_{tagger}$ cut)")
            ax.set_ylabel("Background rejection (1 / mistag rate)")
            ax.text(0.95, 0.95, f"{tagger}-tagging: $D_{tagger}$", transform=ax.transAxes, ha="right", va="top")
            ax.grid(True, which="major")
            ax.legend(loc="lower left", fontsize="x-small")
        decorate_axes(fig, axes[0], sample, caption, handles=[], labels=[])  # each panel has its own legend
        return fig


# --------------------------------------------------------------------------- discriminants


def plot_discriminants(
    probs: np.ndarray,
    labels: np.ndarray,
    path: str | os.PathLike[str],
    f_c: float = DEFAULT_F_C,
    f_b: float = DEFAULT_F_B,
    bins: int = 60,
    caption: str | None = None,
    formats: Formats = ("png", "pdf"),
    sample: SampleInfo | None = None,
    scheme: ClassScheme = EVENT_SCHEME,
) -> list[Path]:
    """Distributions of D_b and D_c for each true class, each normalised to unit area, log y.

    ``probs`` [n, 3] and ``labels`` [n] as for :func:`flavortag.metrics.evaluate_predictions`.
    The range covers the 0.05-99.95% quantiles of all events; entries outside
    are counted in the first/last bin. Default file name ``discriminants``.
    """
    labels = np.asarray(labels)
    if not scheme.is_event_scheme:
        rest = "+".join(f"p_{{{f}}}" for f in scheme.flavours if f not in ("b", "c"))
        panels = [
            ("b", scheme_discriminant(probs, "b", f_c, scheme),
             rf"$D_b = \ln\,[\,p_b\,/\,(f_c\,p_c + (1-f_c)({rest}))\,]$", f"b-tagging, $f_c$ = {f_c:g}"),
            ("c", scheme_discriminant(probs, "c", f_b, scheme),
             rf"$D_c = \ln\,[\,p_c\,/\,(f_b\,p_b + (1-f_b)({rest}))\,]$", f"c-tagging, $f_b$ = {f_b:g}"),
        ]
    else:
        panels = [
            ("b", discriminant_b(probs, f_c), r"$D_b = \ln\,[\,p_b\,/\,(f_c\,p_c + (1-f_c)\,p_{uds})\,]$",
             f"b-tagging, $f_c$ = {f_c:g}"),
            ("c", discriminant_c(probs, f_b), r"$D_c = \ln\,[\,p_c\,/\,(f_b\,p_b + (1-f_b)\,p_{uds})\,]$",
             f"c-tagging, $f_b$ = {f_b:g}"),
        ]
    with figure_style():
        fig = new_figure(16.0, 5.8)
        for j, (_tagger, d, xlabel, note) in enumerate(panels):
            ax = fig.add_subplot(1, 2, j + 1)
            lo, hi = (np.quantile(d, [0.0005, 0.9995]) if d.size else (0.0, 1.0))
            if not hi > lo:
                lo, hi = lo - 0.5, hi + 0.5
            edges = np.linspace(lo, hi, bins + 1)
            width = edges[1] - edges[0]
            for k, name in enumerate(scheme.names):
                dk = d[labels == k]
                if not dk.size:
                    continue
                counts, _ = np.histogram(np.clip(dk, lo, hi), bins=edges)
                ax.stairs(counts / dk.size, edges,
                          color=CLASS_COLOURS.get(name, _JET_COLOURS.get(name, "black")), linewidth=2.0,
                          label=f"{CLASS_TEX.get(name, name)} {'events' if scheme.is_event_scheme else 'jets'}")
            ax.set_yscale("log")
            ax.set_xlim(lo, hi)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"Fraction of events / {width:.2g}")
            ax.text(0.04, 0.95, note, transform=ax.transAxes, va="top", fontsize="small")
            low, high = ax.get_ylim()
            ax.set_ylim(low, high * 8)  # head room for the note
            if j == 0:
                first_ax = ax
        decorate_axes(fig, first_ax, sample, caption)
        return save_figure(fig, path, "discriminants", formats)


# --------------------------------------------------------------------------- confusion matrix


def plot_confusion(
    result: EvaluationResult | np.ndarray,
    path: str | os.PathLike[str],
    class_names: Sequence[str] = CLASS_NAMES,
    caption: str | None = None,
    formats: Formats = ("png", "pdf"),
    sample: SampleInfo | None = None,
) -> list[Path]:
    """Row-normalised confusion matrix (row = true class) with the fractions written in the cells.

    ``result`` is an :class:`EvaluationResult` or a [3, 3] matrix of counts
    (integers: normalised here, counts shown under the fractions) or of
    fractions. Default file name ``confusion``.
    """
    if isinstance(result, EvaluationResult):
        class_names = result.class_names
        counts: np.ndarray | None = result.confusion
        fractions = result.confusion_normalised
    else:
        m = np.asarray(result)
        if m.shape != (len(class_names), len(class_names)):
            raise ValueError(f"confusion matrix must be {len(class_names)}x{len(class_names)}, got {m.shape}")
        counts = m if np.issubdtype(m.dtype, np.integer) else None
        rows = m.sum(axis=1, keepdims=True)
        fractions = m / np.where(rows > 0, rows, 1) if counts is not None else m.astype(float)
    n = len(class_names)
    tex = [CLASS_TEX.get(c, c) for c in class_names]
    with figure_style():
        fig = new_figure(9.5, 6.0)
        ax = fig.add_subplot()
        image = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
        fig.colorbar(image, ax=ax, label="Fraction of true class", shrink=0.9)
        for i in range(n):
            for k in range(n):
                v = fractions[i, k]
                text = f"{v:.3f}" if math.isfinite(v) else "-"
                if counts is not None:
                    text += f"\n({counts[i, k]:,})"
                ax.text(k, i, text, ha="center", va="center", fontsize="small",
                        color="white" if v > 0.55 else "black")
        ax.set_xticks(range(n), tex)
        ax.set_yticks(range(n), tex)
        ax.tick_params(which="minor", left=False, right=False, top=False, bottom=False)
        ax.tick_params(which="major", length=0)
        ax.set_xlabel("Predicted class")
        ax.set_ylabel("True class")
        decorate_axes(fig, ax, sample, caption, handles=[])
        return save_figure(fig, path, "confusion", formats)


# --------------------------------------------------------------------------- training curves


def _series_label(key: str, quantity: str) -> str:
    for token in (quantity, "accuracy"):
        key = key.replace(token, "")
    key = key.strip("/_-. ")
    return key or quantity


def plot_training_curves(
    history: Mapping[str, Sequence[float]],
    path: str | os.PathLike[str],
    caption: str | None = None,
    formats: Formats = ("png", "pdf"),
    sample: SampleInfo | None = None,
) -> list[Path]:
    """Loss and accuracy per epoch, one panel each, from a dict of per-epoch lists.

    Keys containing "loss" go to the loss panel, keys containing "acc" to the
    accuracy panel, labelled by the rest of the key ("train_loss" -> "train",
    "val/acc" -> "val"). An optional "epoch" list gives the x values (else
    1, 2, ...). The epoch of the lowest validation loss (a key with "val"
    and "loss") is marked. Default file name ``training_curves``.
    """
    epochs = history.get("epoch")
    panels = {
        "loss": [k for k in history if "loss" in k and k != "epoch"],
        "acc": [k for k in history if "acc" in k and "loss" not in k and k != "epoch"],
    }
    panels = {q: keys for q, keys in panels.items() if keys}
    if not panels:
        raise ValueError(f"history has no loss or accuracy series (keys: {list(history)})")
    best_epoch = None
    val_loss = [k for k in panels.get("loss", []) if "val" in k]
    if val_loss and len(history[val_loss[0]]):
        values = np.asarray(history[val_loss[0]], dtype=float)
        x = np.asarray(epochs, dtype=float) if epochs is not None and len(epochs) == len(values) \
            else np.arange(1, len(values) + 1)
        best_epoch = x[int(np.nanargmin(values))]
    titles = {"loss": "Loss (cross-entropy)", "acc": "Accuracy"}
    with figure_style():
        fig = new_figure(6.5 * len(panels) + 3.0, 5.5)
        for j, (quantity, keys) in enumerate(panels.items()):
            ax = fig.add_subplot(1, len(panels), j + 1)
            for i, key in enumerate(keys):
                values = np.asarray(history[key], dtype=float)
                x = np.asarray(epochs, dtype=float) if epochs is not None and len(epochs) == len(values) \
                    else np.arange(1, len(values) + 1)
                label = _series_label(key, quantity)
                colour = MODEL_COLOURS[1:][i % (len(MODEL_COLOURS) - 1)]
                ax.plot(x, values, color=colour, marker="o", markersize=4,
                        linestyle="--" if "val" in key else "-", label=label)
            if best_epoch is not None:
                ax.axvline(best_epoch, color="grey", linestyle=":", linewidth=1.2,
                           label=f"best val. loss (epoch {best_epoch:g})")
            ax.set_xlabel("Epoch")
            ax.set_ylabel(titles[quantity])
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True)
            if j == 0:
                first_ax = ax
        decorate_axes(fig, first_ax, sample, caption)
        return save_figure(fig, path, "training_curves", formats)
