"""The training app as a user runs it: the CLI in a subprocess, kill -9 and resume, DDP with torchrun."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch


def _base_args(sample_dir: Path, store: str, run_dir: Path) -> list[str]:
    paths = ",".join(str(sample_dir / f"{f}.parquet") for f in ("uds", "cc", "bb"))
    return [f"data.paths=[{paths}]", f"tracking.tracking_uri={store}", "tracking.experiment_name=resume-test",
            f"hydra.run.dir={run_dir}", "trainer.progress=false", "data.max_tracks=32",
            "evaluate_after_training=false"]


def test_kill9_mid_epoch_then_resume_continues_the_run(sample_dir: Path, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "run"
    # a small transformer: the test is about the resume, not the network
    args = [sys.executable, "-m", "flavortag", "train", "model=transformer", "model.embed_dim=16", "model.depth=1",
            "model.class_depth=1", "model.embed_hidden=[16]", "model.pair_hidden=[8]", "trainer.max_epochs=3",
            "trainer.batch_size=16", "trainer.checkpoint_every_steps=5",
            "trainer.early_stopping_patience=10", *_base_args(sample_dir, store, run_dir)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = run_dir / "checkpoints" / "last.pt"
    killed_at = None
    deadline = time.time() + 600  # a loaded machine (CI) may take minutes to reach epoch 2
    try:
        while time.time() < deadline and proc.poll() is None:
            if last.exists():
                state = torch.load(last, map_location="cpu", weights_only=True)["train_state"]
                if state["epoch"] >= 1 and state["step_in_epoch"] > 0:
                    os.kill(proc.pid, signal.SIGKILL)
                    killed_at = state
                    break
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert killed_at is not None, f"training ended before a mid-epoch checkpoint: {proc.stderr.read()[-2000:]!r}"
    assert proc.returncode == -signal.SIGKILL

    resumed = subprocess.run([*args, "trainer.resume=auto"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {last}" in resumed.stdout + resumed.stderr
    final = torch.load(last, map_location="cpu", weights_only=True)["train_state"]
    # the run went on from the checkpoint: same MLflow run, every epoch logged once, steps continued
    assert final["run_id"] == killed_at["run_id"]
    assert final["epoch"] == 3
    assert len(final["history"]["val/loss"]) == 3
    steps_per_epoch = final["global_step"] // 3
    assert final["global_step"] == 3 * steps_per_epoch
    mlflow.set_tracking_uri(store)
    runs = mlflow.search_runs(experiment_names=["resume-test"], output_format="list")
    assert len(runs) == 1
    history = mlflow.MlflowClient().get_metric_history(runs[0].info.run_id, "val/loss")
    assert sorted(m.step for m in history) == [1, 2, 3]


@pytest.mark.slow
def test_ddp_two_ranks_end_with_identical_weights(sample_dir: Path, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "ddp"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                "--master_port=29533", "-m", "flavortag.train"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*torchrun, "trainer=ddp", "model=deepsets", "trainer.max_epochs=2",
                             "trainer.batch_size=32", "trainer.save_rank_weights=true",
                             *_base_args(sample_dir, store, run_dir)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    w0 = torch.load(run_dir / "weights_rank0.pt", weights_only=True)
    w1 = torch.load(run_dir / "weights_rank1.pt", weights_only=True)
    assert w0.keys() == w1.keys()
    for key in w0:
        torch.testing.assert_close(w0[key], w1[key], rtol=0, atol=0)
    mlflow.set_tracking_uri(store)
    runs = mlflow.search_runs(experiment_names=["resume-test"], output_format="list")
    assert len(runs) == 1  # only rank 0 logged
    assert runs[0].data.metrics["train/events_per_s"] > 0


def test_reader_options_reject_a_mistyped_on_error():
    from flavortag.dataset import reader_options

    assert reader_options({"on_error": "skip"})["on_error"] == "skip"
    assert reader_options({})["on_error"] == "raise"
    with pytest.raises(ValueError, match="on_error"):
        reader_options({"on_error": "skp"})
