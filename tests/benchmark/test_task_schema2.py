"""Issue 27, schema 2: shifted test sets (tiny-robust-v1), a jet task (tiny-jets-v1), real Pythia."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flavortag.apps.benchmark import main as benchmark_main
from flavortag.benchmark import load_task
from flavortag.benchmark.make import (
    ChecksumError,
    event_ids,
    file_sha256,
    make_dataset,
    plan_files,
    read_manifest,
    task_sha256,
)
from flavortag.benchmark.score import (
    PredictionError,
    paired_nominal_ids,
    score_predictions,
    split_truth,
)
from flavortag.benchmark.task import TaskError
from flavortag.classes import class_scheme
from flavortag.metrics import evaluate_predictions

HERE = Path(__file__).parent
ROBUST, JETS = HERE / "tiny-robust-v1.yaml", HERE / "tiny-jets-v1.yaml"
#: sha256 of zpole-3class-ild-v1's content when its full dataset was made (docs/BENCHMARK.md): schema 2
#: must not change what a schema-1 file means.
ZPOLE_V1_SHA256 = "0f40005eca16a387d0cdf8c2520c4e59f435ac1358e7f8a3b19f3aea4100e91c"


def _make(task_file: Path, out: Path) -> Path:
    assert benchmark_main(["make", str(task_file), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def robust(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make(ROBUST, tmp_path_factory.mktemp("bench2") / "tiny-robust-v1")


@pytest.fixture(scope="module")
def jets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make(JETS, tmp_path_factory.mktemp("bench2") / "tiny-jets-v1")


def _noisy(labels: np.ndarray, n_classes: int, seed: int, strength: float = 1.5) -> np.ndarray:
    logits = strength * np.eye(n_classes)[labels] + np.random.default_rng(seed).normal(size=(len(labels), n_classes))
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def _write(path: Path, ids: np.ndarray, probs: np.ndarray, names: tuple[str, ...]) -> Path:
    pq.write_table(pa.table({"event_id": ids, **{f"prob_{n}": probs[:, k] for k, n in enumerate(names)}}), path)
    return path


def test_schema_1_files_keep_their_meaning_and_robustness_shares_zpole_files():
    v1, robust = load_task("zpole-3class-ild-v1"), load_task("zpole-robustness-v1")
    assert v1.schema == 1 and robust.schema == 2 and task_sha256(v1) == ZPOLE_V1_SHA256
    nominal = plan_files(v1)
    plan = plan_files(robust)
    assert plan[:len(nominal)] == nominal  # same chunks, names and ids: the same bytes as zpole-3class-ild-v1
    shifted = plan[len(nominal):]
    assert [v.name for v in robust.test_variants] == ["ip_res_1p5", "ip_tails", "fakes", "other_tune", "track_eff"]
    assert len(shifted) == 5 * 3 * 2 and sum(f.n_events for f in shifted) == 5 * 3 * 40_000
    by_split = {f.split: f.chunks[0] for f in shifted}
    assert by_split["shifted/ip_res_1p5"].detector.ip_resolution_scale == 1.5
    assert by_split["shifted/ip_tails"].detector.ip_tail_fraction == 0.05
    assert by_split["shifted/fakes"].detector.fake_tracks_per_event == 1.0
    assert by_split["shifted/track_eff"].detector.track_efficiency == 0.95
    assert by_split["shifted/other_tune"].pythia_extra == ("Tune:ee = 3",)
    assert by_split["shifted/other_tune"].detector == v1.detector
    jets = load_task("zh-jets-ild-v1")
    assert jets.n_jets == 2 and jets.flavours == ("uds", "cc", "bb", "gg")
    assert 2 * jets.splits["test"] >= 100_000  # jets of each forced decay in the test split


@pytest.mark.parametrize("change, message", [
    ({"schema": 1}, r"unknown keys \['test_variants'\] for task schema 1"),
    ({"schema": 3}, "task schema 3 is not one this flavortag reads"),
    ({"test_variants": {"bad": {"events": 25, "detector": {"ip_scale": 2}}}}, "test_variants.bad: detector"),
    ({"test_variants": {"big": {"events": 75, "detector": {"ip_resolution_scale": 2}}}}, "at most the test split"),
    ({"test_variants": {"same": {"events": 25}}}, "changes neither the detector nor the Pythia settings"),
])
def test_task_file_errors_name_the_file(tmp_path, change, message):
    import yaml

    raw = yaml.safe_load(ROBUST.read_text())
    raw.update(change)
    path = tmp_path / "tiny-robust-v1.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(TaskError, match=message) as err:
        load_task(path)
    assert str(path) in str(err.value)


def test_shifted_sets_are_the_test_events_seen_differently(robust):
    from flavortag.io import read_events

    manifest = read_manifest(robust)
    assert set(manifest["splits"]) == {"test", "val", "train", "shifted/ip_res_1p5", "shifted/fakes",
                                       "shifted/other_tune"}
    ids = {s: np.concatenate([pq.read_table(robust / n, columns=["event_id"])["event_id"].to_numpy()
                              for n in part["files"]]) for s, part in manifest["splits"].items()}
    every = np.concatenate(list(ids.values()))
    assert len(np.unique(every)) == len(every) == 3 * (50 + 25 + 25 + 3 * 25)
    task = load_task(ROBUST)
    nominal = read_events(str(robust / "test/bb-00000-of-00002.parquet"))  # chunk 0 of bb
    assert set(paired_nominal_ids(task, task.variant("fakes"))) <= set(ids["test"])
    wide = read_events(str(robust / "shifted/ip_res_1p5/bb.parquet"))
    tune = read_events(str(robust / "shifted/other_tune/bb.parquet"))
    fakes = read_events(str(robust / "shifted/fakes/bb.parquet"))
    # a detector variant: the same Pythia particles, reconstructed with 1.5x wider impact parameters
    np.testing.assert_array_equal(ak.flatten(wide.tracks.pdg), ak.flatten(nominal.tracks.pdg))
    np.testing.assert_array_equal(ak.flatten(wide.tracks.vx), ak.flatten(nominal.tracks.vx))
    prompt = ak.flatten(nominal.tracks.origin) == 0
    d0 = [np.hypot(ak.flatten(e.tracks.x), ak.flatten(e.tracks.y))[prompt] for e in (nominal, wide)]
    assert 1.3 < np.median(d0[1]) / np.median(d0[0]) < 1.7
    assert int(ak.sum(fakes.tracks.origin == -1)) > 25  # two fakes per event on average
    assert len(ak.flatten(tune.tracks.pdg)) != len(ak.flatten(nominal.tracks.pdg))  # other Pythia events
    card = json.loads((robust / "datacard.json").read_text())
    assert [v["name"] for v in card["test_variants"]] == ["ip_res_1p5", "fakes", "other_tune"]
    assert card["test_variants"][0]["detector_changes"] == {"ip_resolution_scale": 1.5}
    labels = np.asarray(fakes.label)
    heaviest = ak.to_numpy(ak.max(fakes.tracks.origin, axis=1, initial=0, mask_identity=False)).clip(0, 2)
    assert card["label_purity"]["shifted/fakes"]["bb"]["purity"] == pytest.approx(np.mean(heaviest[labels == 2] == 2))
    assert "## Shifted test sets" in (robust / "datacard.md").read_text()


@pytest.mark.parametrize("task_file, victims", [
    (ROBUST, ["shifted/other_tune/cc.parquet", "test/uds-00001-of-00002.parquet"]),
    (JETS, ["test/gg-00001-of-00002.parquet"]),
])
def test_remaking_the_new_tasks_reproduces_their_checksums(task_file, victims, robust, jets, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(robust if task_file == ROBUST else jets, copy)
    before = {v: read_manifest(copy)["files"][v]["sha256"] for v in victims}
    for v in victims:
        (copy / v).unlink()
    result = make_dataset(load_task(task_file), copy, workers=1, progress=False)
    assert sorted(result.made) == sorted(victims)
    assert {v: file_sha256(copy / v) for v in victims} == before


def test_score_reports_each_shifted_set_and_the_fraction_kept(robust, tmp_path):
    task = load_task(ROBUST)
    truth = {s: split_truth(task, robust, s) for s in task.scored_splits()}
    # a weak tagger: finite rejections even with 25 background events per class
    probs = {s: _noisy(lab, 3, k, strength=0.6) for k, (s, (_, lab)) in enumerate(truth.items())}
    files = [_write(tmp_path / f"{s.replace('/', '_')}.parquet", ids, probs[s], task.classes)
             for s, (ids, _) in truth.items()]
    score = score_predictions(task, robust, files)
    assert score.n_events_by_split == {"test": 150, "shifted/ip_res_1p5": 75, "shifted/fakes": 75,
                                       "shifted/other_tune": 75}

    def direct(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
        return evaluate_predictions(p, y, f_c=0.22, f_b=0.26, curve_efficiencies=None).flat_metrics("")

    test_ids, test_labels = truth["test"]
    nominal = direct(probs["test"], test_labels)
    assert score.figures["rej_uds_at_b70"] == pytest.approx(nominal["rej_uds_at_b70"])
    kept = []
    for v in task.test_variants:
        shifted = direct(probs[v.split], truth[v.split][1])
        mask = np.isin(test_ids, paired_nominal_ids(task, v))
        assert mask.sum() == 75  # the first chunk of each class
        paired = direct(probs["test"][mask], test_labels[mask])
        for f in ("rej_uds_at_b70", "acc"):
            assert score.figures[f"{v.name}/{f}"] == pytest.approx(shifted[f])
            assert score.figures[f"{v.name}/nominal_{f}"] == pytest.approx(paired[f])
            assert math.isfinite(shifted[f] / paired[f])
            assert score.figures[f"{v.name}/kept_{f}"] == pytest.approx(shifted[f] / paired[f])
        kept.append(shifted["rej_uds_at_b70"] / paired["rej_uds_at_b70"])
        err = score.figures[f"{v.name}/kept_acc_err"]
        r = shifted["acc"] / paired["acc"]
        assert err == pytest.approx(r * math.hypot(math.sqrt(shifted["acc"] * (1 - shifted["acc"]) / 75) / shifted["acc"],
                                                    math.sqrt(paired["acc"] * (1 - paired["acc"]) / 75) / paired["acc"]))
    assert score.headline["mean_kept_rej_uds_at_b70"][0] == pytest.approx(np.mean(kept))
    from flavortag.benchmark.leaderboard import leaderboard_markdown
    from flavortag.benchmark.score import Submission

    table = leaderboard_markdown(task, [Submission("noisy", "noise", json.loads(json.dumps(score.to_dict())))])
    assert "| mean_kept_rej_uds_at_b70 | rej_uds_at_b70 | ip_res_1p5/kept_acc | acc |" in table
    assert "| 1 | noisy | noise |" in table
    with pytest.raises(PredictionError, match=r"75 of the 375 test events missing \(shifted/fakes: 75\)"):
        score_predictions(task, robust, [f for f in files if "fakes" not in f.name])


def test_jet_task_ids_labels_and_scores(jets, tmp_path):
    from flavortag.io import read_events

    task = load_task(JETS)
    manifest = read_manifest(jets)
    assert len(manifest["files"]) == 4 * (2 + 1 + 1)
    events = read_events(str(jets / "test/cc-00001-of-00002.parquet"))  # chunk 1 of H -> cc: 25 events, 50 jets
    assert len(events) == 50
    position = np.asarray(events.event) % 25 * 2 + np.asarray(events.jet)
    np.testing.assert_array_equal(np.asarray(events.event_id), event_ids(task.seed, "cc", 1, 50)[position])
    assert set(np.asarray(events.label)) <= {0, 1, 2} and np.mean(np.asarray(events.label) == 1) > 0.5
    card = json.loads((jets / "datacard.json").read_text())
    test = read_events([str(jets / n) for n in manifest["splits"]["test"]["files"]])
    labels = np.asarray(test.label)
    heaviest = ak.to_numpy(ak.max(test.tracks.origin, axis=1, initial=0, mask_identity=False)).clip(0, 2)
    for code, name in enumerate(("light", "c", "b", "g")):
        row = card["label_purity"]["test"][name]
        assert row["events"] == int(np.sum(labels == code))
        assert row["purity"] == pytest.approx(np.mean(heaviest[labels == code] == (code if code < 3 else 0)))
    assert card["composition"]["test"]["classes"]["gg"]["events"] == 100  # jets of H -> gg

    ids, truth_labels = split_truth(task, jets)
    probs = _noisy(truth_labels, 4, 5)
    score = score_predictions(task, jets, [_write(tmp_path / "jets.parquet", ids, probs, task.classes)])
    expected = evaluate_predictions(probs, truth_labels, f_c=0.22, f_b=0.26, curve_efficiencies=None,
                                    scheme=class_scheme(["light", "c", "b", "g"])).flat_metrics("")
    assert score.n_events == 400
    for name in ("rej_c_at_b80", "rej_light_at_c50", "rej_g_at_c50", "acc"):
        assert score.headline[name][0] == pytest.approx(expected[name])
    with pytest.raises(PredictionError, match=r"no column\(s\) \['prob_g'\]"):
        score_predictions(task, jets, [_write(tmp_path / "three.parquet", ids, probs[:, :3], task.classes[:3])])


def test_score_of_real_predict_output_equals_the_metrics_of_its_probabilities(robust, tmp_path, mlflow_uri):
    """Train a tiny tagger on the task's train split, `flavortag predict` every scored split, score it."""
    from hydra import compose, initialize_config_dir

    from flavortag.apps import CONFIG_DIR
    from flavortag.apps.predict import predict
    from flavortag.apps.train import train
    from flavortag.benchmark.score import format_score
    from flavortag.io import read_events

    def cfg(app: str, overrides: list[str]):
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return compose(config_name=app, overrides=overrides)

    task = load_task(ROBUST)
    manifest = read_manifest(robust)
    files = ",".join(str(robust / n) for s in ("train", "val") for n in manifest["splits"][s]["files"])
    train(cfg("train", [
        "model=deepsets", f"data.paths=[{files}]",
        f"tracking.tracking_uri={mlflow_uri}", "tracking.experiment_name=bench-predict",
        "evaluate_after_training=false",
        f"output_dir={tmp_path / 'train'}", "trainer.max_epochs=1", "trainer.batch_size=32", "trainer.progress=false",
        "data.max_tracks=16", "model.phi_dims=[8]", "model.rho_dims=[8]", "evaluate.write_predictions=false"]))
    copies = {split: [tmp_path / "data" / n for n in manifest["splits"][split]["files"]]
              for split in task.scored_splits()}  # predict writes <stem>.flavortag.parquet beside each copy
    for name in (n for files in copies.values() for n in files):
        name.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(robust / name.relative_to(tmp_path / "data"), name)
    written = predict(cfg("predict", [f"checkpoint={tmp_path / 'train/checkpoints/best.pt'}", "formats=[parquet]",
                                      f"inputs=[{','.join(str(n) for files in copies.values() for n in files)}]"]))
    outputs = {split: [n.with_name(n.name.replace(".parquet", ".flavortag.parquet")) for n in files]
               for split, files in copies.items()}
    assert sorted(written) == sorted(n for files in outputs.values() for n in files)
    score = score_predictions(task, robust, [p for paths in outputs.values() for p in paths])

    def direct(split: str) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
        events = read_events([str(p) for p in outputs[split]])
        probs = np.stack([np.asarray(events[f"prob_{c}"], np.float64) for c in task.classes], axis=1)
        ids, labels = np.asarray(events.event_id), np.asarray(events.label)
        return (evaluate_predictions(probs, labels, f_c=0.22, f_b=0.26, curve_efficiencies=None).flat_metrics(""),
                probs, np.stack([ids, labels], axis=1))

    nominal, probs, id_label = direct("test")
    for name in ("acc", "loss", "auc_bb", "rej_uds_at_b70", "rej_c_at_b70", "rej_uds_at_c50", "rej_b_at_c50"):
        assert score.figures[name] == pytest.approx(nominal[name], rel=1e-9, nan_ok=True), name
    fakes, _, _ = direct("shifted/fakes")
    mask = np.isin(id_label[:, 0], paired_nominal_ids(task, task.variant("fakes")))
    paired = evaluate_predictions(probs[mask], id_label[mask, 1], curve_efficiencies=None).flat_metrics("")
    assert score.figures["fakes/acc"] == pytest.approx(fakes["acc"])
    assert score.figures["fakes/kept_acc"] == pytest.approx(fakes["acc"] / paired["acc"])
    assert "fakes/kept_acc" in format_score(score, task)


def test_make_reuses_another_tasks_identical_files(robust, tmp_path):
    import yaml

    # a schema-1 task with tiny-robust-v1's nominal splits (same seed, chunks, detector): its own make
    raw = yaml.safe_load(ROBUST.read_text())
    for key in ("schema", "test_variants"):
        del raw[key]
    raw["name"], raw["metrics"] = "tiny-nominal-v1", {**raw["metrics"], "headline": ["acc"]}
    del raw["metrics"]["robustness"]
    nominal_file = tmp_path / "tiny-nominal-v1.yaml"
    nominal_file.write_text(yaml.safe_dump(raw))
    nominal = _make(nominal_file, tmp_path / "nominal")
    task, out = load_task(ROBUST), tmp_path / "reused"
    assert benchmark_main(["make", str(ROBUST), "--out", str(out), "--reuse", str(nominal), "--workers", "1",
                           "--no-progress"]) == 0
    generated, got = read_manifest(robust), read_manifest(out)
    assert got == generated  # every file, split fingerprint and purity count as when all were generated
    shared = set(read_manifest(nominal)["files"])
    assert len(shared) == 3 * 4 and shared < set(got["files"])
    for name in shared:  # linked, not generated: the nominal dataset's very bytes
        assert (out / name).samefile(nominal / name)
    run = yaml.safe_load((out / "generation.yaml").read_text())["make_runs"][0]
    assert run["reused_files"] == 12 and run["made_files"] == len(plan_files(task)) - 12
    # a reused file whose bytes differ from its source's record is refused, naming the source file
    victim = "test/cc-00001-of-00002.parquet"
    (out / victim).unlink()
    (nominal / victim).unlink()
    (nominal / victim).write_bytes(b"not parquet")
    with pytest.raises(ChecksumError, match=f"{nominal / victim}: sha256 .* not the one recorded"):
        make_dataset(task, out, workers=1, progress=False, reuse=[nominal])
    assert not (out / victim).exists()
