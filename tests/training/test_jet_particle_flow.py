"""Issue 25: a jet tagger with neutral particles as tokens, PID and an s class, end to end on tiny ZH jets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.compose import compose_app

FLAVOURS = ("ud", "ss", "cc", "bb", "gg")


_cfg = compose_app


@pytest.fixture(scope="module")
def jet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from flavortag.generate.production import produce_samples

    out = tmp_path_factory.mktemp("zh_pf")
    produce_samples(out, 20, list(FLAVOURS), seed=4, sqrt_s_gev=250.0, workers=1, chunk_size=30,
                    progress=False, process="zh", n_jets=2, particle_flow=True)
    return out


def test_neutral_tokens_enter_the_inputs(jet_dir: Path) -> None:
    from flavortag.batching.tensors import build_event_tensors
    from flavortag.features import TRACK_FEATURES
    from flavortag.io import read_events

    jets = read_events(str(jet_dir / "ss.parquet"))
    assert set(np.unique(np.asarray(jets["label"]))) <= {1, 2, 4}  # s jets (and c/b from splittings)
    names = (*TRACK_FEATURES, "is_charged", "is_photon", "has_pid", "dndx_pull_k")
    charged = build_event_tensors(jets, TRACK_FEATURES, None, max_tracks=80)
    tokens = build_event_tensors(jets, names, None, max_tracks=80)
    n_neutrals = np.asarray([len(n) for n in jets["neutrals"]])
    np.testing.assert_array_equal(tokens.n_tracks, charged.n_tracks + n_neutrals)
    f = tokens.features[tokens.valid]
    neutral = f[:, names.index("is_charged")] == 0
    assert neutral.sum() == n_neutrals.sum() > 0
    ip = [names.index(n) for n in ("signed_d0_log1p_um", "signed_z0_sig_log", "signed_ip3d_sig_log")]
    assert np.all(f[neutral][:, ip] == 0) and np.all(f[neutral][:, names.index("has_pid")] == 0)
    assert np.any(f[~neutral][:, ip] != 0) and np.all(f[~neutral][:, names.index("has_pid")] == 1)


def test_jet_tagger_with_neutrals_pid_and_strange(jet_dir: Path, tmp_path: Path) -> None:
    """The training job (data, features=jet_pid, fit, metrics) without MLflow and plots (kept fast)."""
    from omegaconf import OmegaConf
    from threadpoolctl import threadpool_limits

    from flavortag.detector import DetectorModel
    from flavortag.export_raw import used_raw_inputs
    from flavortag.metrics import evaluate_predictions
    from flavortag.scoring.tagger import Tagger
    from flavortag.training.bdt import fit_bdt
    from flavortag.training.data import prepare_data
    from flavortag.training.loop import fit_torch
    from flavortag.training.runtime import Distributed
    from flavortag.training.settings import TrainJob

    paths = ",".join(str(jet_dir / f"{f}.parquet") for f in FLAVOURS)
    common = ["data=zh_jets", f"data.paths=[{paths}]", "data.classes=[ud,c,b,g,s]", "data.max_tracks=48",
              "features=jet_pid", "trainer.max_epochs=1", "trainer.batch_size=64", "trainer.progress=false",
              "trainer.checkpoint_every_steps=0", f"output_dir={tmp_path}"]
    small = ["model=transformer", "model.embed_dim=16", "model.depth=1", "model.class_depth=1",
             "model.embed_hidden=[16]", "model.pair_hidden=[8]"]
    job = TrainJob.from_config(OmegaConf.to_container(_cfg("train", [*common, *small]), resolve=True))
    data = prepare_data(job)
    assert data.scheme.names == ("ud", "c", "b", "g", "s")
    test = data.tensors["test"]
    assert "is_photon" in test.track_feature_names and "n_kaons" in test.event_feature_names
    assert test.features[..., test.track_feature_names.index("is_photon")].sum() > 0  # neutral tokens
    model, _ = fit_torch(job, data, tmp_path, Distributed(False, "auto"))
    bdt_job = TrainJob.from_config(OmegaConf.to_container(
        _cfg("train", [*common, "model=bdt", "model.max_iter=2"]), resolve=True))
    with threadpool_limits(limits=1):  # scikit-learn's OpenMP threads only fight on a loaded CI machine
        bdt, _ = fit_bdt(bdt_job, data)
    for tagger in (model, bdt):
        probs = Tagger.from_model(tagger, device="cpu").predict_tensors(test)
        metrics = evaluate_predictions(probs, test.labels, scheme=data.scheme).flat_metrics()
        assert 0.0 <= metrics["test/s_eff_at_ud10"] <= 1.0 and metrics["test/s_eff_at_ud10_err"] >= 0.0
        assert "test/rej_ud_at_c50" in metrics and "test/rej_s_at_c50" in metrics
    # the raw-input ONNX graph takes them (tests/models/test_export_raw_pf.py)
    assert "particle" in used_raw_inputs(list(test.track_feature_names), [], DetectorModel())


def test_jets_stream_from_files(jet_dir: Path, tmp_path: Path) -> None:
    """data.streaming with a jet scheme: counts per scheme class (s is light in [light, c, b, g]), one epoch."""
    from omegaconf import OmegaConf

    from flavortag.classes import class_scheme
    from flavortag.dataset import to_scheme
    from flavortag.io import read_events
    from flavortag.training.data import prepare_data
    from flavortag.training.loop import fit_torch
    from flavortag.training.runtime import Distributed
    from flavortag.training.settings import TrainJob

    files = [str(jet_dir / f"{f}.parquet") for f in FLAVOURS]
    paths = ",".join(files)
    cfg = _cfg("train", ["data=zh_jets", f"data.paths=[{paths}]", f"data.val_paths=[{files[0]},{files[1]}]",
                         "data.streaming=true", "data.step_size=40", "data.classes=[light,c,b,g]",
                         "model=deepsets", "model.phi_dims=[8]", "model.rho_dims=[8]", "trainer.max_epochs=1",
                         "trainer.batch_size=32", "trainer.progress=false", "trainer.checkpoint_every_steps=0",
                         f"output_dir={tmp_path}"])
    job = TrainJob.from_config(OmegaConf.to_container(cfg, resolve=True))
    data = prepare_data(job)
    scheme = class_scheme(["light", "c", "b", "g"])
    labels = np.concatenate([np.asarray(to_scheme(read_events(f), scheme)["label"]) for f in files])
    assert data.stream is not None and data.scheme == scheme
    np.testing.assert_array_equal(data.stream.class_counts, np.bincount(labels, minlength=4))
    assert data.stream.n_events == len(labels) == 2 * 20 * len(FLAVOURS)
    _, state = fit_torch(job, data, tmp_path, Distributed(False, "auto"))
    assert state.epoch >= 1
