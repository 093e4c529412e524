"""Efficiency and rejection in bins of an event variable, at one fixed working point.

The working point is one cut on the tagger's discriminant, chosen on all
events so that the inclusive signal efficiency is ``efficiency`` (e.g. 70%
b efficiency); the same cut is then applied in every bin of the variable
(polar angle of the axis, number of tracks, visible energy), so a bin's
efficiency says how the tagger's performance moves across the sample.
Errors are binomial.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flavortag.metrics.discriminants import DEFAULT_F_B, DEFAULT_F_C, discriminant_b, discriminant_c

__all__ = ["BinnedPerformance", "binomial_efficiency", "performance_vs_variable"]

#: Signal class index and backgrounds (name, class index) of each tagger.
_TAGGERS: dict[str, tuple[int, tuple[tuple[str, int], ...]]] = {
    "b": (2, (("c", 1), ("uds", 0))),
    "c": (1, (("uds", 0), ("b", 2))),
}


@dataclass(frozen=True)
class BinnedPerformance:
    """Per-bin signal efficiency and background rejections of one tagger at one cut.

    ``edges`` [n_bins + 1] of ``variable``; ``efficiency`` / ``efficiency_err``
    [n_bins] (nan in a bin without signal); ``rejection[bkg]`` /
    ``rejection_err[bkg]`` (inf where no background event of the bin passes,
    its error then nan); ``n_signal`` and ``n_background[bkg]`` the events per
    bin; ``cut`` the discriminant cut, ``target_efficiency`` its inclusive
    signal efficiency.
    """

    tagger: str
    variable: str
    edges: np.ndarray
    target_efficiency: float
    cut: float
    efficiency: np.ndarray
    efficiency_err: np.ndarray
    n_signal: np.ndarray
    rejection: dict[str, np.ndarray]
    rejection_err: dict[str, np.ndarray]
    n_background: dict[str, np.ndarray]

    @property
    def centres(self) -> np.ndarray:
        """Bin centres."""
        return 0.5 * (self.edges[1:] + self.edges[:-1])


def binomial_efficiency(passed: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``passed / total`` and its binomial error ``sqrt(eff (1 - eff) / total)`` (nan where total is 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        eff = passed / total
        err = np.sqrt(eff * (1.0 - eff) / total)
    return eff, err


def performance_vs_variable(
    probs: np.ndarray,
    labels: np.ndarray,
    values: np.ndarray,
    edges: np.ndarray,
    tagger: str = "b",
    efficiency: float = 0.7,
    f_c: float = DEFAULT_F_C,
    f_b: float = DEFAULT_F_B,
    variable: str = "",
) -> BinnedPerformance:
    """Efficiency and rejection of ``tagger`` ("b" or "c") per bin of ``values``, at one inclusive cut.

    ``probs`` [n, 3] (uds, cc, bb), ``labels`` [n], ``values`` [n] the event
    variable, ``edges`` its bin edges (events outside are not counted). The
    cut keeps the fraction ``efficiency`` of all signal events (those outside
    the bins too): the discriminant's ``1 - efficiency`` quantile.
    """
    if tagger not in _TAGGERS:
        raise ValueError(f"tagger must be 'b' or 'c', not {tagger!r}")
    if not 0.0 < efficiency < 1.0:
        raise ValueError(f"efficiency must be in (0, 1), not {efficiency}")
    signal, backgrounds = _TAGGERS[tagger]
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    values = np.asarray(values, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    disc = discriminant_b(probs, f_c) if tagger == "b" else discriminant_c(probs, f_b)
    sig_disc = disc[labels == signal]
    if sig_disc.size == 0:
        raise ValueError(f"no signal events of the {tagger}-tagger (class {signal}) to place the cut")
    cut = float(np.quantile(sig_disc, 1.0 - efficiency))
    passed = disc > cut
    n_bins = len(edges) - 1

    def counts(mask: np.ndarray) -> np.ndarray:
        return np.histogram(values[mask], bins=edges)[0].astype(np.float64) if n_bins > 0 else np.zeros(0)

    n_sig = counts(labels == signal)
    eff, eff_err = binomial_efficiency(counts((labels == signal) & passed), n_sig)
    rejection: dict[str, np.ndarray] = {}
    rejection_err: dict[str, np.ndarray] = {}
    n_background: dict[str, np.ndarray] = {}
    for name, cls in backgrounds:
        total = counts(labels == cls)
        mistag, mistag_err = binomial_efficiency(counts((labels == cls) & passed), total)
        with np.errstate(divide="ignore", invalid="ignore"):
            rej = 1.0 / mistag
            rej_err = np.where(mistag > 0, mistag_err / mistag**2, np.nan)
        rejection[name], rejection_err[name], n_background[name] = rej, rej_err, total
    return BinnedPerformance(tagger=tagger, variable=variable, edges=edges, target_efficiency=float(efficiency),
                             cut=cut, efficiency=eff, efficiency_err=eff_err, n_signal=n_sig,
                             rejection=rejection, rejection_err=rejection_err, n_background=n_background)
