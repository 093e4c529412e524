"""Issue 21: no file flavortag loads can run code; broken and missing checkpoints are named.

Each load path (predict from a checkpoint, ``Tagger.load``, a BDT file, a
training resume, a model logged in MLflow) is fed a booby-trapped file whose
unpickling would create a marker file: each refuses with a clear error, and
the marker never appears.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import mlflow
import mlflow.pytorch
import numpy as np
import pytest
import torch

import flavortag
from flavortag.safe_load import (
    CorruptCheckpointError,
    UnsafeFileError,
    convert_trusted,
    load_bdt,
    load_model_file,
)
from tests.compose import compose_app


class _Trap:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


_cfg = compose_app


@pytest.fixture()
def marker(tmp_path: Path) -> Path:
    return tmp_path / "TRAP_SPRUNG"


def _evil_torch(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {"config": {"name": "mlp"}, "state_dict": _Trap(marker)}}, path)
    return path


def test_the_trap_is_real(tmp_path: Path, marker: Path) -> None:
    """Unsafe loading of the trap does create the marker (so its absence below means something)."""
    path = _evil_torch(tmp_path / "evil.pt", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_predict_from_a_booby_trapped_checkpoint_is_refused(tmp_path: Path, marker: Path,
                                                            sample_dir: Path) -> None:
    from flavortag.apps.predict import predict

    evil = _evil_torch(tmp_path / "evil" / "best.pt", marker)
    cfg = _cfg("predict", [f"checkpoint={evil}", f"inputs=[{sample_dir / 'bb.parquet'}]",
                           f"out_dir={tmp_path / 'out'}"])
    with pytest.raises(UnsafeFileError, match=re.escape(f"{evil}: refused: loading it would need "
                                                        "Python pickle")) as err:
        predict(cfg)
    assert "posix.system" in str(err.value) and f"flavortag trust {evil}" in str(err.value)
    assert not marker.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_tagger_load_of_a_booby_trapped_file_is_refused(tmp_path: Path, marker: Path) -> None:
    evil = _evil_torch(tmp_path / "evil" / "tagger.pt", marker)
    with pytest.raises(UnsafeFileError, match="refused"):
        flavortag.Tagger.load(evil)
    assert not marker.exists()


def test_a_pickled_bdt_is_refused_and_a_skops_file_with_foreign_types_too(tmp_path: Path,
                                                                           marker: Path) -> None:
    evil = tmp_path / "evil" / "bdt.pkl"
    evil.parent.mkdir()
    evil.write_bytes(pickle.dumps(_Trap(marker)))
    with pytest.raises(UnsafeFileError, match=re.escape(f"{evil}: refused: a pickle file can run any code")):
        load_model_file(evil)
    with pytest.raises(UnsafeFileError):
        flavortag.Tagger.load(evil)
    assert not marker.exists()

    # a skops file may only hold the BDT's own types: an estimator of another kind is refused
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    foreign = tmp_path / "foreign.skops"
    sio.dump(FunctionTransformer(func=os.system), str(foreign))
    with pytest.raises(UnsafeFileError, match=r"holds types that are not a flavortag BDT's \(posix.system\)"):
        load_bdt(foreign)
    other = tmp_path / "other.skops"
    sio.dump(FunctionTransformer(func=np.exp), str(other))
    with pytest.raises(CorruptCheckpointError, match="not a flavortag BDT"):
        load_bdt(other)


def test_resume_from_a_booby_trapped_checkpoint_is_refused_before_training(
        tmp_path: Path, marker: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import flavortag.pipelines.train as job_module
    from flavortag.apps.train import train

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("read data before refusing the checkpoint")

    monkeypatch.setattr(job_module, "prepare_data", forbidden)
    evil = _evil_torch(tmp_path / "evil" / "resume.pt", marker)
    paths = ",".join(str(sample_dir / f"{f}.parquet") for f in ("uds", "cc", "bb"))
    cfg = _cfg("train", ["model=mlp", f"data.paths=[{paths}]", f"output_dir={tmp_path / 'run'}",
                         f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
                         f"trainer.resume={evil}", "trainer.progress=false"])
    with pytest.raises(UnsafeFileError, match=re.escape(str(evil))):
        train(cfg)
    assert not marker.exists()


def test_a_logged_model_whose_weights_were_replaced_is_refused(tmp_path: Path, marker: Path,
                                                               sample_dir: Path) -> None:
    from flavortag.apps.predict import predict
    from flavortag.apps.train import train
    from flavortag.scoring.inference import load_model

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    paths = ",".join(str(sample_dir / f"{f}.parquet") for f in ("uds", "cc", "bb"))
    result = train(_cfg("train", [
        "model=mlp", f"data.paths=[{paths}]", f"output_dir={tmp_path / 'run'}",
        f"tracking.tracking_uri={store}", "trainer.max_epochs=1", "trainer.max_steps_per_epoch=2",
        "trainer.batch_size=32", "trainer.progress=false", "data.max_tracks=16",
        "evaluate_after_training=false"]))
    run_id = result["run_id"]
    mlflow.set_tracking_uri(store)
    # the logged model holds a data-only weights file and code, no pickle of the model
    model_dir = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model",
                                                         dst_path=str(tmp_path / "dl")))
    logged = sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file())
    assert "artifacts/checkpoint.pt" in logged
    assert not [p for p in logged if p.endswith((".pkl", ".pth", "model.pt2"))]
    torch.load(model_dir / "artifacts" / "checkpoint.pt", weights_only=True)
    honest = load_model(run_id)
    assert honest.feature_names["track"] and honest.class_names == ("uds", "cc", "bb")
    # MLflow's own loader runs the logged code (not a pickle) and scores files through Tagger
    scores = mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict([str(sample_dir / "bb.parquet")])
    assert len(scores) == 300 and {"prob_uds", "prob_cc", "prob_bb", "D_b", "D_c"} == set(scores[0])
    probs = np.array([[s["prob_uds"], s["prob_cc"], s["prob_bb"]] for s in scores])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, honest_tagger_probs(honest, sample_dir), atol=1e-6)

    # someone replaces the weights file in the store
    stored = [p for p in (tmp_path).rglob("checkpoint.pt") if "mlartifacts" in p.parts or "mlruns" in p.parts]
    assert len(stored) == 1, stored
    _evil_torch(stored[0], marker)
    with pytest.raises(UnsafeFileError, match="refused"):
        predict(_cfg("predict", [f"run_id={run_id}", f"inputs=[{sample_dir / 'bb.parquet'}]",
                                 f"tracking.tracking_uri={store}", f"out_dir={tmp_path / 'out'}"]))
    with pytest.raises(UnsafeFileError):
        flavortag.Tagger.from_run(run_id, tracking_uri=store)
    assert not marker.exists()

    # a model logged with MLflow's pickle flavour (as flavortag did before) is refused unread
    with mlflow.start_run() as run:
        mlflow.pytorch.log_model(honest, name="model", serialization_format="pickle",
                                 pip_requirements=["torch"])
    with pytest.raises(UnsafeFileError, match=r"logged with pickle \(.*pytorch.*flavour\)"):
        load_model(run.info.run_id)


def honest_tagger_probs(model, sample_dir: Path) -> np.ndarray:
    from flavortag.io import read_events

    return flavortag.Tagger.from_model(model, device="cpu").predict_proba(read_events(sample_dir / "bb.parquet"))


def test_truncated_checkpoint_names_the_file_and_offers_best_pt(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    torch.save({"model": {"weights": torch.zeros(2000)}}, ckpt / "best.pt")
    blob = (ckpt / "best.pt").read_bytes()
    (ckpt / "last.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CorruptCheckpointError) as err:
        load_model_file(ckpt / "last.pt")
    message = str(err.value)
    assert message.startswith(f"{ckpt / 'last.pt'}: not a readable checkpoint, truncated or corrupt")
    assert "use best.pt beside it" in message and "start a fresh run" in message
    assert "\n" not in message


def test_a_missing_checkpoint_path_is_reported_as_a_missing_file(tmp_path: Path) -> None:
    from flavortag.scoring.inference import load_model

    missing = tmp_path / "nope" / "best.pt"
    with pytest.raises(FileNotFoundError, match=re.escape(f"checkpoint {missing} not found")):
        load_model(str(missing))
    with pytest.raises(FileNotFoundError, match="not found"):
        load_model("best.pt")  # a bare file name is a file too, not a run id


def test_trust_converts_an_old_trusted_bdt_and_checkpoint(tmp_path: Path) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from flavortag.cli import main

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(300, 4)), rng.integers(0, 3, 300)
    clf = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(x, y)
    clf.feature_names = {"track": [], "event": ["a", "b", "c", "d"]}
    clf.class_names = ("uds", "cc", "bb")
    old = tmp_path / "bdt.pkl"
    old.write_bytes(pickle.dumps(clf))
    assert main(["trust", str(old)]) == 0
    safe = load_model_file(tmp_path / "bdt.skops")
    np.testing.assert_array_equal(safe.predict_proba(x), clf.predict_proba(x))
    assert safe.feature_names == clf.feature_names

    # an old torch checkpoint with Python objects (a numpy scalar) in its metadata
    legacy = tmp_path / "legacy.pt"
    torch.save({"model": {"w": torch.ones(3)}, "train_state": {"best_val_loss": np.float64(0.5)}}, legacy)
    with pytest.raises(UnsafeFileError):
        load_model_file(legacy)
    converted = convert_trusted(legacy)
    blob = torch.load(converted, weights_only=True)
    assert blob["train_state"]["best_val_loss"] == 0.5 and torch.equal(blob["model"]["w"], torch.ones(3))
