"""Issue 13: class schemes (event uds/cc/bb, jets light/c/b[/g]), generalised discriminants, jet combination."""

from __future__ import annotations

import numpy as np
import pytest

from flavortag import metrics as ftm
from flavortag.classes import EVENT_SCHEME, class_index, class_scheme, label_codes

JETS4 = class_scheme(["b", "c", "light", "g"])


def test_schemes_order_names_and_codes() -> None:
    assert class_scheme(None) is EVENT_SCHEME
    assert class_scheme(["bb", "uds", "cc"]) is EVENT_SCHEME
    assert JETS4.names == ("light", "c", "b", "g") and JETS4.codes == (0, 1, 2, 3)
    assert JETS4.flavours == ("light", "c", "b", "g")
    three = class_scheme(["light", "c", "b"])
    assert three.names == ("light", "c", "b") and not three.is_event_scheme
    assert class_scheme(["c", "b"]).indices_of(np.array([2, 1, 0, 3, -1])).tolist() == [1, 0, -1, -1, -1]
    assert class_index("g") == 3 and class_index("gluon") == 3
    codes, ok = label_codes(np.array([0, 3, 4, 5, -1]))
    assert ok.tolist() == [True, True, True, False, True]  # 4: an s jet (issue 25)
    with pytest.raises(ValueError, match="name the same class twice"):
        class_scheme(["light", "uds"])


def test_discriminants_keep_the_event_formulas_and_generalise() -> None:
    p3 = np.array([[0.2, 0.3, 0.5], [0.7, 0.2, 0.1]])
    np.testing.assert_array_equal(ftm.scheme_discriminant(p3, "b", 0.22), ftm.discriminant_b(p3, 0.22))
    np.testing.assert_array_equal(ftm.scheme_discriminant(p3, "c", 0.26), ftm.discriminant_c(p3, 0.26))
    p4 = np.array([[0.1, 0.2, 0.6, 0.1]])  # light, c, b, g
    assert ftm.scheme_discriminant(p4, "b", 0.3, JETS4)[0] == pytest.approx(np.log(0.6 / (0.3 * 0.2 + 0.7 * 0.2)))
    assert ftm.scheme_discriminant(p4, "c", 0.5, JETS4)[0] == pytest.approx(np.log(0.2 / (0.5 * 0.6 + 0.5 * 0.2)))
    assert ftm.scheme_taggers(JETS4) == {"b": (2, (1, 0, 3)), "c": (1, (2, 0, 3))}


def test_jet_metrics_name_every_background() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 200)
    logits = rng.normal(size=(800, 4)) + 1.0 * np.eye(4)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    result = ftm.evaluate_predictions(probs, labels, scheme=JETS4)
    flat = result.flat_metrics()
    for name in ("test/rej_c_at_b80", "test/rej_light_at_c50", "test/rej_g_at_c50", "test/auc_g"):
        assert np.isfinite(flat[name])
    # the rejection is the one of the counts: g jets above the c cut at 50% c efficiency
    d = ftm.scheme_discriminant(probs, "c", result.f_b, JETS4)
    cut = ftm.cut_at_efficiency(d[labels == 1], 0.5)
    assert flat["test/rej_g_at_c50"] == pytest.approx(200 / np.sum(d[labels == 3] > cut))
    assert result.working_points()["class_names"] == ["light", "c", "b", "g"]
    mask = ftm.apply_working_point(probs, result.working_points(), "c", 0.5)
    assert mask[labels == 1].mean() == pytest.approx(0.5, abs=0.01)


def test_combining_two_jets_into_events() -> None:
    from flavortag.jet_events import combine_jets

    scheme = class_scheme(["light", "c", "b"])
    jets = np.array([[0.1, 0.2, 0.7], [0.2, 0.2, 0.6], [0.5, 0.3, 0.2], [0.6, 0.3, 0.1], [0.3, 0.3, 0.4]])
    combined = combine_jets(jets, event=np.array([0, 0, 0, 0, 1]), decay_class=np.array([2, 2, 0, 0, 0]),
                            scheme=scheme)
    assert combined.scheme is EVENT_SCHEME  # light, c, b jets -> uds, cc, bb events
    # keys sorted by (decay_class, event): (0, 0) two light-ish jets, (0, 1) has one jet (dropped), (2, 0)
    assert combined.decay_class.tolist() == [0, 2] and combined.labels.tolist() == [0, 2]
    expected = np.array([0.1 * 0.2, 0.2 * 0.2, 0.7 * 0.6])
    np.testing.assert_allclose(combined.probs[1], expected / expected.sum())
    np.testing.assert_allclose(combined.probs[0], np.array([0.3, 0.09, 0.02]) / 0.41)


def test_data_level_chooses_the_classes_and_refuses_the_other_levels() -> None:
    from flavortag.dataset import data_scheme

    assert data_scheme({}).names == ("uds", "cc", "bb")
    assert data_scheme({"level": "jet"}).names == ("light", "c", "b")
    assert data_scheme({"level": "jet", "classes": ["g", "b", "c", "light"]}).names == ("light", "c", "b", "g")
    with pytest.raises(ValueError, match=r"data.classes=\['light', 'c', 'b'\] are not event classes"):
        data_scheme({"classes": ["light", "c", "b"]})
    with pytest.raises(ValueError, match="are not jet classes"):
        data_scheme({"level": "jet", "classes": ["uds", "cc", "bb"]})
