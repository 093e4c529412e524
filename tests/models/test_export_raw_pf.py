"""Issues 23 + 25: a particle-flow jet tagger (``features=jet_pid``: neutral tokens, PID) as a raw-input ONNX graph.

Tiny taggers are trained on a few Pythia ZH jets with particle flow (neutrals and
dN/dx + TOF made by the generator), exported with raw inputs (the neutrals as
slots of ``tracks`` with their type in ``particle``), and scored by onnxruntime in
a subprocess that imports neither torch nor flavortag, on every particle of each
jet in shuffled order with garbage in the padded slots; they agree with
``Tagger.score`` to 1e-5. The graph's features are the training features, and
the pair mass of massless tokens is no float32 noise (which torch and
onnxruntime round differently).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import onnx
import pytest
import torch
import yaml

from flavortag.batching import build_event_tensors, raw_inputs
from flavortag.detector import DetectorModel
from flavortag.export_raw import RawFeatures, export_raw_bdt_onnx, export_raw_onnx
from flavortag.features.particle_flow import NEUTRAL_TOKEN_FEATURES
from flavortag.models.pair import PAIR_FEATURES, pair_features
from flavortag.scoring.tagger import Tagger
from tests.models.test_export_raw import CONFIGS, SCORER, _train_bdt, _train_torch

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]
PRESET = yaml.safe_load((ROOT / "configs" / "features" / "jet_pid.yaml").read_text())
TRACK_NAMES, EVENT_NAMES = tuple(PRESET["track"]), tuple(PRESET["event"])
#: PID per track but no particle-type flags: a tagger that never sees the neutrals
PID_ONLY = tuple(n for n in TRACK_NAMES if n not in NEUTRAL_TOKEN_FEATURES)
CLASSES = ("light", "c", "b", "g")


@pytest.fixture(scope="module")
def jets() -> ak.Array:
    from flavortag.generate import generate_events

    return ak.concatenate([generate_events(f, 5, sqrt_s_gev=250.0, seed=12, process="zh", n_jets=2,
                                           particle_flow=True, chunk_size=5) for f in ("uds", "cc", "bb", "gg")])


@pytest.fixture(scope="module")
def taggers(jets) -> dict[str, object]:
    return {"transformer": _train_torch("transformer", jets, CLASSES, track_names=TRACK_NAMES, event_names=EVENT_NAMES),
            "deepsets_pid_only": _train_torch("deepsets", jets, CLASSES, track_names=PID_ONLY, event_names=(),
                                              config={**CONFIGS["deepsets"], "use_event_features": False}),
            "bdt": _train_bdt(jets, CLASSES, event_names=EVENT_NAMES)}


def _shuffled(inputs: dict[str, np.ndarray], seed: int = 3) -> dict[str, np.ndarray]:
    """Every slot of each jet moved to a random place among three more; garbage (NaN PID too) elsewhere."""
    rng = np.random.default_rng(seed)
    n_jets, n = inputs["valid"].shape[0], inputs["valid"].shape[1] + 3
    out = {"axis": inputs["axis"], "valid": np.zeros((n_jets, n), bool)}
    for key, garbage in (("tracks", 1e4), ("track_sigma", -7.0), ("particle", np.nan)):
        out[key] = np.full((n_jets, n, inputs[key].shape[-1]), garbage, np.float32)
    for i, count in enumerate(inputs["valid"].sum(axis=1)):
        slots = rng.permutation(n)[:count]
        out["valid"][i, slots] = True
        for key in ("tracks", "track_sigma", "particle"):
            out[key][i, slots] = inputs[key][i, :count]
    return out


def test_particle_flow_tagger_in_plain_onnxruntime_agrees_with_tagger_score(jets, taggers, tmp_path):
    paths = []
    for key, model in taggers.items():
        export = export_raw_bdt_onnx if key == "bdt" else export_raw_onnx
        paths.append(str(export(model, tmp_path / f"{key}.onnx")))
    contract = json.loads({p.key: p.value for p in onnx.load(paths[0]).metadata_props}["flavortag.input_contract"])
    assert list(contract) == ["axis", "tracks", "valid", "particle", "track_sigma", "resolution_scale"]
    assert contract["particle"]["shape"] == ["batch", "tracks", 5] and "NaN" in contract["particle"]["meaning"]
    inputs = raw_inputs(jets, particle_flow=True)
    n_neutrals = np.asarray(ak.num(jets["neutrals"]))
    np.testing.assert_array_equal(inputs["valid"].sum(1), np.asarray(ak.num(jets["tracks"])) + n_neutrals)
    assert n_neutrals.sum() > 50 and np.isnan(inputs["particle"][..., 2][inputs["valid"]]).mean() > 0.2
    blind = {**inputs, "particle": inputs["particle"].copy()}  # the same jets without PID measurements
    blind["particle"][..., 2:] = np.nan
    charged = {**inputs, "valid": inputs["valid"] & (inputs["particle"][..., 0] == 0)}  # the neutrals left out
    blocks = [_shuffled(inputs), _shuffled(blind), _shuffled(charged)]  # one batch of three blocks of the jets
    np.savez(tmp_path / "inputs.npz", **{k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]})
    subprocess.run([sys.executable, "-c", SCORER, str(tmp_path / "inputs.npz"), str(tmp_path / "out.npz"), *paths],
                   check=True, cwd=tmp_path, timeout=300)
    out = np.load(tmp_path / "out.npz")
    n = len(jets)
    assert out["arr_0"].shape[0] == 3 * n
    for k, (key, model) in enumerate(taggers.items()):
        scores = Tagger.from_model(model, device="cpu").score(jets)
        expected = np.stack([np.asarray(scores[f"prob_{c}"]) for c in CLASSES], axis=1)
        got, blind_got, charged_got = np.split(out[f"arr_{k}"], 3)
        assert got.shape == expected.shape == (n, len(CLASSES))
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0, err_msg=key)
        assert expected[:, 2].std() > 1e-3, key  # a trained tagger: the scores spread
        if key != "bdt":  # (8 trees on 40 jets split on no kaon variable; the graph's are checked below)
            assert np.abs(blind_got - expected).max() > 1e-3, key  # the PID input is read
        if key == "transformer":  # the neutrals are its tokens
            assert np.abs(charged_got - expected).max() > 1e-3
        else:  # the others never see them (event features: charged only, as in training)
            np.testing.assert_allclose(charged_got, got, atol=1e-6, rtol=0, err_msg=key)
    # the docs' numpy + onnxruntime example (scripts/onnx_raw_example.py) feeds a particle-flow tagger too
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "onnx_raw_example.py"), paths[0]],
                         check=True, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    lines = run.stdout.strip().splitlines()
    assert "'particle'" in lines[1] and lines[-1].startswith("probabilities")
    assert sum(float(v) for v in lines[-1].split()[1:]) == pytest.approx(1.0, abs=1e-5)


def test_graph_features_are_the_training_features_with_neutral_tokens(jets):
    """Tokens (tracks, then neutrals), their features and the charged-only event features, as training makes them."""
    tensors = build_event_tensors(jets, TRACK_NAMES, EVENT_NAMES, max_tracks=200, sort_by=None)
    inputs = {k: torch.from_numpy(v) for k, v in raw_inputs(jets, particle_flow=True).items()}
    raw = RawFeatures(list(TRACK_NAMES), list(EVENT_NAMES), DetectorModel())
    assert raw.input_names == ("axis", "tracks", "valid", "particle", "track_sigma", "resolution_scale")
    track, event, vectors, tokens = raw(inputs["axis"], inputs["tracks"], inputs["valid"],
                                        particle=inputs["particle"])
    n = track.shape[1]
    np.testing.assert_array_equal(tensors.valid[:, :n], tokens.numpy())
    np.testing.assert_allclose(track.numpy()[tokens.numpy()], tensors.features[tensors.valid], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(vectors.numpy()[tokens.numpy()], tensors.vectors[tensors.valid])
    np.testing.assert_allclose(event.numpy(), tensors.event_features, rtol=1e-6, atol=1e-6)
    assert event[:, EVENT_NAMES.index("n_kaons")].sum() > 0  # the kaon variables are not all zero
    # a tagger without the particle-type flags takes the tracks only
    pid_only = RawFeatures(list(PID_ONLY), [], DetectorModel())
    _, _, _, charged = pid_only(inputs["axis"], inputs["tracks"], inputs["valid"], particle=inputs["particle"])
    np.testing.assert_array_equal(charged.numpy().sum(1), np.asarray(ak.num(jets["tracks"])))


def test_pair_mass_of_massless_neutral_tokens():
    """Photons (|p| = E, as float32 stores them): their own E^2 - p^2 is rounding noise, counted as 0,
    so m^2 of a collinear photon pair is 2 E_1 E_2 (1 - cos angle) (not swung by the noise)."""
    rng = np.random.default_rng(0)
    direction = rng.normal(size=(64, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    tilted = direction + 1e-3 * rng.normal(size=(64, 3))
    tilted /= np.linalg.norm(tilted, axis=1, keepdims=True)
    energy = rng.uniform(5.0, 40.0, size=(64, 2))
    rows = [np.concatenate([energy[:, k:k + 1], energy[:, k:k + 1] * d, np.zeros((64, 3))], axis=1)
            for k, d in enumerate((direction, tilted))]
    vectors = torch.from_numpy(np.stack(rows, axis=1).astype(np.float32))
    v = vectors.double()
    exact = 2 * v[:, 0, 0] * v[:, 1, 0] * (1 - (v[:, 0, 1:4] * v[:, 1, 1:4]).sum(-1) / v[:, 0, 1:4].norm(dim=-1)
                                            / v[:, 1, 1:4].norm(dim=-1))
    got = pair_features(vectors, torch.ones(64, 2, dtype=torch.bool))[:, 0, 1, PAIR_FEATURES.index("ln_m2")]
    np.testing.assert_allclose(got.exp().numpy(), exact.numpy(), rtol=2e-3)
