"""Issue 15: plots for a talk: a sample block on every plot, legends outside the curves, a chosen and
bounded ratio panel, and efficiency / rejection versus an event variable at a fixed working point."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from matplotlib.text import Text

from flavortag.metrics import RejectionCurve, performance_vs_variable
from flavortag.reporting.binned import event_variables, performance_vs_variables_figure
from flavortag.reporting.plots import rejection_figure
from flavortag.reporting.sample import SampleInfo, sample_info

PROJECT = Path(__file__).resolve().parents[2]
INFO = SampleInfo(detector="ild", sqrt_s_gev=91.188, process="Z -> q qbar (uds, cc, bb)", n_events=13500,
                  label="bdt vs transformer")


def _curve(rejection: np.ndarray, rel_err: np.ndarray, efficiency: np.ndarray) -> RejectionCurve:
    return RejectionCurve(tagger="b", signal="b", efficiency=efficiency, signal_efficiency=efficiency,
                          rejection={"c": rejection, "uds": rejection * 2},
                          rejection_err={"c": rejection * rel_err, "uds": rejection * 2 * rel_err},
                          n_signal=4500, n_background={"c": 4500, "uds": 4500})


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


@pytest.fixture(scope="module")
def curves() -> dict[str, RejectionCurve]:
    eff = np.linspace(0.4, 1.0, 61)
    model_rej = 12.0 / eff
    model_err = np.full_like(eff, 0.05)
    model_rej[eff < 0.5] = np.inf          # empty background bins: nothing passes
    model_err[eff < 0.5] = np.nan
    low_stats = (eff >= 0.5) & (eff < 0.56)
    model_rej[low_stats] = 150.0           # one background event passes: ratio 15 with a 100% error
    model_err[low_stats] = 1.0
    # the BDT is the reference by default, wherever it is in the list
    return {"transformer": _curve(model_rej, model_err, eff), "bdt": _curve(10.0 / eff, np.full_like(eff, 0.05), eff)}


def test_every_plot_carries_the_sample_block_outside_the_curves(curves: dict[str, RejectionCurve]) -> None:
    fig = rejection_figure(curves, tagger="b", sample=INFO)
    texts = _texts(fig)
    assert "√s = 91.19 GeV" in texts                              # over the axes, mplhep style
    assert any("flavortag" in t and "Simulation" in t for t in texts)
    block = next(t for t in texts if "13,500 test events" in t)   # the legend's title
    assert block.splitlines() == ["√s = 91.19 GeV, ild detector model", "Z -> q qbar (uds, cc, bb)",
                                  "13,500 test events", "bdt vs transformer"]
    fig.canvas.draw()
    (legend,) = fig.legends
    box = legend.get_window_extent()
    for ax in fig.axes:                                           # the legend covers no panel
        assert not box.overlaps(ax.get_window_extent())


def test_ratio_reference_is_the_bdt_and_its_axis_ignores_empty_bins(curves: dict[str, RejectionCurve]) -> None:
    fig = rejection_figure(curves, tagger="b", sample=INFO)
    ratio_axes = [ax for ax in fig.axes if ax.get_ylabel().startswith("Ratio to")]
    assert [ax.get_ylabel() for ax in ratio_axes] == ["Ratio to bdt", "Ratio to bdt"]
    for ax in ratio_axes:
        low, high = ax.get_ylim()
        assert 0.9 < low < 1.0 and 1.2 < high < 1.3, (low, high)   # the well-measured ratio is 1.2
        lines = [line for line in ax.get_lines() if np.size(line.get_xdata()) > 2]
        ratio = np.asarray(lines[1].get_ydata(), dtype=float)    # the transformer's ratio line
        assert np.all(np.isnan(ratio[:16])) and np.allclose(ratio[16:], 1.2)  # poor bins not drawn
    chosen = rejection_figure(curves, tagger="b", reference="transformer")
    assert [ax.get_ylabel() for ax in chosen.axes if ax.get_ylabel().startswith("Ratio")] == \
        ["Ratio to transformer"] * 2


def test_sample_info_from_the_generation_record_and_from_the_config(tmp_path: Path) -> None:
    embedded = sample_info({"paths": [str(PROJECT / "data" / "zpole_ild" / "*.parquet")]}, None, n_events=900)
    assert embedded.detector == "ild" and embedded.sqrt_s_gev == pytest.approx(91.188)
    assert embedded.lines()[:3] == ["√s = 91.19 GeV, ild detector model",
                                    r"$e^+e^- \to Z/\gamma^* \to q\bar{q}$ (uds, cc, bb)", "900 test events"]
    (tmp_path / "mine.parquet").write_bytes(b"")
    mine = sample_info({"name": "mine", "paths": [str(tmp_path / "mine.parquet")]},
                       {"name": "ild", "ip_resolution_scale": 1.5}, n_events=10, events_label="events")
    assert mine.lines() == ["ild (IP resolution x1.5) detector model", "sample mine", "10 events"]  # no sqrt(s)


def test_efficiency_and_rejection_per_bin_at_one_cut() -> None:
    passing, failing = [0.05, 0.05, 0.9], [0.45, 0.45, 0.1]
    rows, labels, values = [], [], []

    def add(label: int, value: float, n_pass: int, n_fail: int) -> None:
        rows.extend([passing] * n_pass + [failing] * n_fail)
        labels.extend([label] * (n_pass + n_fail))
        values.extend([value] * (n_pass + n_fail))

    add(2, 0.25, 6, 4)   # bb in bin 0: 6 of 10 pass
    add(2, 0.75, 2, 8)   # bb in bin 1: 2 of 10 pass -> inclusive 40%
    add(1, 0.25, 1, 9)   # cc: bin 0 one of 10 passes, bin 1 none of 5
    add(1, 0.75, 0, 5)
    add(0, 0.25, 2, 2)   # uds: bin 0 two of 4
    add(0, 0.75, 0, 3)
    add(2, 1.5, 0, 0)
    result = performance_vs_variable(np.array(rows), np.array(labels), np.array(values), np.array([0.0, 0.5, 1.0]),
                                     tagger="b", efficiency=0.4)
    np.testing.assert_allclose(result.efficiency, [0.6, 0.2])
    np.testing.assert_allclose(result.efficiency_err, [np.sqrt(0.6 * 0.4 / 10), np.sqrt(0.2 * 0.8 / 10)])
    np.testing.assert_array_equal(result.n_signal, [10, 10])
    assert result.rejection["c"][0] == pytest.approx(10.0) and np.isinf(result.rejection["c"][1])
    assert np.isnan(result.rejection_err["c"][1])
    assert result.rejection["uds"][0] == pytest.approx(2.0)
    assert result.rejection_err["uds"][0] == pytest.approx(1.0)   # sigma(0.5) = 0.25 over 0.5^2
    np.testing.assert_allclose(result.centres, [0.25, 0.75])

    fig = performance_vs_variables_figure({"bdt": {"x": result}}, tagger="b", sample=INFO)
    assert any("13,500 test events" in t for t in _texts(fig))
    top = fig.axes[0]
    np.testing.assert_allclose(top.lines[0].get_ydata(), [0.6, 0.2])  # the plotted efficiencies


def test_event_variables() -> None:
    events = ak.Array({"axis": [[0.6, 0.0, -0.8], [0.0, 0.0, 1.0]],
                       "tracks": [[{"E": 1.5}, {"E": 2.0}], []]})
    variables = event_variables(events)
    np.testing.assert_allclose(variables["abs_cos_theta_axis"], [0.8, 1.0])
    np.testing.assert_allclose(variables["n_tracks"], [2, 0])
    np.testing.assert_allclose(variables["e_visible_gev"], [3.5, 0.0])


def test_rejection_panels_without_any_passing_background_still_draw(tmp_path: Path) -> None:
    from flavortag.reporting.binned import plot_performance_vs_variables

    probs = np.array([[0.0, 0.0, 1.0]] * 5 + [[0.5, 0.5, 0.0]] * 10)   # no background passes any cut
    labels = np.array([2] * 5 + [1] * 5 + [0] * 5)
    result = performance_vs_variable(probs, labels, np.linspace(0.1, 0.9, 15), np.array([0.0, 0.5, 1.0]),
                                     efficiency=0.5)
    assert np.isinf(result.rejection["c"]).all()
    paths = plot_performance_vs_variables({"m": {"x": result}}, tmp_path, formats=("png",))
    assert [p.name for p in paths] == ["performance_vs_variables_b.png"] and paths[0].stat().st_size > 10_000
