"""Issue 13: a jet tagger end to end on tiny ZH jets (light, c, b, g), and checkpoints keep their classes."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch

from tests.compose import compose_app

_cfg = compose_app


@pytest.fixture(scope="module")
def jet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from flavortag.generate.production import produce_samples

    out = tmp_path_factory.mktemp("zh_jets")
    produce_samples(out, 60, ["uds", "cc", "bb", "gg"], seed=3, sqrt_s_gev=250.0, workers=1,
                    chunk_size=60, progress=False, process="zh", n_jets=2)
    return out


@pytest.mark.slow
def test_jet_tagger_end_to_end(jet_dir: Path, tmp_path: Path) -> None:
    from flavortag.apps.evaluate import evaluate
    from flavortag.apps.train import train
    from flavortag.scoring.inference import load_model

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    paths = ",".join(str(jet_dir / f"{f}.parquet") for f in ("uds", "cc", "bb", "gg"))
    results = {}
    for model in ("bdt", "transformer"):
        overrides = [f"model={model}", "data=zh_jets", f"data.paths=[{paths}]", f"tracking.tracking_uri={store}",
                     f"output_dir={tmp_path / model}", "trainer.max_epochs=1", "evaluate.plot_formats=[png]", "trainer.batch_size=64",
                     "trainer.progress=false"]
        if model == "bdt":
            overrides.append("model.max_iter=10")
        else:  # a small transformer: the test is about the classes, not the network
            overrides += ["model.embed_dim=16", "model.depth=1", "model.class_depth=1", "model.embed_hidden=[16]",
                          "model.pair_hidden=[8]"]
        results[model] = train(_cfg("train", overrides))
    for result in results.values():
        metrics = result["metrics"]
        for name in ("test/rej_c_at_b80", "test/rej_light_at_c50", "test/rej_g_at_c50", "test/auc_g"):
            assert name in metrics and metrics[name] > 0
        assert not any("uds" in k for k in metrics if k.startswith("test/"))
    checkpoint = next((tmp_path / "transformer").rglob("best.pt"))
    model = load_model(str(checkpoint))
    assert model.class_names == ("light", "c", "b", "g") and model.n_classes == 4
    blob = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert blob["model"]["class_names"] == ["light", "c", "b", "g"]
    # two-jet events from both jets' scores, beside the per-jet metrics
    flat = evaluate(_cfg("evaluate", [f"checkpoint={checkpoint}", f"data.paths=[{paths}]", "split=all",
                                      "combine_jets=true", f"tracking.tracking_uri={store}", "evaluate.plot_formats=[png]",
                                      f"output_dir={tmp_path / 'eval'}"]))
    assert 0.0 < flat["events/acc"] <= 1.0 and "events/rej_g_at_c50" in flat
    assert (tmp_path / "eval" / "events" / "working_points.json").is_file()
    # compare lines the jet taggers up on their own classes, recomputed from their predictions
    from flavortag.apps.compare import compare

    compared = compare(_cfg("compare", [f"tracking.tracking_uri={store}", f"output_dir={tmp_path / 'cmp'}",
                                        "evaluate.plot_formats=[png]"]))
    from flavortag import tracking

    names = {tracking.get_run(r["run_id"]).data.tags["mlflow.runName"]: model for model, r in results.items()}
    assert set(compared) == set(names)
    header = (tmp_path / "cmp" / "comparison.txt").read_text().splitlines()[0].split()
    assert {"rej_light_at_c50", "rej_g_at_c50", "rej_c_at_b80", "auc_g"} <= set(header)
    assert not any("uds" in column for column in header)
    for name, flat_metrics in compared.items():
        logged = results[names[name]]["metrics"]
        assert flat_metrics["test/acc"] == pytest.approx(logged["test/acc"], abs=1e-6)
        for key in ("test/auc_g", "test/auc_light", "test/loss"):
            assert flat_metrics[key] == pytest.approx(logged[key], rel=1e-4), key
        finite = [k for k in ("test/rej_c_at_b80", "test/rej_light_at_c50") if np.isfinite(flat_metrics[k])]
        for key in finite:  # (an infinite rejection is logged as its 95% CL limit)
            assert flat_metrics[key] == pytest.approx(logged[key], rel=1e-4), key
    # an event tagger's run (logged metrics only) beside the jet runs: refused, naming the classes
    import mlflow

    with mlflow.start_run(run_name="event-tagger") as event_run:
        mlflow.log_metrics({"test/acc": 0.9, "test/auc_uds": 0.95, "test/auc_cc": 0.9, "test/auc_bb": 0.99})
    jet_ids = [r["run_id"] for r in results.values()]
    with pytest.raises(ValueError, match="mix event taggers") as refused:
        compare(_cfg("compare", [f"tracking.tracking_uri={store}", f"output_dir={tmp_path / 'cmp2'}",
                                 f"runs=[{jet_ids[0]},{event_run.info.run_id}]"]))
    assert "event-tagger (uds/cc/bb)" in str(refused.value) and "(light/c/b/g)" in str(refused.value)
    assert not (tmp_path / "cmp2").exists()  # refused before anything is written
    # exported (ONNX) jet tagger: its classes travel with it, Tagger scores per jet class
    import json

    from flavortag import Tagger
    from flavortag.apps.export import main as export_main
    from flavortag.io import read_events

    export_main([str(checkpoint), str(tmp_path / "exported"), "--formats", "onnx"])
    info = json.loads((tmp_path / "exported" / "tagger.json").read_text())
    assert info["class_names"] == ["light", "c", "b", "g"]
    jets = read_events(str(jet_dir / "bb.parquet"))[:40]
    onnx_scores = Tagger.from_exported(tmp_path / "exported").score(jets)
    torch_scores = Tagger.from_checkpoint(checkpoint).score(jets)
    assert ak.fields(onnx_scores) == ["prob_light", "prob_c", "prob_b", "prob_g", "D_b", "D_c"]
    for name in ak.fields(onnx_scores):
        np.testing.assert_allclose(np.asarray(onnx_scores[name]), np.asarray(torch_scores[name]),
                                   rtol=1e-4, atol=1e-4)


def test_old_checkpoints_without_class_names_are_event_taggers() -> None:
    from flavortag.models import build_model, checkpoint_state, model_from_checkpoint

    model = build_model({"name": "mlp"}, 4, 5)
    state = checkpoint_state(model)
    assert state["class_names"] == ["uds", "cc", "bb"]
    del state["class_names"]
    again = model_from_checkpoint(state)
    assert again.class_names == ("uds", "cc", "bb") and again.n_classes == 3
    jet = build_model({"name": "mlp"}, 4, 5, ("light", "c", "b", "g"))
    logits = jet.head(torch.zeros(2, jet.head[0].in_features)) if hasattr(jet, "head") else None
    state = checkpoint_state(jet)
    assert model_from_checkpoint(state).n_classes == 4
    assert logits is None or logits.shape == (2, 4)
    with pytest.raises(ValueError, match="differs from"):
        model_from_checkpoint({**state, "class_names": ["g", "b", "c", "light"]})
    assert np.asarray(state["state_dict"][[k for k in state["state_dict"] if k.endswith("weight")][-1]]).shape[0] == 4


def test_a_random_split_keeps_the_jets_of_an_event_together(jet_dir: Path) -> None:
    """Issue 25: jets split event by event (no event has a jet in training and one in the test), stratified."""
    from flavortag.dataset import DataSettings, event_groups, load_split_sample, split_indices

    paths = [str(jet_dir / f"{f}.parquet") for f in ("uds", "cc", "bb", "gg")]
    data = DataSettings.from_config({"paths": paths, "level": "jet", "classes": ["light", "c", "b", "g"],
                                     "split": {"train": 0.5, "val": 0.2, "test": 0.3}})
    sample = load_split_sample(data)
    jets = sample.events
    events = {(int(d), int(e)) for d, e in zip(jets["decay_class"], jets["event"])}
    split_of: dict[tuple[int, int], set[str]] = {}
    for name, idx in sample.indices.items():
        for d, e in zip(np.asarray(jets["decay_class"])[idx], np.asarray(jets["event"])[idx]):
            split_of.setdefault((int(d), int(e)), set()).add(name)
    assert set(split_of) == events and all(len(s) == 1 for s in split_of.values())
    assert sorted(np.concatenate(list(sample.indices.values())).tolist()) == list(range(len(jets)))
    n_events = len(events)  # 240 events of 2 jets: the fractions hold for events, within rounding per class
    for name, fraction in (("train", 0.5), ("val", 0.2), ("test", 0.3)):
        assert abs(sum(s == {name} for s in split_of.values()) - fraction * n_events) <= 4, name
    # event records have no groups: their split is the record-by-record one, as before
    assert event_groups(ak.Array({"label": [0, 1]})) is None
    labels = np.repeat([0, 1, 2], 50)
    plain = split_indices(labels, {"train": 0.6, "val": 0.2, "test": 0.2}, 7)
    assert [len(plain[n]) for n in ("train", "val", "test")] == [90, 30, 30]
