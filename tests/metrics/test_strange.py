"""Issue 25: the strange scheme and its figures (s efficiency at 10% ud mistag, g rejection there)."""

from __future__ import annotations

import numpy as np
import pytest

from flavortag.classes import class_scheme
from flavortag.metrics import evaluate_predictions
from flavortag.metrics.strange import strange_discriminant, strange_metrics

STRANGE = class_scheme(["s", "g", "b", "c", "ud"])


def test_strange_scheme_names_and_s_as_light_elsewhere() -> None:
    assert STRANGE.names == ("ud", "c", "b", "g", "s") and STRANGE.codes == (0, 1, 2, 3, 4)
    four = class_scheme(["light", "c", "b", "g"])
    assert four.indices_of(np.array([4, 0, 3, -1])).tolist() == [0, 0, 3, -1]  # s jets count as light
    assert STRANGE.indices_of(np.array([4, 0])).tolist() == [4, 0]


def test_s_efficiency_and_g_rejection_at_ten_percent_ud() -> None:
    # 100 ud jets with p_s = 0.01 .. 1.00 (10 above the 90th), 50 s jets of which 20 above the ud cut,
    # 40 g jets of which 4 above it: s efficiency 0.4, g rejection 10
    p_s = np.concatenate([np.arange(1, 101) / 101, np.r_[np.full(20, 0.999), np.full(30, 0.05)],
                          np.r_[np.full(4, 0.999), np.full(36, 0.05)]])
    labels = np.concatenate([np.zeros(100, int), np.full(50, 4), np.full(40, 3)])
    probs = np.column_stack([(1 - p_s) / 4] * 4 + [p_s])
    out = strange_metrics(probs, labels, STRANGE)
    assert out["s_eff_at_ud10"] == pytest.approx(0.4)
    assert out["s_eff_at_ud10_err"] == pytest.approx(np.sqrt(0.4 * 0.6 / 50))
    assert out["s_rej_g_at_ud10"] == pytest.approx(10.0)
    assert out["s_rej_g_at_ud10_err"] == pytest.approx(np.sqrt(0.1 * 0.9 / 40) / 0.01)
    np.testing.assert_allclose(strange_discriminant(probs, STRANGE), np.log(p_s / (1 - p_s)))
    flat = evaluate_predictions(probs, labels, scheme=STRANGE).flat_metrics()
    assert flat["test/s_eff_at_ud10"] == pytest.approx(0.4) and "test/rej_s_at_c50" in flat
    assert "test/s_eff_at_ud10" not in evaluate_predictions(probs[:, :4] / probs[:, :4].sum(1, keepdims=True),
                                                            np.minimum(labels, 3),
                                                            scheme=class_scheme(["ud", "c", "b", "g"])).flat_metrics()
