"""Tests of flavortag.metrics against hand-computed cases and direct counts."""

import csv
import json
import math

import numpy as np
import pytest
from sklearn.metrics import log_loss as sk_log_loss

from flavortag import metrics as M

EFFS = (0.5, 0.6, 0.7, 0.8, 0.9)


def _random_probs(n, rng):
    """Probabilities independent of the label (a classifier that knows nothing)."""
    return rng.dirichlet(np.ones(3), size=n)


def _informative(n, seed, strength=1.5):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), labels] += strength
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True), labels


# ----------------------------------------------------------------------------- discriminants


def test_discriminants_match_hand_computation():
    probs = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    # D_b = ln(p_b / (f_c p_c + (1 - f_c) p_uds)), f_c = 0.22: 0.22*0.3 + 0.78*0.2 = 0.222
    assert M.discriminant_b(probs, f_c=0.22)[0] == pytest.approx(math.log(0.5 / 0.222), abs=1e-12)
    # 0.22*0.3 + 0.78*0.6 = 0.534
    assert M.discriminant_b(probs, f_c=0.22)[1] == pytest.approx(math.log(0.1 / 0.534), abs=1e-12)
    # D_c = ln(p_c / (f_b p_b + (1 - f_b) p_uds)), f_b = 0.26: 0.26*0.5 + 0.74*0.2 = 0.278
    assert M.discriminant_c(probs, f_b=0.26)[0] == pytest.approx(math.log(0.3 / 0.278), abs=1e-12)
    # f = 0.5: the plain mean of the two backgrounds
    assert M.discriminant_c(probs, f_b=0.5)[1] == pytest.approx(math.log(0.3 / 0.35), abs=1e-12)
    # defaults are the documented Z-pole fractions
    assert (M.DEFAULT_F_C, M.DEFAULT_F_B) == (0.22, 0.26)
    np.testing.assert_allclose(M.discriminant(probs, "b"), M.discriminant_b(probs, 0.22))
    np.testing.assert_allclose(M.discriminant(probs, "c", 0.4), M.discriminant_c(probs, 0.4))


def test_discriminants_are_finite_for_saturated_probabilities():
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]], dtype=np.float32)
    d_b = M.discriminant_b(probs, f_c=0.22)
    assert np.all(np.isfinite(d_b))
    assert d_b[0] == pytest.approx(math.log(1e-12) - math.log(0.78 + 0.22e-12))
    assert d_b[1] == pytest.approx(-math.log(1e-12))  # p_b = 1, both backgrounds at the floor
    assert d_b[2] == pytest.approx(math.log(1e-12) - math.log(0.22 + 0.78e-12))
    assert np.all(np.isfinite(M.discriminant_c(probs)))


@pytest.mark.parametrize(
    "probs",
    [np.array([[2.0, -1.0, 0.5]]), np.ones((2, 3)), np.zeros((2, 2)), np.array([[np.nan, 0.5, 0.5]])],
)
def test_bad_probabilities_are_rejected(probs):
    with pytest.raises(ValueError):
        M.discriminant_b(probs)


def test_bad_inputs_are_rejected():
    probs = np.full((3, 3), 1 / 3)
    with pytest.raises(ValueError, match="labels"):
        M.accuracy(probs, np.array([0, 1, 3]))
    with pytest.raises(ValueError, match="labels"):
        M.accuracy(probs, np.array([0, 1]))
    with pytest.raises(ValueError, match="efficienc"):
        M.cut_at_efficiency([1.0, 2.0], 0.0)
    with pytest.raises(ValueError, match="efficienc"):
        M.cut_at_efficiency([1.0, 2.0], 1.2)
    with pytest.raises(ValueError, match="fraction"):
        M.discriminant_b(probs, f_c=1.5)
    with pytest.raises(ValueError, match="tagger"):
        M.discriminant(probs, "s")


# ----------------------------------------------------------------------------- cuts and rejection


def test_cut_and_rejection_ten_events_by_hand():
    signal = np.array([0.9, 0.1, 0.5, 0.3, 1.0, 0.7, 0.2, 0.8, 0.4, 0.6])
    background = np.array([0.05, 0.95, 0.2, 0.5, 0.35])
    # 70% of 10 = 7 signal events must pass D > cut: the 3 lowest (0.1, 0.2, 0.3) fail -> cut 0.3
    assert M.cut_at_efficiency(signal, 0.7) == 0.3
    # 75% -> ceil(7.5) = 8 pass -> cut 0.2; 100% -> just below the lowest value
    assert M.cut_at_efficiency(signal, 0.75) == 0.2
    assert M.cut_at_efficiency(signal, 1.0) == np.nextafter(0.1, -np.inf)
    np.testing.assert_array_equal(M.cut_at_efficiency(signal, [0.5, 0.7]), [0.5, 0.3])

    (wp,) = M.rejection_at_efficiency(signal, background, [0.7], background="c", tagger="b")
    assert wp.cut == 0.3 and wp.signal_efficiency == 0.7 and wp.n_signal == 10
    r = wp.backgrounds["c"]
    # background above 0.3: 0.95, 0.5, 0.35 -> 3 of 5 -> mistag 0.6, rejection 5/3
    assert (r.n_pass, r.n_total) == (3, 5)
    assert r.mistag == pytest.approx(0.6)
    assert r.mistag_err == pytest.approx(math.sqrt(0.6 * 0.4 / 5))
    assert r.rejection == pytest.approx(5 / 3)
    # sigma_R = R^2 sigma_eps = (25/9) * sqrt(0.048) = 0.608581...
    assert r.rejection_err == pytest.approx(0.6085806, rel=1e-6)
    assert r.rejection_lower_limit is None


def test_cut_with_ties_keeps_at_least_the_efficiency():
    # 50% of 5 -> 3 must pass; the 3rd-highest value 2 is tied with two more, so all 2s pass
    signal = np.array([1.0, 2.0, 2.0, 2.0, 3.0])
    cut = M.cut_at_efficiency(signal, 0.5)
    assert cut == 1.0
    assert np.mean(signal > cut) == 0.8
    # all tied: the cut goes just below, every signal event passes
    cut = M.cut_at_efficiency(np.full(4, 2.5), 0.3)
    assert cut < 2.5 and cut == np.nextafter(2.5, -np.inf)
    assert math.isnan(M.cut_at_efficiency(np.array([]), 0.5))


def test_efficiency_float_noise_does_not_add_an_event():
    # 0.7 * 10 = 7.000000000000001 in floating point: still exactly 7 events pass
    signal = np.arange(10.0)
    assert np.sum(signal > M.cut_at_efficiency(signal, 0.7)) == 7
    assert np.sum(signal > M.cut_at_efficiency(signal, 0.6)) == 6


def test_rejection_matches_direct_count_on_random_sample():
    rng = np.random.default_rng(3)
    signal = rng.normal(1.0, 1.0, 5003)
    background = rng.normal(0.0, 1.0, 7919)
    effs = [0.1, 0.33, 0.5, 0.7, 0.9, 0.99]
    points = M.rejection_at_efficiency(signal, background, effs, background="x")
    for e, wp in zip(effs, points):
        passed = signal > wp.cut
        assert e <= passed.mean() < e + 1 / signal.size
        assert wp.signal_efficiency == passed.mean()
        n_pass = int(np.sum(background > wp.cut))
        assert wp.backgrounds["x"].n_pass == n_pass
        assert wp.backgrounds["x"].rejection == pytest.approx(background.size / n_pass)
    # the curve gives the same numbers on its grid
    curve = M.rejection_curve(signal, {"x": background}, np.array(effs))
    np.testing.assert_allclose(curve.rejection["x"], [p.backgrounds["x"].rejection for p in points])
    np.testing.assert_allclose(curve.signal_efficiency, [p.signal_efficiency for p in points])
    # rejection falls as the efficiency rises
    assert np.all(np.diff(curve.rejection["x"]) <= 0)


def test_binomial_rejection_formula():
    # eps = 0.25: R = 4, sigma_eps = sqrt(0.25 * 0.75 / 100) = 0.0433013, sigma_R = 16 sigma_eps
    rejection, err = M.binomial_rejection(25, 100)
    assert rejection == 4.0
    assert err == pytest.approx(16 * math.sqrt(0.25 * 0.75 / 100))
    assert err == pytest.approx(0.6928203, rel=1e-6)
    # equivalently R * sigma_eps / eps
    assert err == pytest.approx(4 * math.sqrt(0.25 * 0.75 / 100) / 0.25)
    assert M.binomial_rejection(100, 100) == (1.0, 0.0)
    rejection, err = M.binomial_rejection(0, 100)
    assert rejection == math.inf and math.isnan(err)
    assert all(math.isnan(x) for x in M.binomial_rejection(0, 0))


def test_zero_mistag_gives_inf_and_lower_limit():
    r = M.BackgroundRejection.from_counts("uds", 0, 3000)
    assert r.rejection == math.inf and math.isnan(r.rejection_err) and r.mistag == 0.0
    # 95% CL Clopper-Pearson: 1 - (1 - eps_up)^N = 0.95 -> eps_up = 1 - 0.05^(1/N)
    eps_up = 1 - 0.05 ** (1 / 3000)
    assert r.rejection_lower_limit == pytest.approx(1 / eps_up)
    assert r.rejection_lower_limit == pytest.approx(3000 / 2.9957, rel=1e-3)  # ~ N / 3


# ----------------------------------------------------------------------------- basic metrics


def test_basic_metrics_small_case():
    probs = np.array([
        [0.7, 0.2, 0.1],  # uds, right
        [0.2, 0.5, 0.3],  # uds, wrong (cc)
        [0.1, 0.6, 0.3],  # cc, right
        [0.1, 0.3, 0.6],  # bb, right
        [0.3, 0.4, 0.3],  # bb, wrong (cc)
    ])
    labels = np.array([0, 0, 1, 2, 2])
    assert M.accuracy(probs, labels) == pytest.approx(0.6)
    np.testing.assert_array_equal(
        M.confusion_matrix(probs, labels), [[1, 1, 0], [0, 1, 0], [0, 1, 1]]
    )
    np.testing.assert_allclose(
        M.confusion_matrix(probs, labels, normalize=True), [[0.5, 0.5, 0], [0, 1, 0], [0, 0.5, 0.5]]
    )
    auc = M.auc_one_vs_rest(probs, labels)
    # bb vs rest: positives p_bb {0.6, 0.3}, negatives {0.1, 0.3, 0.3}:
    # 0.6 beats all 3; 0.3 beats 0.1 and ties twice (1/2 each) -> (3 + 1 + 1) / 6
    assert auc["bb"] == pytest.approx(5 / 6)
    # cc vs rest: positive 0.6 beats {0.2, 0.5, 0.3, 0.4} -> 1
    assert auc["cc"] == pytest.approx(1.0)
    expected = -np.mean(np.log([0.7, 0.2, 0.6, 0.6, 0.3]))
    assert M.log_loss(probs, labels) == pytest.approx(expected)
    assert M.log_loss(probs, labels) == pytest.approx(sk_log_loss(labels, probs))


def test_perfect_classifier():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 3000)
    probs = np.eye(3)[labels]
    result = M.evaluate_predictions(probs, labels)
    assert result.accuracy == 1.0
    assert result.log_loss == 0.0
    assert result.auc == {"uds": 1.0, "cc": 1.0, "bb": 1.0}
    np.testing.assert_array_equal(result.confusion_normalised, np.eye(3))
    n_c = int(np.sum(labels == 1))
    r = result.rejection("b", "c", 0.7)
    assert r.rejection == math.inf and r.n_pass == 0 and r.n_total == n_c
    assert r.rejection_lower_limit == pytest.approx(1 / (1 - 0.05 ** (1 / n_c)))
    # all signal scores coincide, so every signal event passes (documented tie rule)
    assert result.taggers["b"].working_point(0.7).signal_efficiency == 1.0
    flat = result.flat_metrics()
    assert flat["test/rej_c_at_b70"] == math.inf and math.isnan(flat["test/rej_c_at_b70_err"])
    limited = result.flat_metrics(infinite_rejection="limit")
    assert limited["test/rej_c_at_b70"] == pytest.approx(r.rejection_lower_limit)
    assert all(math.isfinite(v) for k, v in limited.items() if not k.endswith("_err"))
    # the working-point artifact stays strict JSON (inf written as null)
    text = json.dumps(result.working_points(), allow_nan=False)
    back = json.loads(text)["taggers"]["b"]["working_points"][2]["backgrounds"]["c"]
    assert back["rejection"] is None and back["mistag"] == 0.0
    assert back["rejection_lower_limit_95cl"] == pytest.approx(r.rejection_lower_limit)


def test_random_classifier():
    rng = np.random.default_rng(42)
    n = 20_000
    labels = rng.integers(0, 3, n)
    probs = _random_probs(n, rng)
    result = M.evaluate_predictions(probs, labels, curve_efficiencies=None)
    for name in ("uds", "cc", "bb"):
        assert result.auc[name] == pytest.approx(0.5, abs=0.02)  # sigma(AUC) ~ 0.005 here
    assert result.accuracy == pytest.approx(1 / 3, abs=0.02)
    # a random tagger keeps the same fraction of background as of signal: R(50%) = 2
    for tagger, bkg in [("b", "c"), ("b", "uds"), ("c", "b"), ("c", "uds")]:
        r = result.rejection(tagger, bkg, 0.5)
        assert r.rejection == pytest.approx(2.0, abs=0.15)
        # error: R^2 sqrt(0.25 / N) with N ~ 6700 -> ~ 0.024
        assert r.rejection_err == pytest.approx(4 * math.sqrt(0.25 / r.n_total), rel=0.1)
        assert result.rejection(tagger, bkg, 0.9).rejection == pytest.approx(1 / 0.9, abs=0.05)
    assert result.taggers["b"].curve is None


def test_missing_class_gives_nan_not_an_error():
    probs, labels = _informative(600, 5)
    keep = labels != 1
    result = M.evaluate_predictions(probs[keep], labels[keep])
    assert math.isnan(result.auc["cc"])
    assert math.isnan(result.rejection("c", "b", 0.7).rejection)  # no c signal
    assert math.isnan(result.rejection("b", "c", 0.7).rejection)  # no c background
    assert result.class_counts["cc"] == 0


# ----------------------------------------------------------------------------- flat metrics, working points


def test_flat_metric_names_are_stable():
    probs, labels = _informative(3000, 1)
    flat = M.evaluate_predictions(probs, labels).flat_metrics(prefix="test/")
    expected = {"test/acc", "test/loss", "test/auc_uds", "test/auc_cc", "test/auc_bb"}
    for e in (50, 60, 70, 80, 90):
        for name in (f"rej_c_at_b{e}", f"rej_uds_at_b{e}", f"rej_b_at_c{e}", f"rej_uds_at_c{e}"):
            expected |= {f"test/{name}", f"test/{name}_err"}
    assert set(flat) == expected
    assert len(flat) == 45
    assert all(isinstance(v, float) for v in flat.values())
    result = M.evaluate_predictions(probs, labels)
    assert flat["test/rej_uds_at_c80"] == result.rejection("c", "uds", 0.8).rejection
    assert "val/acc" in result.flat_metrics(prefix="val/")
    odd = M.evaluate_predictions(probs, labels, efficiencies=(0.775,)).flat_metrics(prefix="")
    assert "rej_c_at_b77.5" in odd


def test_working_points_reproduce_efficiency_when_applied():
    probs, labels = _informative(6000, 7)
    wps = M.working_points(probs, labels, efficiencies=EFFS, f_c=0.3, f_b=0.4)
    wps = json.loads(json.dumps(wps, allow_nan=False))  # what an analysis reads back
    assert wps["taggers"]["b"]["f_c"] == 0.3 and wps["taggers"]["c"]["f_b"] == 0.4
    for tagger, signal, backgrounds in [("b", 2, {"c": 1, "uds": 0}), ("c", 1, {"b": 2, "uds": 0})]:
        n_signal = int(np.sum(labels == signal))
        for e, entry in zip(EFFS, wps["taggers"][tagger]["working_points"]):
            assert entry["efficiency"] == e
            tagged = M.apply_working_point(probs, wps, tagger, e)
            efficiency = tagged[labels == signal].mean()
            assert e <= efficiency < e + 1 / n_signal
            assert entry["signal_efficiency"] == pytest.approx(efficiency)
            for bkg, k in backgrounds.items():
                assert entry["backgrounds"][bkg]["mistag"] == pytest.approx(tagged[labels == k].mean())
    # same numbers as the full evaluation
    result = M.evaluate_predictions(probs, labels, f_c=0.3, f_b=0.4)
    assert result.working_points() == M.working_points(probs, labels, f_c=0.3, f_b=0.4)
    with pytest.raises(KeyError):
        M.apply_working_point(probs, wps, "b", 0.65)


# ----------------------------------------------------------------------------- comparison table


def test_comparison_table_and_csv(tmp_path):
    r1 = M.evaluate_predictions(*_informative(3000, 1, strength=1.0))
    r2 = M.evaluate_predictions(*_informative(3000, 2, strength=2.0))
    from_mlflow = r2.flat_metrics(prefix="test/")  # a flat dict as read back from a run
    table = M.format_comparison_table({"mlp": r1, "transformer": from_mlflow})
    lines = table.splitlines()
    assert lines[0].split() == ["model", *M.DEFAULT_TABLE_METRICS]
    assert lines[2].startswith("mlp ") and lines[3].startswith("transformer ")
    assert f"{r1.accuracy:.4f}" in lines[2]
    rej = r2.rejection("b", "c", 0.7)
    assert 10 <= rej.rejection < 100  # shown with one decimal, error with the same
    assert f"{rej.rejection:.1f} ± {rej.rejection_err:.1f}" in lines[3]
    assert "±" not in M.format_comparison_table({"mlp": r1}, with_errors=False)

    path = M.write_comparison_csv({"mlp": r1, "transformer": from_mlflow}, tmp_path / "sub" / "cmp.csv")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert [row["model"] for row in rows] == ["mlp", "transformer"]
    assert float(rows[1]["rej_c_at_b70"]) == rej.rejection
    assert float(rows[0]["acc"]) == r1.accuracy
    assert len(rows[0]) == 1 + 45


def test_comparison_table_shows_the_lower_limit_where_nothing_passed():
    labels = np.repeat([0, 1, 2], 400)
    probs = np.full((len(labels), 3), 0.01)
    probs[np.arange(len(labels)), labels] = 0.98  # perfect separation: no c passes any b cut
    result = M.evaluate_predictions(probs, labels)
    r = result.rejection("b", "c", 0.7)
    assert r.rejection == math.inf and r.rejection_lower_limit is not None
    limit = f"> {r.rejection_lower_limit:.0f}"
    for source in (result, result.flat_metrics("test/", infinite_rejection="limit")):
        row = M.format_comparison_table({"transformer": source}).splitlines()[2]
        assert row.startswith("transformer ") and limit in row and "inf" not in row
