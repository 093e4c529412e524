"""Issue 15: ``flavortag.Tagger`` scores events as ``flavortag predict`` does (torch, BDT, exported ONNX).

Tiny real trainings (a few hundred Pythia events per class, two epochs) in a
temporary SQLite MLflow store; the scores are compared with the files that
``flavortag predict`` writes for the same input.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

import flavortag
from tests.compose import compose_app

FIELDS = ["prob_uds", "prob_cc", "prob_bb", "D_b", "D_c"]


_cfg = compose_app


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def trained(sample_dir: Path, store: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    from flavortag.apps.train import train

    paths = ",".join(str(sample_dir / f"{f}.parquet") for f in ("uds", "cc", "bb"))
    results = {}
    for model, extra in (("deepsets", ["model.use_event_features=true", "model.phi_dims=[16,16]",
                                       "model.rho_dims=[16]"]),
                         ("bdt", ["model.max_iter=20"])):
        out = tmp_path_factory.mktemp(f"tagger_{model}")
        result = train(_cfg("train", [
            f"model={model}", f"data.paths=[{paths}]", f"tracking.tracking_uri={store}",
            "tracking.experiment_name=tagger-test", f"output_dir={out}", "trainer.max_epochs=2", "evaluate.plot_formats=[png]",
            "trainer.batch_size=64", "trainer.progress=false", "data.max_tracks=24",
            "evaluate.write_predictions=false", *extra]))
        result["out"] = out
        results[model] = result
    return results


def _predicted(run_id: str, store: str, events_path: Path, out: Path) -> ak.Array:
    from flavortag.apps.predict import predict

    written = predict(_cfg("predict", [f"run_id={run_id}", f"inputs=[{events_path}]", f"out_dir={out}",
                                       f"tracking.tracking_uri={store}", "formats=[parquet]"]))
    return ak.from_parquet(written[0])


def _assert_scores_equal(scores: ak.Array, reference: ak.Array, atol: float) -> None:
    assert scores.fields == FIELDS
    assert len(scores) == len(reference)
    for name in FIELDS:
        np.testing.assert_allclose(np.asarray(scores[name]), np.asarray(reference[name]), atol=atol, err_msg=name)


@pytest.mark.parametrize("model", ["deepsets", "bdt"])
def test_tagger_scores_equal_flavortag_predict(model: str, trained: dict[str, dict], store: str,
                                               sample_dir: Path, tmp_path: Path) -> None:
    from flavortag.io import read_events

    run_id = trained[model]["run_id"]
    reference = _predicted(run_id, store, sample_dir / "cc.parquet", tmp_path)
    events = read_events(str(sample_dir / "cc.parquet"))

    tagger = flavortag.Tagger.from_run(run_id, tracking_uri=store, device="cpu", batch_size=100)
    _assert_scores_equal(tagger.score(events), reference, atol=1e-6)
    assert tagger.kind == ("bdt" if model == "bdt" else "torch")

    # the same model from its checkpoint, through load(), and from a plain awkward array of the layout
    ckpt = trained[model]["out"] / "checkpoints" / ("bdt.skops" if model == "bdt" else "best.pt")
    again = flavortag.Tagger.load(ckpt, device="auto")
    plain = ak.Array(ak.to_list(events[["axis", "tracks"]]))
    _assert_scores_equal(again.score(plain), reference, atol=1e-6)
    by_uri = flavortag.Tagger.load(f"runs:/{run_id}/model", tracking_uri=store)
    _assert_scores_equal(by_uri.score(events[:7]), reference[:7], atol=1e-6)
    assert len(tagger.score(events[:0])) == 0


def test_exported_onnx_tagger_agrees_with_torch(trained: dict[str, dict], store: str, sample_dir: Path,
                                                tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from flavortag.apps.export import main as export_main
    from flavortag.io import read_events
    from flavortag.tracking import set_tracking_uri

    run_id = trained["deepsets"]["run_id"]
    set_tracking_uri(store)
    assert export_main([run_id, str(tmp_path / "exported"), "--formats", "onnx",
                        "--tracking-uri", store, "--check-n", "300"]) == 0
    # the export itself checked onnxruntime against torch on the run's own (real) training events
    check = json.loads((tmp_path / "exported" / "tagger.json").read_text())["onnx_check"]
    assert check["n_events"] == 300 and check["max_abs_diff"] <= 1e-4
    assert check["events"] == [str(sample_dir / f"{f}.parquet") for f in ("uds", "cc", "bb")]
    events = read_events(str(sample_dir / "bb.parquet"))
    onnx_tagger = flavortag.Tagger.load(tmp_path / "exported", batch_size=128)
    assert onnx_tagger.kind == "onnx"
    torch_tagger = flavortag.Tagger.from_run(run_id, tracking_uri=store, device="cpu")
    _assert_scores_equal(onnx_tagger.score(events), torch_tagger.score(events), atol=1e-4)


def test_exported_bdt_agrees_with_scikit_learn(trained: dict[str, dict], store: str, sample_dir: Path,
                                               tmp_path: Path) -> None:
    pytest.importorskip("skl2onnx")
    from flavortag.apps.export import main as export_main
    from flavortag.io import read_events

    run_id = trained["bdt"]["run_id"]
    out = tmp_path / "exported_bdt"
    # the default formats ask for TorchScript too: a BDT writes its ONNX file only
    assert export_main([run_id, str(out), "--tracking-uri", store, "--check-n", "300"]) == 0
    assert not (out / "tagger.torchscript.pt").exists()
    info = json.loads((out / "tagger.json").read_text())
    assert info["model"]["name"] == "bdt" and info["inputs"] == ["event_features"]
    assert info["onnx_check"]["n_events"] == 300 and info["onnx_check"]["max_abs_diff"] <= 1e-5
    events = read_events(str(sample_dir / "uds.parquet"))
    onnx_tagger = flavortag.Tagger.from_exported(out)
    assert onnx_tagger.kind == "onnx"
    sklearn_tagger = flavortag.Tagger.from_run(run_id, tracking_uri=store)
    _assert_scores_equal(onnx_tagger.score(events), sklearn_tagger.score(events), atol=1e-5)
    from flavortag.errors import UsageError

    with pytest.raises(UsageError, match="give --formats onnx"):
        export_main([run_id, str(tmp_path / "ts"), "--formats", "torchscript", "--tracking-uri", store])


def test_tagger_calibration_option(trained: dict[str, dict], store: str, sample_dir: Path) -> None:
    from flavortag.calibration import ResolutionCalibration
    from flavortag.io import read_events

    events = read_events(str(sample_dir / "bb.parquet"))
    tagger = flavortag.Tagger.from_run(trained["deepsets"]["run_id"], tracking_uri=store, device="cpu")
    nominal = tagger.score(events)
    unit = ResolutionCalibration(1.0, 0.0, 1.0, 0.0, len(events), 0, 0)
    np.testing.assert_allclose(np.asarray(tagger.score(events, calibration=unit)["D_b"]),
                               np.asarray(nominal["D_b"]), atol=1e-6)
    wider = ResolutionCalibration(2.0, 0.0, 2.0, 0.0, len(events), 0, 0)
    assert not np.allclose(np.asarray(tagger.score(events, calibration=wider)["D_b"]),
                           np.asarray(nominal["D_b"]), atol=1e-4)


def test_unknown_sources_say_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no tagger at"):
        flavortag.Tagger.load(tmp_path / "nothing.pt")
    with pytest.raises(FileNotFoundError, match="no tagger.onnx in"):
        flavortag.Tagger.from_exported(tmp_path)
    with pytest.raises(FileNotFoundError, match="no MLflow store at"):
        flavortag.Tagger.from_run("0123abcd", tracking_uri=f"sqlite:///{tmp_path / 'none.db'}")


def test_library_mistakes_say_what_is_needed(trained: dict[str, dict], store: str, sample_dir: Path) -> None:
    """Issue 26 item 7: an unknown run names the store; events without an axis, or a numpy array, are
    refused with one line that says what a tagger scores; device and batch_size are named options."""
    import inspect

    from flavortag.io import read_events
    from flavortag.scoring.tagger import Tagger, TaggerError

    with pytest.raises(TaggerError, match=f"no run 0+ in the MLflow store {store}") as err:
        Tagger.from_run("0" * 32, tracking_uri=store)
    assert "\n" not in str(err.value)
    for constructor in (Tagger.load, Tagger.from_run, Tagger.from_uri, Tagger.from_checkpoint,
                        Tagger.from_exported, Tagger.from_model):
        parameters = inspect.signature(constructor).parameters
        assert {"device", "batch_size"} <= set(parameters), constructor.__name__
        assert all(p.kind is not p.VAR_KEYWORD for p in parameters.values()), constructor.__name__
    tagger = Tagger.load(trained["deepsets"]["out"] / "checkpoints" / "best.pt", device="cpu", batch_size=7)
    assert (tagger.device, tagger.batch_size) == ("cpu", 7)
    events = read_events(str(sample_dir / "bb.parquet"))[:20]
    with pytest.raises(TaggerError, match=r"needs an awkward Array .* no 'axis' \(fields: tracks, label"):
        tagger.score(events[["tracks", "label"]])
    with pytest.raises(TaggerError, match="not a numpy.ndarray"):
        tagger.score(np.zeros((20, 3)))


def test_working_points_are_a_tagger_method(trained: dict[str, dict], sample_dir: Path) -> None:
    """The b-tagger's cut at 70% efficiency, measured by the tagger on labelled events, keeps 70% of the bb."""
    from flavortag.io import read_events
    from flavortag.metrics import apply_working_point
    from flavortag.scoring.tagger import Tagger

    events = ak.concatenate([read_events(str(sample_dir / f"{f}.parquet")) for f in ("uds", "cc", "bb")])
    tagger = Tagger.from_checkpoint(trained["deepsets"]["out"] / "checkpoints" / "best.pt", device="cpu")
    wp = tagger.working_points(events, efficiencies=[0.7])
    assert wp["taggers"]["b"]["f_c"] == pytest.approx(tagger.f_c)
    tagged = apply_working_point(tagger.predict_proba(events), wp, "b", 0.7)
    bb = np.asarray(events["label"]) == 2
    assert tagged[bb].mean() == pytest.approx(0.7, abs=1.5 / bb.sum())
    with pytest.raises(ValueError, match="labelled events"):
        tagger.working_points(events[["tracks", "axis"]])


def test_import_flavortag_stays_light() -> None:
    code = ("import sys, flavortag\n"
            "from flavortag.io import read_events\n"
            "heavy = [m for m in ('torch', 'hydra', 'mlflow') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "assert flavortag.Tagger.__name__ == 'Tagger'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
