"""End to end on tiny real data: generate -> train (all models) -> evaluate -> compare -> predict -> export.

The sample is made by Pythia 8 in the test (a few hundred events per class),
the MLflow store is a real SQLite store in a temporary directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import mlflow
import numpy as np
import pytest
import torch

from tests.compose import compose_app

from ..conftest import N_PER_CLASS


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    return f"sqlite:///{path}"


_cfg = compose_app


def _train_overrides(sample_dir: Path, store: str, out: Path, model: str) -> list[str]:
    paths = ",".join(str(sample_dir / f"{f}.parquet") for f in ("uds", "cc", "bb"))
    return [
        f"model={model}", f"data.paths=[{paths}]", f"tracking.tracking_uri={store}",
        "tracking.experiment_name=pipeline-test", f"output_dir={out}",
        "trainer.max_epochs=3", "trainer.batch_size=32", "trainer.lr=3e-3", "trainer.progress=false",
        "data.max_tracks=32",
    ]


@pytest.fixture(scope="module")
def trained(sample_dir: Path, store: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    from flavortag.apps.train import train

    results = {}
    for model in ("mlp", "bdt", "deepsets", "transformer"):
        out = tmp_path_factory.mktemp(f"train_{model}")
        overrides = _train_overrides(sample_dir, store, out, model)
        if model == "bdt":
            overrides.append("model.max_iter=30")
        if model != "mlp":  # PNG alone (half the drawing time); the mlp keeps the default PNG + PDF
            overrides.append("evaluate.plot_formats=[png]")
        result = train(_cfg("train", overrides))
        result["out"] = out
        results[model] = result
    return results


def test_every_model_logs_a_complete_run(trained: dict[str, dict], store: str) -> None:
    mlflow.set_tracking_uri(store)
    keys = None
    for model, result in trained.items():
        run = mlflow.get_run(result["run_id"])
        assert run.data.params["model.name"] == model
        assert run.data.tags["flavortag.model"] == model
        # identical metric names across models: the compare view lines them up
        test_keys = {k for k in run.data.metrics if k.startswith("test/")}
        assert {"test/acc", "test/auc_bb", "test/rej_c_at_b80", "test/rej_uds_at_c50"} <= test_keys
        keys = test_keys if keys is None else keys
        assert test_keys == keys
        # the classes are separable on real Pythia events: well above chance (1/3)
        assert run.data.metrics["test/acc"] > 0.45, model
        artifacts = {a.path for a in mlflow.artifacts.list_artifacts(run_id=result["run_id"])}
        assert {"config.yaml", "features.json", "working_points.json", "plots", "predictions",
                "checkpoints"} <= artifacts
        plots = {Path(a.path).name for a in mlflow.artifacts.list_artifacts(
            run_id=result["run_id"], artifact_path="plots")}
        assert {"rejection_b.png", "roc.png", "confusion.png", "discriminants.png"} <= plots
        assert ("discriminants.pdf" in plots) == (model == "mlp"), model  # evaluate.plot_formats
        wp = json.loads(mlflow.artifacts.load_text(f"runs:/{result['run_id']}/working_points.json"))
        assert "b" in json.dumps(wp)
        _assert_ui_structure(run, result)


def _assert_ui_structure(run: object, result: dict) -> None:
    """Issue 26 item 3: what the MLflow UI shows of a training (real store, real tiny training)."""
    data = run.data  # type: ignore[attr-defined]
    assert data.tags["flavortag.kind"] == "training"
    assert not [k for k in data.metrics if k.endswith("_err")]  # errors are no charts of their own
    assert len([k for k in data.metrics if k.startswith("test/")]) == 25  # acc, loss, 3 AUCs, 20 rejections
    table = json.loads(mlflow.artifacts.load_text(f"runs:/{result['run_id']}/metrics_table.json"))
    rows = {row[0]: row for row in table["data"]}  # metric, value, error, kind
    assert table["columns"] == ["metric", "value", "error", "kind"] and len(rows) == 25
    row = rows["test/rej_uds_at_c50"]
    assert row[1] == pytest.approx(data.metrics["test/rej_uds_at_c50"])
    limits = [k for k, r in rows.items() if r[3] == "95% CL lower limit"]
    assert data.tags["flavortag.lower_limits"] == (", ".join(limits) or "none")
    for key in limits:  # a lower limit: no error, marked in the tags and the description
        assert rows[key][2] is None
    note = data.tags["mlflow.note.content"]
    headline = data.tags["fig.rej_uds_at_c50"]
    assert f"| uds rejection at 50% c efficiency (D_c) | {headline} |" in note
    assert "| key figure (135 test events) | value |" in note and "| accuracy | 0." in note
    if "test/rej_uds_at_c50" in limits:
        assert headline.startswith("> ") and headline.endswith("(95% CL lower limit)")
    else:
        value, err = (float(x) for x in headline.split(" ± "))
        assert value == pytest.approx(data.metrics["test/rej_uds_at_c50"], rel=0.01) and err > 0
    experiment = mlflow.get_experiment(run.info.experiment_id)  # type: ignore[attr-defined]
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    view = json.loads(experiment.tags["mlflow.sharedViewState.trainings"])
    assert view["searchFilter"] == "tags.`flavortag.kind` = 'training'"
    assert "tags.`fig.rej_uds_at_c50`" in view["selectedColumns"]


def test_torch_history_per_epoch(trained: dict[str, dict], store: str) -> None:
    mlflow.set_tracking_uri(store)
    client = mlflow.MlflowClient()
    for model in ("mlp", "deepsets", "transformer"):
        hist = client.get_metric_history(trained[model]["run_id"], "val/loss")
        assert [m.step for m in hist] == [1, 2, 3]
        assert all(np.isfinite(m.value) for m in hist)


def test_model_loaded_back_by_run_id_predicts_the_same(trained: dict[str, dict], store: str,
                                                       sample_dir: Path) -> None:
    from flavortag.batching import build_event_tensors
    from flavortag.detector import DetectorModel
    from flavortag.io import read_events
    from flavortag.scoring.inference import load_model, predict_proba

    mlflow.set_tracking_uri(store)
    events = read_events(str(sample_dir / "bb.parquet"))[:50]
    for model in ("mlp", "bdt", "transformer"):
        run_id = trained[model]["run_id"]
        loaded = load_model(run_id)
        ckpt = trained[model]["out"] / "checkpoints" / ("bdt.skops" if model == "bdt" else "best.pt")
        from_ckpt = load_model(str(ckpt))
        names = loaded.feature_names
        tensors = build_event_tensors(events, track_feature_names=names["track"],
                                      event_feature_names=names["event"], max_tracks=32,
                                      detector=DetectorModel.from_config(loaded.detector))
        p1 = predict_proba(loaded, tensors)
        p2 = predict_proba(from_ckpt, tensors)
        np.testing.assert_allclose(p1, p2, atol=1e-6)
        np.testing.assert_allclose(p1.sum(1), 1.0, atol=1e-5)


def test_evaluate_adds_to_run_and_child_run(trained: dict[str, dict], store: str,
                                            sample_dir: Path, tmp_path: Path) -> None:
    from flavortag.apps.evaluate import evaluate

    mlflow.set_tracking_uri(store)
    run_id = trained["deepsets"]["run_id"]
    before = mlflow.get_run(run_id).data.metrics["test/acc"]
    flat = evaluate(_cfg("evaluate", [f"run_id={run_id}", f"tracking.tracking_uri={store}",
                                      "tracking.experiment_name=pipeline-test",
                                      f"output_dir={tmp_path / 'own'}"]))
    # the same held-out split gives the same accuracy as at the end of training
    assert flat["test/acc"] == pytest.approx(before, abs=1e-9)
    plots = {Path(a.path).name for a in mlflow.artifacts.list_artifacts(run_id=run_id, artifact_path="plots")}
    assert {"performance_vs_variables_b.png", "performance_vs_variables_c.pdf"} <= plots
    paths = ",".join(str(sample_dir / f"{f}.parquet") for f in ("uds", "cc", "bb"))
    other = evaluate(_cfg("evaluate", [f"run_id={run_id}", f"tracking.tracking_uri={store}",
                                       "tracking.experiment_name=pipeline-test", "data=zpole_embedded",
                                       f"data.paths=[{paths}]", "data.name=tiny", "split=all",
                                       "evaluate.plot_formats=[png]", f"output_dir={tmp_path / 'other'}"]))
    assert set(other) == set(flat)
    children = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{run_id}'",
                                  experiment_names=["pipeline-test"], output_format="list")
    assert len(children) == 1
    assert children[0].data.metrics["test/acc"] == pytest.approx(other["test/acc"])
    # predictions follow the input order and carry the true labels
    pred = ak.from_parquet(tmp_path / "other" / "predictions" / "predictions.parquet")
    assert len(pred) == 3 * N_PER_CLASS
    np.testing.assert_array_equal(np.asarray(pred["label"]), np.repeat([0, 1, 2], N_PER_CLASS))



def test_evaluate_own_files_without_a_data_config(trained: dict[str, dict], store: str,
                                                 sample_dir: Path, tmp_path: Path) -> None:
    """``data.paths=[...]`` alone: the run's data settings, a child run, the model's name in the table.

    Run as the real command with its output to a pipe (issue 26, log noise): the table once, no
    progress bars (tqdm frames or MLflow's "Downloading artifacts") and no warning.
    """
    import os
    import subprocess
    import sys

    mlflow.set_tracking_uri(store)
    run_id = trained["mlp"]["run_id"]
    paths = ",".join(str(sample_dir / f"{f}.parquet") for f in ("cc", "bb"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HYDRA_", "FLAVORTAG_"))}
    done = subprocess.run(
        [sys.executable, "-m", "flavortag", "evaluate", f"run_id={run_id}", f"tracking.tracking_uri={store}",
         "tracking.experiment_name=pipeline-test", f"data.paths=[{paths}]", "split=all",
         f"output_dir={tmp_path / 'files'}"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert "Downloading artifacts" not in output and "\r" not in output and "%|" not in output, output[-3000:]
    assert "WARNING" not in output and "Warning" not in output, output[-3000:]
    header = [line for line in output.splitlines() if line.startswith("model ")]
    rows = [line for line in output.splitlines() if line.startswith("mlp on ")]
    assert len(header) == 1 and len(rows) == 1, output[-3000:]  # the table once, under the model's name
    flat = json.loads((tmp_path / "files" / "metrics.json").read_text())
    assert 0 < flat["test/acc"] <= 1
    assert flat["test/auc_uds"] is None  # no uds among these files (NaN written as null)
    children = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{run_id}'",
                                  experiment_names=["pipeline-test"], output_format="list")
    assert [c.data.tags["mlflow.runName"] for c in children] == ["eval-custom"]
    pred = ak.from_parquet(tmp_path / "files" / "predictions" / "predictions.parquet")
    np.testing.assert_array_equal(np.asarray(pred["label"]), np.repeat([1, 2], N_PER_CLASS))


def test_training_samples_are_logged_as_datasets(trained: dict[str, dict], store: str) -> None:
    mlflow.set_tracking_uri(store)
    inputs = mlflow.get_run(trained["transformer"]["run_id"]).inputs.dataset_inputs
    by_context = {next(t.value for t in i.tags if t.key == "mlflow.data.context"): i for i in inputs}
    assert set(by_context) == {"training", "validation", "testing"}
    train = by_context["training"]
    assert train.dataset.name == "zpole_embedded/train" and len(train.dataset.digest) == 10
    counts = {t.key: int(t.value) for t in train.tags if t.key.startswith("n_")}
    assert counts == {"n_uds": 210, "n_cc": 210, "n_bb": 210}  # 70% of each class of the tiny sample
    assert by_context["validation"].dataset.digest != train.dataset.digest


def test_compare_and_predict(trained: dict[str, dict], store: str, sample_dir: Path,
                             tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flavortag.apps.compare import compare
    from flavortag.apps.predict import predict
    from flavortag.io import read_events

    flat = compare(_cfg("compare", [f"tracking.tracking_uri={store}",
                                    "tracking.experiment_name=pipeline-test", "evaluate.plot_formats=[png]",
                                    f"output_dir={tmp_path / 'cmp'}"]))
    assert set(flat) == {"mlp", "bdt", "deepsets", "transformer"}
    # ranked by the headline figure, best first; the folder and the run are named
    ranked = [flat[m]["test/rej_uds_at_c50"] for m in flat]
    assert ranked == sorted(ranked, reverse=True)
    assert f"outputs in {tmp_path / 'cmp'}; MLflow run " in capsys.readouterr().out
    # analysis runs live in their own experiment, away from the trainings
    compared = mlflow.search_runs(experiment_names=["pipeline-test-analyses"], output_format="list")
    assert [r.data.tags["flavortag.kind"] for r in compared] == ["comparison"]
    for model, result in trained.items():
        assert flat[model]["test/acc"] == pytest.approx(result["metrics"]["test/acc"])
    assert (tmp_path / "cmp" / "comparison.csv").read_text().count("\n") == 5
    assert (tmp_path / "cmp" / "rejection_b.png").stat().st_size > 10_000
    assert (tmp_path / "cmp" / "performance_vs_variables_b.png").stat().st_size > 10_000
    assert not list((tmp_path / "cmp").glob("*.pdf"))  # evaluate.plot_formats=[png]

    written = predict(_cfg("predict", [f"run_id={trained['transformer']['run_id']}",
                                       f"inputs=[{sample_dir / 'cc.parquet'}]",
                                       f"out_dir={tmp_path / 'pred'}", f"tracking.tracking_uri={store}"]))
    assert [p.name for p in written] == ["cc.flavortag.parquet", "cc.flavortag.root"]
    original = read_events(str(sample_dir / "cc.parquet"))
    for path in written:
        scored = read_events(str(path))
        assert len(scored) == len(original)
        np.testing.assert_allclose(np.asarray(scored["tracks", "E"][:, 0]),
                                   np.asarray(original["tracks", "E"][:, 0]))
        probs = np.stack([np.asarray(scored[f]) for f in ("prob_uds", "prob_cc", "prob_bb")], 1)
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_predict_keeps_the_whole_stem(trained: dict[str, dict], store: str, sample_dir: Path,
                                      tmp_path: Path) -> None:
    from flavortag.apps.predict import predict
    from flavortag.io import read_events, write_events

    uds, bb = read_events(str(sample_dir / "uds.parquet")), read_events(str(sample_dir / "bb.parquet"))
    write_events(uds[:50], tmp_path / "run.1.root")
    write_events(bb[:70], tmp_path / "run.2.root")
    written = predict(_cfg("predict", [f"checkpoint={trained['mlp']['out']}/checkpoints/best.pt",
                                       f"inputs=[{tmp_path / 'run.1.root'},{tmp_path / 'run.2.root'}]",
                                       "formats=[parquet]"]))
    assert [p.name for p in written] == ["run.1.flavortag.parquet", "run.2.flavortag.parquet"]
    assert [len(read_events(str(p))) for p in written] == [50, 70]


def test_export_onnx_of_trained_transformer(trained: dict[str, dict], tmp_path: Path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    from flavortag.export import export_onnx
    from flavortag.scoring.inference import load_model

    model = load_model(str(trained["transformer"]["out"] / "checkpoints" / "best.pt")).eval()
    path = export_onnx(model, tmp_path / "tagger.onnx")
    rng = np.random.default_rng(0)
    b, n = 5, 11
    feats = rng.normal(size=(b, n, model.n_track_features)).astype(np.float32)
    valid = np.zeros((b, n), dtype=bool)
    for i, k in enumerate([11, 7, 3, 1, 9]):
        valid[i, :k] = True
    vectors = np.abs(rng.normal(size=(b, n, 7))).astype(np.float32) + 1.0
    ev = rng.normal(size=(b, model.n_event_features)).astype(np.float32)
    with torch.no_grad():
        ref = model.forward_padded(torch.from_numpy(feats), torch.from_numpy(valid),
                                   torch.from_numpy(ev), torch.from_numpy(vectors)).numpy()
    session = onnxruntime.InferenceSession(str(path))
    feeds = {"features": feats, "valid": valid, "event_features": ev, "vectors": vectors}
    names = [i.name for i in session.get_inputs()]
    out = session.run(None, {k: v for k, v in feeds.items() if k in names})[0]
    np.testing.assert_allclose(out, ref, atol=1e-4)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_mlflow_server_lists_runs_with_same_metric_keys(trained: dict[str, dict], store: str,
                                                        tmp_path: Path) -> None:
    """A real `mlflow server` on loopback over the store; its REST API shows the models side by side."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store,
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        req = urllib.request.Request(
            f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=pipeline-test")
        with urllib.request.urlopen(req, timeout=10) as resp:
            experiment_id = json.load(resp)["experiment"]["experiment_id"]
        body = json.dumps({"experiment_ids": [experiment_id], "max_results": 100}).encode()
        req = urllib.request.Request(f"{base}/api/2.0/mlflow/runs/search", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            runs = json.load(resp)["runs"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    by_model: dict[str, set[str]] = {}
    for run in runs:
        tags = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
        if tags.get("flavortag.kind") != "training":
            continue
        keys = {m["key"] for m in run["data"].get("metrics", []) if m["key"].startswith("test/")}
        by_model[tags["flavortag.model"]] = keys
    assert {"mlp", "transformer"} <= set(by_model)
    assert by_model["mlp"] == by_model["transformer"]
    assert "test/rej_c_at_b80" in by_model["mlp"]


def test_export_cli_writes_onnx_torchscript_and_working_points(trained: dict[str, dict], store: str,
                                                               tmp_path: Path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    from flavortag.cli import main as cli_main
    from flavortag.export import load_torchscript

    out = tmp_path / "exported"
    assert cli_main(["export", trained["deepsets"]["run_id"], str(out), "--tracking-uri", store]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "tagger.json", "tagger.onnx", "tagger.torchscript.pt", "tagger_raw.onnx", "working_points.json"]
    info = json.loads((out / "tagger.json").read_text())
    assert info["class_names"] == ["uds", "cc", "bb"]
    # the raw-input graph was checked against the Python features on the run's own events
    assert info["raw_onnx"] == "tagger_raw.onnx"
    assert info["raw_onnx_check"]["n_events"] > 100 and info["raw_onnx_check"]["max_abs_diff"] < 1e-5
    assert info["max_tracks"] == 32
    wp = json.loads((out / "working_points.json").read_text())
    logged = json.loads(mlflow.artifacts.load_text(f"runs:/{trained['deepsets']['run_id']}/working_points.json"))
    assert wp == logged
    # ONNX and TorchScript give the same probabilities on a padded batch
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(4, 9, len(info["feature_names"]["track"]))).astype(np.float32)
    valid = np.arange(9)[None, :] < np.array([[9], [4], [1], [6]])
    session = onnxruntime.InferenceSession(str(out / "tagger.onnx"))
    names = [i.name for i in session.get_inputs()]
    feeds = {"features": feats, "valid": valid}
    onnx_probs = session.run(["probabilities"], {k: v for k, v in feeds.items() if k in names})[0]
    module, _ = load_torchscript(out / "tagger.torchscript.pt")
    with torch.no_grad():
        ts_logits = module(torch.from_numpy(feats), torch.from_numpy(valid))
    np.testing.assert_allclose(onnx_probs, torch.softmax(ts_logits, 1).numpy(), atol=1e-4)


def test_compare_picks_trainings_of_one_dataset_and_refuses_mixed_samples(
        trained: dict[str, dict], store: str, sample_dir: Path, tmp_path: Path) -> None:
    """Last in the file: it adds runs to the store. Trials, ablations, failed runs are never picked;
    runs scored on other events are refused with one line (exit 2: a UsageError)."""
    from flavortag import tracking
    from flavortag.apps.compare import compare
    from flavortag.apps.evaluate import evaluate
    from flavortag.errors import UsageError
    from flavortag.pipelines.compare import find_runs

    mlflow.set_tracking_uri(store)
    settings = {"tracking_uri": store, "experiment_name": "pipeline-test"}
    for name, kind, status in (("mlp-trial0", "trial", "FINISHED"), ("mlp-no_angles", "ablation", "FINISHED"),
                               ("mlp-failed", "training", "FAILED")):
        run = tracking.create_run(settings, name, {tracking.Tag.KIND: kind, tracking.Tag.DATA: "zpole_embedded"})
        run.log_metrics({"test/acc": 0.99})
        run.set_status(status)
    picked = {r.data.tags["mlflow.runName"] for r in find_runs("pipeline-test")}
    assert picked == {"mlp", "bdt", "deepsets", "transformer"}
    # a training on another dataset, newer: the default is now that dataset alone
    other = tracking.create_run(settings, "mlp-other", {tracking.Tag.KIND: "training", tracking.Tag.DATA: "other"})
    other.log_metrics({"test/acc": 0.5})
    other.set_status("FINISHED")
    assert [r.data.tags["mlflow.runName"] for r in find_runs("pipeline-test")] == ["mlp-other"]
    # the mlp scored on all 900 events of the tiny sample beside the bdt on its 135 test events
    paths = ",".join(str(sample_dir / f"{f}.parquet") for f in ("uds", "cc", "bb"))
    evaluate(_cfg("evaluate", [f"run_id={trained['mlp']['run_id']}", f"tracking.tracking_uri={store}",
                               "tracking.experiment_name=pipeline-test", f"data.paths=[{paths}]",
                               "data.name=all900", "split=all", "evaluate.plot_formats=[png]",
                               f"output_dir={tmp_path / 'all'}"]))
    child = mlflow.search_runs(filter_string="tags.flavortag.data = 'all900'",
                               experiment_names=["pipeline-test"], output_format="list")[0]
    with pytest.raises(UsageError, match=r"different test samples .*135 events.*900 events") as err:
        compare(_cfg("compare", [f"tracking.tracking_uri={store}", "tracking.experiment_name=pipeline-test",
                                 f"runs=[bdt,{child.info.run_id}]", f"output_dir={tmp_path / 'mixed'}"]))
    assert "\n" not in str(err.value) and "mixed_samples=warn" in str(err.value)
    assert not (tmp_path / "mixed").exists()  # refused before anything was written
