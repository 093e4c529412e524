"""Issue 22: a model is scored with the track order and cut it was trained with, by every scorer.

A run trained with ``data.sort_by=pz`` and ``data.max_tracks=6`` keeps both in
its checkpoint; ``Tagger`` (checkpoint and exported directory), ``predict`` and
``evaluate`` then build the same inputs, which differ from those of the
default order.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import torch

import flavortag
from flavortag.io import read_events
from tests.compose import compose_app

_cfg = compose_app


def test_sort_by_travels_with_the_model_to_every_scorer(sample_dir: Path, tmp_path: Path) -> None:
    from flavortag.apps.predict import predict
    from flavortag.apps.train import train
    from flavortag.detector import DetectorModel
    from flavortag.scoring.inference import input_shape, load_model, model_inputs, predict_proba

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    paths = ",".join(str(sample_dir / f"{f}.parquet") for f in ("uds", "cc", "bb"))
    run_dir = tmp_path / "run"
    train(_cfg("train", [
        "model=deepsets", f"data.paths=[{paths}]", f"output_dir={run_dir}", f"tracking.tracking_uri={store}",
        "trainer.max_epochs=1", "trainer.max_steps_per_epoch=3", "trainer.batch_size=32",
        "trainer.progress=false", "data.max_tracks=6", "data.sort_by=pz", "evaluate_after_training=false"]))
    best = run_dir / "checkpoints" / "best.pt"
    stored = torch.load(best, weights_only=True)["model"]
    assert (stored["sort_by"], stored["max_tracks"]) == ("pz", 6)
    model = load_model(str(best))
    assert input_shape(model) == (6, "pz")

    events = read_events(sample_dir / "bb.parquet")[:200]
    detector = DetectorModel.from_config(model.detector)
    as_trained = predict_proba(model, model_inputs(events, model.feature_names, detector, None, 6, "pz"))
    by_energy = predict_proba(model, model_inputs(events, model.feature_names, detector, None, 6, "E"))
    assert np.abs(as_trained - by_energy).max() > 1e-3  # the order matters: the test can fail

    tagger = flavortag.Tagger.load(best, device="cpu")
    assert tagger.sort_by == "pz"
    np.testing.assert_allclose(tagger.predict_proba(events), as_trained, rtol=0, atol=1e-6)

    ak.to_parquet(events, tmp_path / "bb_200.parquet")
    written = predict(_cfg("predict", [f"checkpoint={best}", f"inputs=[{tmp_path / 'bb_200.parquet'}]",
                                       f"out_dir={tmp_path / 'pred'}", "formats=[parquet]"]))
    scored = ak.from_parquet(written[0])
    np.testing.assert_allclose(np.stack([scored[f] for f in ("prob_uds", "prob_cc", "prob_bb")], axis=1),
                               as_trained, rtol=0, atol=1e-5)

    # the raw-input ONNX graph orders and cuts the tracks the same way (by pz, 6 kept)
    import onnxruntime as ort

    from flavortag.batching import raw_inputs
    from flavortag.export_raw import export_raw_onnx

    path = export_raw_onnx(model, tmp_path / "raw.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    feed = {k: v for k, v in raw_inputs(events).items() if k in names}
    probabilities = session.run(["probabilities"], feed)[0]
    np.testing.assert_allclose(probabilities, as_trained, rtol=0, atol=1e-5)
