"""Clusters: SLURM task variables -> DDP ranks, run directories keyed by the job id, stop on a signal and resume."""

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

from flavortag.slurm import SlurmEnvironmentError, ddp_environment, first_host, job_key, run_key

SRUN_TASK = {"SLURM_JOB_ID": "123456", "SLURM_STEP_ID": "0", "SLURM_PROCID": "5", "SLURM_LOCALID": "1",
             "SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "8", "SLURM_NTASKS_PER_NODE": "4",
             "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_STEP_NODELIST": "gpu[07-08]",
             "SLURM_LAUNCH_NODE_IPADDR": "10.0.0.7"}


@pytest.mark.parametrize(("nodelist", "host"), [
    ("node[01-04]", "node01"), ("node[7,9-12]", "node7"), ("gpu001", "gpu001"),
    ("a[003-004],b[1-2]", "a003"), ("host-1,host-2", "host-1"), ("rack2-n[10-11]-ib", "rack2-n10-ib"),
])
def test_first_host_of_compact_node_lists(nodelist: str, host: str) -> None:
    assert first_host(nodelist) == host


def test_first_host_rejects_a_broken_list() -> None:
    for bad in ("", "node[x-y]", "[]"):
        with pytest.raises(ValueError, match="node list"):
            first_host(bad)


def test_srun_tasks_map_to_torchrun_variables() -> None:
    mapped = ddp_environment(SRUN_TASK, distributed=True)
    assert mapped == {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4",
                      "MASTER_ADDR": "gpu07", "MASTER_PORT": str(20000 + 123456 % 20000)}
    # what the user or torchrun set wins
    own = ddp_environment({**SRUN_TASK, "MASTER_ADDR": "head", "MASTER_PORT": "29500"}, distributed=True)
    assert "MASTER_ADDR" not in own and "MASTER_PORT" not in own and own["RANK"] == "5"
    assert ddp_environment({**SRUN_TASK, "RANK": "0", "WORLD_SIZE": "2"}, distributed=True) == {}
    # no node list: the launch node's address
    bare = {k: v for k, v in SRUN_TASK.items() if "NODELIST" not in k}
    assert ddp_environment(bare, distributed=True)["MASTER_ADDR"] == "10.0.0.7"


def test_nothing_to_map_outside_an_srun_step_or_for_one_task() -> None:
    assert ddp_environment({}, distributed=True) == {}
    batch = {k: v for k, v in SRUN_TASK.items() if k not in ("SLURM_STEP_ID", "SLURM_STEP_NUM_TASKS")}
    assert ddp_environment(batch, distributed=False) == {}  # the batch script itself: one process
    one = {**SRUN_TASK, "SLURM_NTASKS": "1", "SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"}
    assert ddp_environment(one, distributed=False) == {}


def test_n_srun_tasks_of_a_non_distributed_training_are_refused() -> None:
    with pytest.raises(SlurmEnvironmentError, match=r"task 5 of 8 .*trainer.distributed is false.*trainer=ddp"):
        ddp_environment(SRUN_TASK, distributed=False)
    with pytest.raises(SlurmEnvironmentError, match="SLURM_LOCALID"):
        ddp_environment({k: v for k, v in SRUN_TASK.items() if k != "SLURM_LOCALID"}, distributed=True)
    nowhere = {k: v for k, v in SRUN_TASK.items() if "NODELIST" not in k and "IPADDR" not in k}
    with pytest.raises(SlurmEnvironmentError, match="MASTER_ADDR"):
        ddp_environment(nowhere, distributed=True)


def test_distributed_refuses_srun_copies_of_one_training(monkeypatch: pytest.MonkeyPatch) -> None:
    from flavortag.errors import UsageError
    from flavortag.training.runtime import Distributed

    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in SRUN_TASK.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(UsageError, match="same model into the same run"):
        Distributed(False, "gloo")


def test_job_key_and_run_directory_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from flavortag.apps import job_dirname

    assert job_key({"SLURM_JOB_ID": "42"}) == "42"
    assert job_key({"SLURM_JOB_ID": "43", "SLURM_ARRAY_JOB_ID": "40", "SLURM_ARRAY_TASK_ID": "3"}) == "40_3"
    assert job_key({}) is None
    assert run_key({"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "1"}) == "42.1"
    assert run_key({"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "batch"}) == "42"
    assert run_key({"SLURM_STEP_ID": "0"}) is None
    for key in ("SLURM_JOB_ID", "SLURM_JOBID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_STEP_ID",
                "SLURM_STEPID"):
        monkeypatch.delenv(key, raising=False)
    assert job_dirname("2026-01-01_00-00-00").startswith(f"2026-01-01_00-00-00_{os.getpid()}-")
    monkeypatch.setenv("SLURM_JOB_ID", "99")
    assert job_dirname("2026-01-01_00-00-00") == "slurm-99"
    monkeypatch.setenv("SLURM_STEP_ID", "2")
    assert job_dirname("2026-01-01_00-00-00") == "slurm-99.2"


def _wait_for_checkpoint(proc: subprocess.Popen, last: Path, timeout_s: float) -> dict | None:
    deadline = time.time() + timeout_s
    while time.time() < deadline and proc.poll() is None:
        if last.exists():
            try:
                state = torch.load(last, map_location="cpu", weights_only=True)["train_state"]
            except Exception:  # noqa: BLE001 - being replaced right now
                state = None
            if state is not None and state["epoch"] >= 1:
                return state
        time.sleep(0.1)
    return None


@pytest.mark.slow
def test_sigusr1_checkpoints_and_the_requeued_job_resumes(sample_dir: Path, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    paths = ",".join(str(sample_dir / f"{f}.parquet") for f in ("uds", "cc", "bb"))
    # six epochs, the signal in the second: the training is still running when it arrives (with two,
    # a fast machine could finish the last epoch between the checkpoint and the signal)
    epochs = 6
    args = [sys.executable, "-m", "flavortag", "train", "model=deepsets", f"trainer.max_epochs={epochs}",
            "trainer.batch_size=16", "trainer.checkpoint_every_steps=5", "trainer.early_stopping_patience=10",
            f"data.paths=[{paths}]", f"tracking.tracking_uri={store}", "tracking.experiment_name=requeue",
            f"paths.outputs={tmp_path / 'outputs'}", "trainer.progress=false", "data.max_tracks=16",
            "evaluate_after_training=false", "run_name=rq"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(SLURM_JOB_ID="4242", OMP_NUM_THREADS="1")
    run_dir = tmp_path / "outputs" / "train" / "rq" / "slurm-4242"  # keyed by the job id
    last = run_dir / "checkpoints" / "last.pt"
    proc = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        seen = _wait_for_checkpoint(proc, last, 240)
        assert seen is not None, f"no checkpoint in epoch 2: {proc.communicate()[1][-2000:]}"
        os.kill(proc.pid, signal.SIGUSR1)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 75, stderr[-2000:]
    assert "stopped by SIGUSR1" in stderr and str(last) in stderr
    stopped = torch.load(last, map_location="cpu", weights_only=True)["train_state"]
    # stopped at the first step after the signal: in the epoch seen, or the next where that one was ending
    assert seen["epoch"] <= stopped["epoch"] < epochs - 1 and stopped["global_step"] > seen["global_step"]
    assert stopped["step_in_epoch"] > 0 and len(stopped["epoch_sums"]) == 3
    mlflow.set_tracking_uri(store)
    run = mlflow.MlflowClient().get_run(stopped["run_id"])
    assert run.info.status == "KILLED" and "SIGUSR1" in run.data.tags["flavortag.stopped"]

    # the requeued job: same command, same job id, nothing else
    again = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(requeued): resuming it" in again.stdout + again.stderr
    final = torch.load(last, map_location="cpu", weights_only=True)["train_state"]
    assert final["run_id"] == stopped["run_id"] and final["epoch"] == epochs
    assert len(final["history"]["val/loss"]) == epochs
    assert final["global_step"] == epochs * (final["global_step"] // epochs)
    runs = mlflow.search_runs(experiment_names=["requeue"], output_format="list")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    history = mlflow.MlflowClient().get_metric_history(runs[0].info.run_id, "val/loss")
    assert sorted(m.step for m in history) == list(range(1, epochs + 1))
    assert sorted(p.name for p in (tmp_path / "outputs" / "train" / "rq").iterdir()) == ["slurm-4242"]


def test_cluster_commands_are_the_same_in_readme_help_and_scripts(capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    from flavortag.cli import main

    repo = Path(__file__).resolve().parents[2]
    readme = (repo / "README.md").read_text()
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # the command sets sys.argv for Hydra
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # ... and this: undone after the test
    with pytest.raises(SystemExit) as done:
        main(["train", "--help"])
    assert done.value.code in (0, None)
    help_text = capsys.readouterr().out
    for command in ("torchrun --standalone --nproc_per_node=4 -m flavortag.train trainer=ddp model=transformer",
                    "torchrun --nnodes=2 --nproc_per_node=4 --rdzv_backend=c10d --rdzv_endpoint=$HEAD:29500",
                    "--rdzv_id=$SLURM_JOB_ID -m flavortag.train trainer=ddp model=transformer",
                    "scripts/slurm/train_ddp.sbatch", "hydra/launcher=slurm"):
        assert command in readme and command in help_text, command
    for script in ("train_ddp", "generate_shards", "tune_workers"):
        path = repo / "scripts" / "slurm" / f"{script}.sbatch"
        assert f"scripts/slurm/{script}.sbatch" in readme
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
        assert re.search(r"^#SBATCH --", path.read_text(), flags=re.MULTILINE)
    assert "--rdzv_id=\"$SLURM_JOB_ID\" \\\n    -m flavortag.train trainer=ddp" in (
        repo / "scripts" / "slurm" / "train_ddp.sbatch").read_text()
