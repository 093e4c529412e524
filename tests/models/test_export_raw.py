"""Issue 23: the raw-input ONNX tagger agrees with ``Tagger.score``, run where neither torch nor flavortag is.

Small taggers (MLP, Deep Sets, transformer and the BDT; event and jet
classes) are trained for one epoch on real events (the embedded Z-pole sample,
and a few Pythia ZH jets made here), exported with raw inputs, and scored by
onnxruntime in a subprocess that imports only numpy and onnxruntime, on the
padded raw tracks in shuffled order with garbage in the padded slots. The
track features of the graph are the training code itself (one implementation);
measured per-track uncertainties and the calibration scale are checked too.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flavortag.batching import build_event_tensors, raw_inputs
from flavortag.calibration import ResolutionCalibration, calibrate_resolution
from flavortag.classes import class_scheme
from flavortag.detector import DetectorModel
from flavortag.export_raw import RawFeatures, export_raw_bdt_onnx, export_raw_onnx, used_raw_inputs
from flavortag.features import EVENT_FEATURES, TRACK_FEATURES, TrackQuantities
from flavortag.io import read_events
from flavortag.models import build_model
from flavortag.scoring.tagger import Tagger

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]
MAX_TRACKS = 20  # below many Z-pole multiplicities: the graph must sort and cut as training does
CONFIGS = {
    "mlp": {"name": "mlp", "hidden_dims": [16]},
    "deepsets": {"name": "deepsets", "phi_dims": [16, 16], "rho_dims": [16], "use_event_features": True},
    "transformer": {"name": "transformer", "embed_dim": 16, "num_heads": 2, "depth": 1, "class_depth": 1,
                    "embed_hidden": [16], "pair_hidden": [8], "use_event_features": True},
}
SCORER = r"""
import sys
import numpy as np
import onnxruntime as ort

inputs = np.load(sys.argv[1])
results = []
for path in sys.argv[3:]:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feeds = {i.name: inputs[i.name] for i in session.get_inputs()}
    results.append(session.run(["probabilities"], feeds)[0])
assert "torch" not in sys.modules and "flavortag" not in sys.modules, sorted(sys.modules)
np.savez(sys.argv[2], *results)
"""


def _event_sample() -> ak.Array:
    parts = [read_events(str(ROOT / "data" / "zpole_ild" / f"{c}.parquet"))[:80] for c in ("uds", "cc", "bb")]
    return ak.concatenate(parts)


def _jet_sample() -> ak.Array:
    from flavortag.generate import generate_events

    return ak.concatenate([generate_events(f, 8, sqrt_s_gev=250.0, seed=11, process="zh", n_jets=2)
                           for f in ("uds", "cc", "bb", "gg")])


def _train_torch(key: str, events: ak.Array, classes: tuple[str, ...], seed: int = 0,
                 track_names: tuple[str, ...] = TRACK_FEATURES,
                 event_names: tuple[str, ...] = EVENT_FEATURES, config: dict | None = None) -> torch.nn.Module:
    """One epoch of Adam on ``events`` (normalisation fitted first), as a trained tagger carries it."""
    torch.manual_seed(seed)
    tensors = build_event_tensors(events, track_names, event_names or None, max_tracks=MAX_TRACKS)
    model = build_model(config or CONFIGS[key], len(track_names), len(event_names), class_names=classes)
    model.fit_normalisation(tensors.valid_track_features(), tensors.event_features)
    model.feature_names = {"track": list(track_names) if key != "mlp" else [], "event": list(event_names)}
    model.detector = DetectorModel().to_dict()
    model.max_tracks = MAX_TRACKS
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    order = np.random.default_rng(seed).permutation(len(tensors))
    for start in range(0, len(order), 64):
        batch = tensors.batch(order[start:start + 64])
        loss = F.cross_entropy(model(batch), batch.labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


def _train_bdt(events: ak.Array, classes: tuple[str, ...], event_names: tuple[str, ...] = EVENT_FEATURES):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    tensors = build_event_tensors(events, [], event_names, max_tracks=MAX_TRACKS)
    with threadpool_limits(limits=1):  # OpenMP threads on a few events only fight on a loaded machine (5 s -> 0.1 s)
        clf = HistGradientBoostingClassifier(max_iter=8, random_state=0).fit(tensors.event_features, tensors.labels)
    clf.feature_names = {"track": [], "event": list(event_names)}
    clf.detector = DetectorModel().to_dict()
    clf.class_names = classes
    return clf


def _shuffled_raw_inputs(events: ak.Array, seed: int = 1) -> dict[str, np.ndarray]:
    """Raw inputs with each event's tracks in a random order, three extra slots, garbage where not valid."""
    inputs = raw_inputs(events)
    n = inputs["tracks"].shape[1] + 3
    rng = np.random.default_rng(seed)
    out = {"axis": inputs["axis"], "tracks": np.full((len(events), n, 7), 1e4, np.float32), "valid": np.zeros((len(events), n), bool),
           "track_sigma": np.full((len(events), n, 2), -7.0, np.float32)}
    for i, count in enumerate(inputs["valid"].sum(axis=1)):
        slots = rng.permutation(n)[:count]
        out["tracks"][i, slots] = inputs["tracks"][i, :count]
        out["valid"][i, slots] = True
        out["track_sigma"][i, slots] = inputs["track_sigma"][i, :count]
    return out


@pytest.fixture(scope="module")
def samples() -> dict[str, tuple[ak.Array, tuple[str, ...]]]:
    return {"event": (_event_sample(), ("uds", "cc", "bb")), "jet": (_jet_sample(), ("light", "c", "b", "g"))}


@pytest.fixture(scope="module")
def taggers(samples) -> dict[tuple[str, str], object]:
    out: dict[tuple[str, str], object] = {}
    for level, (events, classes) in samples.items():
        for key in CONFIGS:
            out[(level, key)] = _train_torch(key, events, classes)
        out[(level, "bdt")] = _train_bdt(events, classes)
    return out


@pytest.fixture(scope="module")
def exported(taggers, tmp_path_factory) -> dict[tuple[str, str], Path]:
    out_dir = tmp_path_factory.mktemp("raw_onnx")
    out = {}
    for (level, key), model in taggers.items():
        export = export_raw_bdt_onnx if key == "bdt" else export_raw_onnx
        out[(level, key)] = export(model, out_dir / f"{level}_{key}.onnx")
    return out


@pytest.mark.parametrize("level", ["event", "jet"])
def test_raw_onnx_in_plain_onnxruntime_agrees_with_tagger_score(level, samples, taggers, exported, tmp_path):
    events, classes = samples[level]
    keys = [*CONFIGS, "bdt"]
    paths = [str(exported[(level, key)]) for key in keys]
    np.savez(tmp_path / "inputs.npz", **_shuffled_raw_inputs(events))
    subprocess.run([sys.executable, "-c", SCORER, str(tmp_path / "inputs.npz"), str(tmp_path / "out.npz"), *paths],
                   check=True, cwd=tmp_path, timeout=300)
    got = np.load(tmp_path / "out.npz")
    columns = [f"prob_{name}" for name in class_scheme(classes).names]
    for k, key in enumerate(keys):
        scores = Tagger.from_model(taggers[(level, key)], device="cpu").score(events)
        expected = np.stack([np.asarray(scores[c]) for c in columns], axis=1)
        assert got[f"arr_{k}"].shape == expected.shape == (len(events), len(classes))
        np.testing.assert_allclose(got[f"arr_{k}"], expected, atol=1e-5, rtol=0, err_msg=f"{level} {key}")
        # a trained tagger, not a constant: the events' scores spread
        assert expected[:, -1].std() > 1e-3, key


def test_graph_features_are_the_training_features(samples):
    """The torch trace of the feature code equals the numpy training features (float32 bit for bit
    but for rare last-bit rounding of transcendental functions)."""
    events, _ = samples["event"]
    tensors = build_event_tensors(events, TRACK_FEATURES, EVENT_FEATURES, max_tracks=200, sort_by=None)
    inputs = {k: torch.from_numpy(v) for k, v in raw_inputs(events).items()}
    track, event, _, _ = RawFeatures(list(TRACK_FEATURES), list(EVENT_FEATURES), DetectorModel())(
        inputs["axis"], inputs["tracks"], inputs["valid"])
    n = track.shape[1]
    np.testing.assert_array_equal(tensors.valid[:, :n], inputs["valid"].numpy())
    np.testing.assert_allclose(track.numpy()[inputs["valid"].numpy()], tensors.features[tensors.valid],
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(event.numpy(), tensors.event_features, rtol=1e-6, atol=1e-6)
    assert np.mean(track.numpy()[inputs["valid"].numpy()] == tensors.features[tensors.valid]) > 0.999


def _with_measured_sigma(events: ak.Array, d0_factor: float, z0_factor: float, zero_every: int = 0) -> ak.Array:
    """``events`` with per-track ``sigma_d0`` / ``sigma_z0``: the detector model's times a factor
    (every ``zero_every``-th track 0: 'not measured')."""
    q = TrackQuantities(events)
    det = DetectorModel()
    d0 = det.sigma_d0_mm(q.p, q.sin_theta) * d0_factor
    z0 = det.sigma_z0_mm(q.p, q.sin_theta) * z0_factor
    if zero_every:
        d0[::zero_every] = 0.0
        z0[::zero_every] = 0.0
    counts = ak.num(events.tracks)
    tracks = ak.with_field(events.tracks, ak.unflatten(d0.astype(np.float32), counts), "sigma_d0")
    tracks = ak.with_field(tracks, ak.unflatten(z0.astype(np.float32), counts), "sigma_z0")
    return ak.with_field(events, tracks, "tracks")


def test_measured_uncertainties_replace_the_detector_model(samples):
    events, _ = samples["event"]
    plain = TrackQuantities(events)
    measured = TrackQuantities(_with_measured_sigma(events, 2.0, 0.5, zero_every=3))
    fallback = np.zeros(plain.n_tracks_total, bool)
    fallback[::3] = True
    sigma = np.asarray(ak.flatten(measured.tracks.sigma_d0), np.float64)
    np.testing.assert_array_equal(measured.sigma_d0[~fallback], sigma[~fallback])
    np.testing.assert_allclose(measured.sigma_d0[fallback], plain.sigma_d0[fallback], rtol=1e-12)
    np.testing.assert_allclose(measured.d0_sig[~fallback], plain.d0_sig[~fallback] / 2.0, rtol=1e-6)
    np.testing.assert_allclose(measured.z0_sig[~fallback], plain.z0_sig[~fallback] / 0.5, rtol=1e-6)
    # the calibration measures the resolution relative to the tracks' own sigmas
    many = ak.concatenate([events, events, events])
    base = calibrate_resolution(many, min_tracks=500)
    scaled = calibrate_resolution(_with_measured_sigma(many, 2.0, 0.5), min_tracks=500)
    assert scaled.d0_scale == pytest.approx(base.d0_scale / 2.0, rel=2e-3)
    assert scaled.z0_scale == pytest.approx(base.z0_scale / 0.5, rel=2e-3)


def test_measured_uncertainties_and_calibration_scale_in_the_graph(samples, taggers, exported):
    import onnxruntime as ort

    events, _ = samples["event"]
    model = taggers[("event", "transformer")]
    path = exported[("event", "transformer")]
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    tagger = Tagger.from_model(model, device="cpu")

    with_sigma = _with_measured_sigma(events, 1.7, 0.6, zero_every=4)
    inputs = raw_inputs(with_sigma)
    assert (inputs["track_sigma"][inputs["valid"]] > 0).mean() == pytest.approx(0.75, abs=0.01)
    (got,) = session.run(["probabilities"], inputs)
    expected = tagger.predict_proba(with_sigma)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.abs(expected - tagger.predict_proba(events)).max() > 1e-3  # the sigmas changed the scores

    calibration = ResolutionCalibration(d0_scale=1.5, d0_scale_error=0.0, z0_scale=2.0, z0_scale_error=0.0,
                                        n_events=len(events), n_tracks_d0=0, n_tracks_z0=0)
    plain = raw_inputs(events)
    (scaled,) = session.run(["probabilities"], {**plain, "resolution_scale": np.array([[1.5, 2.0]], np.float32)})
    np.testing.assert_allclose(scaled, tagger.predict_proba(events, calibration=calibration), atol=1e-5)
    (default,) = session.run(["probabilities"], plain)  # resolution_scale left out: 1
    np.testing.assert_allclose(default, tagger.predict_proba(events), atol=1e-5)
    assert np.abs(scaled - default).max() > 1e-3


def test_only_the_inputs_the_features_read_are_graph_inputs():
    det = DetectorModel()
    assert used_raw_inputs(["log_e_gev", "dphi_axis_rad"], [], det) == ("axis", "tracks", "valid")
    assert used_raw_inputs(["signed_d0_sig_log"], [], det) == (
        "axis", "tracks", "valid", "track_sigma", "resolution_scale")
    assert used_raw_inputs([], ["thrust"], det) == ("axis", "tracks", "valid")


def test_raw_onnx_metadata_carries_the_contract(exported):
    import json

    import onnx

    path = exported[("jet", "deepsets")]
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["flavortag.class_names"]) == ["light", "c", "b", "g"]
    contract = json.loads(meta["flavortag.input_contract"])
    assert list(contract) == ["axis", "tracks", "valid", "track_sigma", "resolution_scale"]
    assert contract["tracks"]["shape"] == ["batch", "tracks", 7]
    assert int(meta["flavortag.max_tracks"]) == MAX_TRACKS
    assert math.isclose(json.loads(meta["flavortag.detector"])["d0_a_mm"], DetectorModel().d0_a_mm)


def test_minimal_numpy_onnxruntime_example_runs(exported, tmp_path):
    """scripts/onnx_raw_example.py (docs/ONNX.md) needs only numpy and onnxruntime."""
    path = exported[("event", "transformer")]
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "onnx_raw_example.py"), str(path)],
                         check=True, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    lines = run.stdout.strip().splitlines()
    assert lines[0].startswith("classes: ['uds', 'cc', 'bb']")
    probs = np.array([float(v) for v in lines[-1].split()[1:]])
    assert probs.shape == (3,) and probs.sum() == pytest.approx(1.0, abs=1e-5)


def test_event_without_tracks_scores_as_in_python(samples, taggers, exported):
    import onnxruntime as ort

    events, _ = samples["event"]
    empty = ak.Array([{"axis": [0.0, 0.0, 1.0], "tracks": [], "label": 0}])
    empty = ak.with_field(empty, ak.values_astype(empty.tracks, np.float32), "tracks")
    mixed = ak.concatenate([events[:3][["axis", "tracks", "label"]], empty])
    assert ak.num(mixed.tracks).tolist()[-1] == 0 and len(mixed) == 4
    options = ort.SessionOptions()
    options.log_severity_level = 3
    for key in ("mlp", "transformer", "bdt"):
        session = ort.InferenceSession(str(exported[("event", key)]), options, providers=["CPUExecutionProvider"])
        inputs = raw_inputs(mixed)
        (got,) = session.run(["probabilities"], {i.name: inputs[i.name] for i in session.get_inputs()})
        np.testing.assert_allclose(got, Tagger.from_model(taggers[("event", key)], device="cpu").predict_proba(mixed),
                                   atol=1e-5, err_msg=key)
        assert np.isfinite(got).all()
