"""Tests of flavortag.export: ONNX (dynamic batch and track axes) and TorchScript match PyTorch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from flavortag.classes import CLASS_NAMES
from flavortag.export import example_inputs, export_onnx, export_torchscript, load_torchscript
from flavortag.models import build_model

F_TRACK, G_EVENT = 5, 3

CONFIGS = {
    "mlp": {"name": "mlp", "hidden_dims": [16, 8], "batchnorm": True},
    "deepsets": {"name": "deepsets", "phi_dims": [16, 16], "rho_dims": [16],
                 "pooling": ["sum", "mean", "max", "attention"], "attention_heads": 2, "use_event_features": True},
    "transformer": {"name": "transformer", "embed_dim": 16, "num_heads": 2, "depth": 2, "class_depth": 1,
                    "embed_hidden": [16], "pair_hidden": [8], "use_event_features": True},
    "transformer_nopair": {"name": "transformer", "embed_dim": 16, "num_heads": 4, "depth": 1, "class_depth": 2,
                           "use_pair_features": False},
}


def fitted_model(key: str):
    torch.manual_seed(1)
    model = build_model(CONFIGS[key], F_TRACK, G_EVENT)
    rng = np.random.default_rng(0)
    model.fit_normalisation(rng.normal(2.0, 3.0, (300, F_TRACK)), rng.normal(-5.0, 0.2, (50, G_EVENT)))
    model.feature_names = {"track": [f"t{i}" for i in range(F_TRACK)], "event": [f"e{i}" for i in range(G_EVENT)]}
    # Give batchnorm running statistics that are not the identity.
    model.train()
    with torch.no_grad():
        inputs = example_inputs(model, 32, 6, seed=5)
        model.forward_padded(**inputs)
    return model


def scoring_inputs(model) -> dict[str, torch.Tensor]:
    """Batch size and track count unlike the export example; one event without tracks;
    padded slots hold garbage (the graph must ignore it)."""
    inputs = example_inputs(model, batch_size=5, max_tracks=23, seed=7)
    inputs["valid"][3] = False
    for name in ("features", "vectors"):
        garbage = torch.full_like(inputs[name], 1e4)
        inputs[name] = torch.where(inputs["valid"][..., None], inputs[name], garbage)
    return inputs


@pytest.mark.parametrize("key", list(CONFIGS))
def test_onnx_matches_pytorch(key, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    model = fitted_model(key)
    path = export_onnx(model, tmp_path / "model.onnx", max_tracks_example=16, batch_size_example=2)
    assert model.training  # export works on a copy
    inputs = scoring_inputs(model)
    model.eval()
    with torch.no_grad():
        expected = model.forward_padded(**inputs)

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names == list(model.export_inputs)
    logits, probabilities = session.run(["logits", "probabilities"], {n: inputs[n].numpy() for n in names})
    assert logits.shape == (5, 3)
    np.testing.assert_allclose(logits, expected.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(probabilities, torch.softmax(expected, 1).numpy(), atol=1e-5)
    assert (expected[0] - expected[1]).abs().max() > 1e-3  # the comparison is not trivial

    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["flavortag.config"]) == model.config
    assert json.loads(meta["flavortag.class_names"]) == list(CLASS_NAMES)
    assert json.loads(meta["flavortag.feature_names"]) == model.feature_names
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("key", list(CONFIGS))
def test_torchscript_reloads_and_matches(key, tmp_path):
    model = fitted_model(key).eval()
    path = export_torchscript(model, tmp_path / "model.pt")
    module, info = load_torchscript(path)
    assert info["config"] == model.config and info["class_names"] == list(CLASS_NAMES)
    assert info["feature_names"] == model.feature_names
    inputs = scoring_inputs(model)
    with torch.no_grad():
        expected = model.forward_padded(**inputs)
        got = module(inputs["features"], inputs["valid"], inputs["event_features"], inputs["vectors"])
        plain = torch.jit.load(str(path))(**inputs)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(plain, expected, atol=1e-5, rtol=1e-5)
