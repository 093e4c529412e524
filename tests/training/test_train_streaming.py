"""Streaming training (``data.streaming=true``): training events read from files each epoch.

The session sample (300 events per class) is split into three mixed training
files of 200 events each (shuffled together, as streamed training files
should be), a validation file and a test file of 50 events per class each.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import awkward as ak
import mlflow
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import flavortag.training.loop as train_module
from flavortag.apps import CONFIG_DIR
from flavortag.apps.train import train
from tests.compose import compose_app

N_TRAIN_PER_CLASS = 200
N_TRAIN = 3 * N_TRAIN_PER_CLASS


@pytest.fixture(scope="module")
def split_files(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    from flavortag.io import read_events, write_events

    out = tmp_path_factory.mktemp("streaming_files")
    per_class = [read_events(str(sample_dir / f"{f}.parquet")) for f in ("uds", "cc", "bb")]
    train_events = ak.concatenate([e[:N_TRAIN_PER_CLASS] for e in per_class])
    train_events = train_events[np.random.default_rng(7).permutation(len(train_events))]
    files: dict[str, list[Path]] = {"train": [], "val": [], "test": []}
    for i, part in enumerate(np.array_split(np.arange(len(train_events)), 3)):
        files["train"].append(write_events(train_events[part], out / f"train_{i}.parquet"))
    middle = N_TRAIN_PER_CLASS + (len(per_class[0]) - N_TRAIN_PER_CLASS) // 2
    files["val"].append(write_events(ak.concatenate([e[N_TRAIN_PER_CLASS:middle] for e in per_class]),
                                     out / "val.parquet"))
    files["test"].append(write_events(ak.concatenate([e[middle:] for e in per_class]),
                                      out / "test.parquet"))
    return files


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow_streaming') / 'mlflow.db'}"


def _listing(paths: list[Path]) -> str:
    return "[" + ",".join(str(p) for p in paths) + "]"


def _overrides(files: dict[str, list[Path]], store: str, out: Path, test: bool = True) -> list[str]:
    return [
        "model=deepsets", "data.streaming=true", "data.step_size=64", "data.shuffle_buffer=256",
        f"data.paths={_listing(files['train'])}", f"data.val_paths={_listing(files['val'])}",
        f"data.test_paths={_listing(files['test'])}" if test else "data.test_paths=null",
        "data.normalisation_events=300", "data.max_tracks=32",
        f"tracking.tracking_uri={store}", "tracking.experiment_name=streaming-test", f"output_dir={out}",
        "trainer.max_epochs=2", "trainer.batch_size=32", "trainer.lr=3e-3", "trainer.progress=false",
        "trainer.early_stopping_patience=10",
    ]


def _cfg(overrides: list[str]) -> DictConfig:
    return compose_app("train", overrides)


def test_streaming_run_sees_every_event_once_per_epoch(split_files: dict[str, list[Path]], store: str,
                                                       tmp_path: Path) -> None:
    result = train(_cfg(_overrides(split_files, store, tmp_path / "run")))
    history = result["history"]
    assert history["train/events"] == [N_TRAIN, N_TRAIN]
    assert len(history["val/loss"]) == 2 and all(np.isfinite(history["val/loss"]))
    mlflow.set_tracking_uri(store)
    run = mlflow.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["n_train_events"] == str(N_TRAIN)
    assert run.data.params["n_val_events"] == "150"
    assert run.data.params["n_test_events"] == "150"
    steps = [m.step for m in mlflow.MlflowClient().get_metric_history(result["run_id"], "val/loss")]
    assert steps == [1, 2]
    # evaluated on the test files: above chance (1/3)
    assert result["metrics"]["test/acc"] > 0.45
    assert run.data.metrics["test/acc"] == pytest.approx(result["metrics"]["test/acc"])
    # `flavortag evaluate run_id=...` of a streaming run scores its test files: same accuracy
    from flavortag.apps.evaluate import evaluate

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        eval_cfg = compose(config_name="evaluate", overrides=[
            f"run_id={result['run_id']}", f"tracking.tracking_uri={store}",
            f"tracking.experiment_name={run.data.tags.get('mlflow.experimentName', 'streaming-test')}",
            f"output_dir={tmp_path / 'eval'}"])
    flat = evaluate(eval_cfg)
    assert flat["test/acc"] == pytest.approx(result["metrics"]["test/acc"], abs=1e-9)


def test_streaming_needs_validation_files(split_files: dict[str, list[Path]], store: str,
                                          tmp_path: Path) -> None:
    cfg = _cfg([*_overrides(split_files, store, tmp_path), "data.val_paths=null"])
    with pytest.raises(ValueError, match="data.val_paths"):
        train(cfg)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["model"]["state_dict"]


@pytest.mark.parametrize("where", ["mid_epoch", "epoch_end"])
def test_streaming_resume_matches_an_uninterrupted_run(split_files: dict[str, list[Path]], store: str,
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       where: str) -> None:
    base = [*_overrides(split_files, store, tmp_path / "whole", test=False), "evaluate_after_training=false",
            "trainer.checkpoint_every_steps=0"]
    whole = train(_cfg(base))

    # the job dies at the first (mid_epoch: after checkpoints at steps 7, 14) or second validation
    ckpt_every = 7 if where == "mid_epoch" else 0
    resumed_dir = tmp_path / "resumed"
    overrides = [*_overrides(split_files, store, resumed_dir, test=False), "evaluate_after_training=false",
                 f"trainer.checkpoint_every_steps={ckpt_every}"]
    real_evaluate = train_module._evaluate_loss
    calls = {"n": 0}
    die_at = 1 if where == "mid_epoch" else 2

    def dying_evaluate(*args: object, **kwargs: object) -> tuple[float, float]:
        calls["n"] += 1
        if calls["n"] == die_at:
            raise RuntimeError("killed")
        return real_evaluate(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(train_module, "_evaluate_loss", dying_evaluate)
    with pytest.raises(RuntimeError, match="killed"):
        train(_cfg(overrides))
    state = torch.load(resumed_dir / "checkpoints" / "last.pt", map_location="cpu",
                       weights_only=True)["train_state"]
    assert (state["epoch"], state["step_in_epoch"]) == ((0, 14) if where == "mid_epoch" else (1, 0))
    monkeypatch.setattr(train_module, "_evaluate_loss", real_evaluate)

    again = train(_cfg([*overrides, "trainer.resume=auto"]))
    assert again["run_id"] == state["run_id"]
    assert again["history"]["train/events"] == [N_TRAIN, N_TRAIN]
    final = _weights(resumed_dir)
    reference = _weights(tmp_path / "whole")
    assert final.keys() == reference.keys()
    for key in final:
        torch.testing.assert_close(final[key], reference[key], rtol=0, atol=0)
    assert again["history"]["val/loss"] == pytest.approx(whole["history"]["val/loss"], abs=0)


@pytest.mark.slow
def test_streaming_ddp_two_ranks(split_files: dict[str, list[Path]], tmp_path: Path) -> None:
    """Ranks get different shares of the stream; they still take the same steps and end identical."""
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "ddp"
    args = [a for a in _overrides(split_files, store, run_dir) if not a.startswith("output_dir=")]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                "--master_port=29534", "-m", "flavortag.train"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*torchrun, "trainer=ddp", *args, f"hydra.run.dir={run_dir}",
                             "trainer.save_rank_weights=true", "evaluate_after_training=false"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    w0 = torch.load(run_dir / "weights_rank0.pt", weights_only=True)
    w1 = torch.load(run_dir / "weights_rank1.pt", weights_only=True)
    for key in w0:
        torch.testing.assert_close(w0[key], w1[key], rtol=0, atol=0)
    state = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["train_state"]
    assert state["history"]["train/events"] == [N_TRAIN, N_TRAIN]
