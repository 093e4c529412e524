"""Tests of flavortag.plots: files are written, readable and of the expected size."""

import matplotlib
import matplotlib.image
import numpy as np
import pytest

from flavortag import metrics as M
from flavortag.reporting import plots as P


def _predictions(n, seed, strength):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), labels] += strength
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True), labels


@pytest.fixture(scope="module")
def two_models():
    p1, y1 = _predictions(4000, 1, 1.5)
    p2, y2 = _predictions(4000, 2, 2.5)
    return {"mlp": (p1, y1, M.evaluate_predictions(p1, y1)),
            "transformer": (p2, y2, M.evaluate_predictions(p2, y2))}


def _check_written(paths, shape, min_png_kb=15):
    """Both formats exist and are non-trivial; the PNG decodes to ``shape`` pixels (at 100 dpi)."""
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    png, pdf = paths
    assert png.stat().st_size > min_png_kb * 1024
    assert pdf.stat().st_size > 5 * 1024
    assert pdf.read_bytes()[:5] == b"%PDF-"
    image = matplotlib.image.imread(png)
    assert image.shape == (*shape, 4)
    # not a blank canvas: a good part of the pixels is not white
    assert np.mean(image[..., :3].min(axis=-1) < 0.9) > 0.01


def test_rejection_with_ratio_panels(two_models, tmp_path):
    curves = {name: r for name, (_, _, r) in two_models.items()}
    paths = P.plot_rejection(curves, tmp_path, tagger="b", reference="mlp")
    assert [p.name for p in paths] == ["rejection_b.png", "rejection_b.pdf"]
    _check_written(paths, (700, 1600))  # two backgrounds of 6.5 x 7 inches + 3 for the legend
    # a single model, given as curves, has no ratio panel
    single = {"mlp": two_models["mlp"][2].taggers["c"].curve}
    paths = P.plot_rejection(single, tmp_path / "rej_c.png", tagger="c")
    assert [p.name for p in paths] == ["rej_c.png", "rej_c.pdf"]
    _check_written(paths, (550, 1600))


def test_rejection_argument_errors(two_models, tmp_path):
    result = two_models["mlp"][2]
    with pytest.raises(ValueError, match="reference"):
        P.plot_rejection({"mlp": result}, tmp_path, reference="bdt")
    with pytest.raises(ValueError, match="c-tagger curve"):
        P.plot_rejection({"mlp": result.taggers["c"].curve}, tmp_path, tagger="b")
    no_curves = M.evaluate_predictions(*two_models["mlp"][:2], curve_efficiencies=None)
    with pytest.raises(ValueError, match="without curves"):
        P.plot_rejection({"mlp": no_curves}, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_roc(two_models, tmp_path):
    paths = P.plot_roc({name: r for name, (_, _, r) in two_models.items()}, tmp_path / "roc")
    _check_written(paths, (580, 1600))  # two panels of 6.5 x 5.8 inches + 3 for the sample block
    paths = P.plot_roc(two_models["mlp"][2], tmp_path / "single" / "roc_one")
    assert paths[0].parent.name == "single"
    _check_written(paths, (580, 1600))


def test_roc_is_rejection_against_efficiency_per_discriminant(two_models):
    """The field's convention: one panel per tagger discriminant, background rejection (log) against
    signal efficiency; b-tag: c and uds rejection, c-tag: b and uds rejection; no one-vs-rest curves."""
    result = two_models["mlp"][2]
    fig = P.roc_figure(result)
    b_panel, c_panel = fig.axes
    assert "efficiency" in b_panel.get_xlabel() and "D_b" in b_panel.get_xlabel()
    assert b_panel.get_yscale() == "log" and "rejection" in b_panel.get_ylabel()
    assert [line.get_label() for line in b_panel.get_lines()] == [r"$c\bar{c}$ rejection", "uds rejection"]
    assert [line.get_label() for line in c_panel.get_lines()] == [r"$b\bar{b}$ rejection", "uds rejection"]
    uds = c_panel.get_lines()[1]
    curve = result.taggers["c"].curve
    np.testing.assert_array_equal(uds.get_xdata(), curve.efficiency)
    at_50 = np.flatnonzero(np.isclose(curve.efficiency, 0.5))[0]
    # the uds rejection at 50% c efficiency drawn is the one the metrics report
    assert uds.get_ydata()[at_50] == pytest.approx(result.rejection("c", "uds", 0.5).rejection, rel=0.02)


def test_discriminants(two_models, tmp_path):
    probs, labels, _ = two_models["mlp"]
    paths = P.plot_discriminants(probs, labels, str(tmp_path) + "/", f_c=0.3)
    assert paths[0].name == "discriminants.png"
    _check_written(paths, (580, 1600))


def test_confusion(two_models, tmp_path):
    result = two_models["mlp"][2]
    _check_written(P.plot_confusion(result, tmp_path / "cm"), (600, 950))
    # a raw count matrix is normalised by rows
    _check_written(P.plot_confusion(np.array([[8, 2, 0], [1, 6, 3], [0, 2, 8]]), tmp_path / "cm2"),
                   (600, 950))
    with pytest.raises(ValueError, match="3x3"):
        P.plot_confusion(np.eye(2), tmp_path / "bad")


def test_training_curves(tmp_path):
    epochs = np.arange(10)
    history = {
        "train_loss": list(1.0 / (epochs + 1) + 0.5),
        "val_loss": list(1.0 / (epochs + 1) + 0.55 + 0.01 * epochs),
        "train_acc": list(0.8 - 0.3 / (epochs + 1)),
        "val_acc": list(0.78 - 0.3 / (epochs + 1)),
        "lr": [1e-3] * 10,
    }
    _check_written(P.plot_training_curves(history, tmp_path / "train"), (550, 1600))
    only_loss = {"train/loss": history["train_loss"]}
    _check_written(P.plot_training_curves(only_loss, tmp_path / "loss"), (550, 950), min_png_kb=10)
    with pytest.raises(ValueError, match="no loss or accuracy"):
        P.plot_training_curves({"lr": [1.0]}, tmp_path / "none")


def test_formats_and_global_state_untouched(two_models, tmp_path):
    import matplotlib.pyplot as plt

    before = dict(matplotlib.rcParams)
    paths = P.plot_confusion(two_models["mlp"][2], tmp_path / "cm.pdf", formats=("svg",))
    assert [p.name for p in paths] == ["cm.svg"]
    assert plt.get_fignums() == []  # nothing left open in pyplot
    assert dict(matplotlib.rcParams) == before  # the HEP style was only a context
    with pytest.raises(ValueError, match="format"):
        P.plot_confusion(two_models["mlp"][2], tmp_path / "x", formats=())
