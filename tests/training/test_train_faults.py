"""Issue 16, training: nothing lost, nothing mixed up.

Bad settings are refused before anything is read, a run directory belongs to
one live job and one MLflow run, resumes log true figures and never leave a
killed run RUNNING, one-class data is refused and skipped events reach MLflow.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from omegaconf import DictConfig

import flavortag.pipelines.train as job_module
import flavortag.training.loop as loop_module
from flavortag.apps.train import train
from flavortag.training.owner import OWNER_FILE, RunDirectory, RunDirectoryError
from tests.compose import compose_app

N_PER_CLASS = 300  # tests/conftest.py


def _cfg(overrides: list[str]) -> DictConfig:
    return compose_app("train", overrides)


def _overrides(sample_dir: Path, store: str, out: Path, files: tuple[str, ...] = ("uds", "cc", "bb"),
               suffix: str = "parquet") -> list[str]:
    paths = ",".join(str(sample_dir / f"{f}.{suffix}") for f in files)
    return [
        "model=mlp", f"data.paths=[{paths}]", f"tracking.tracking_uri={store}",
        "tracking.experiment_name=faults", f"output_dir={out}", "trainer.max_epochs=2",
        "trainer.batch_size=32", "trainer.max_steps_per_epoch=4", "trainer.progress=false",
        "trainer.early_stopping_patience=10", "data.max_tracks=16", "evaluate_after_training=false",
        "trainer.device=cpu",  # exact resume figures: CPU is deterministic
    ]


@pytest.fixture()
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture()
def nothing_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading data or opening an MLflow run fails the test."""
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("read data or opened a run before refusing")

    monkeypatch.setattr(job_module, "prepare_data", forbidden)
    monkeypatch.setattr(job_module.tracking, "start_run", forbidden)
    monkeypatch.setattr(job_module.tracking, "configure", forbidden)


# --------------------------------------------------------------------------- item 3: settings


@pytest.mark.parametrize(("override", "message"), [
    (["trainer.max_epochs=0"], "trainer.max_epochs must be an integer >= 1, not 0"),
    (["trainer.max_epochs=-1"], "trainer.max_epochs must be an integer >= 1, not -1"),
    (["trainer.batch_size=0"], "trainer.batch_size must be an integer >= 1, not 0"),
    (["trainer.lr=-1"], "trainer.lr must be a number > 0, not -1"),
    (["trainer.lr=null"], "trainer.lr must be a number > 0, not None"),
    (["trainer.eval_batch_size=0"], "trainer.eval_batch_size must be an integer >= 1, not 0"),
    (["trainer.early_stopping_patience=0"], "trainer.early_stopping_patience must be an integer >= 1"),
    (["trainer.warmup_fraction=1.5"], "trainer.warmup_fraction must be a number in [0, 1), not 1.5"),
    (["data.split.val=0", "data.split.train=0.85"],
     "data.split.val must be in (0, 1): training needs validation events"),
    (["data.split.train=0", "data.split.val=0.85"], "data.split.train must be in (0, 1)"),
    (["data.split.test=0.5"], "data.split fractions must sum to 1, not 1.35"),
])
def test_bad_settings_are_refused_before_anything_is_read(override: list[str], message: str, sample_dir: Path,
                                                          tmp_path: Path, store: str, nothing_read: None) -> None:
    cfg = _cfg([*_overrides(sample_dir, store, tmp_path / "run"), *override])
    with pytest.raises(ValueError, match=re.escape(message)):
        train(cfg)
    assert not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "run").exists()


def test_a_batch_larger_than_the_training_split_is_refused_before_the_run(sample_dir: Path, tmp_path: Path,
                                                                           store: str) -> None:
    # 0.7 * 3 * 40 = 84 training events; the last incomplete batch is dropped, so no step at all
    cfg = _cfg([*_overrides(sample_dir, store, tmp_path / "run"), "data.max_events_per_class=40",
                "trainer.batch_size=100"])
    with pytest.raises(ValueError, match=re.escape(
            "trainer.batch_size=100 is more than the 84 training events: not one step would be taken; "
            "set trainer.batch_size to at most 84")):
        train(cfg)
    assert not (tmp_path / "mlflow.db").exists()


def test_zero_or_null_optional_settings_mean_off() -> None:
    from flavortag.training.settings import TrainerSettings

    node = dict(_cfg([]).trainer)
    node.update(checkpoint_every_steps=None, max_steps_per_epoch=0, grad_clip_norm=None, num_workers=None)
    settings = TrainerSettings.from_config(node)
    assert (settings.checkpoint_every_steps, settings.max_steps_per_epoch,
            settings.grad_clip_norm, settings.num_workers) == (0, 0, 0.0, 0)
    with pytest.raises(ValueError, match=re.escape("trainer.checkpoint_every_steps must be an integer >= 0")):
        TrainerSettings.from_config({**node, "checkpoint_every_steps": -5})


# --------------------------------------------------------------------------- item 1: run directories


def test_default_run_directories_differ_between_jobs_started_together() -> None:
    code = ("from hydra import compose, initialize_config_dir\n"
            "from flavortag.apps import CONFIG_DIR\n"
            "with initialize_config_dir(config_dir=CONFIG_DIR, version_base='1.3'):\n"
            "    print(compose(config_name='train', return_hydra_config=True).hydra.run.dir)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    dirs = [p.communicate(timeout=120)[0].strip() for p in procs]
    pattern = r"outputs/train/mlp/\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_(\d+)-[0-9a-f]{4}"
    for d, p in zip(dirs, procs):
        match = re.fullmatch(pattern, d)
        assert match is not None, d
        assert int(match.group(1)) == p.pid
    assert dirs[0] != dirs[1]


def test_torchrun_ranks_of_one_job_share_the_suffix(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import flavortag.apps as apps

    monkeypatch.setattr(apps, "_SUFFIX", {})
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-a")
    first = apps.run_suffix()
    assert first.startswith(f"{os.getppid()}-")
    monkeypatch.setattr(apps, "_SUFFIX", {})  # another rank of the same job computes the same
    assert apps.run_suffix() == first
    monkeypatch.setattr(apps, "_SUFFIX", {})
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-b")
    assert apps.run_suffix() != first


def test_a_live_job_holds_its_run_directory(sample_dir: Path, tmp_path: Path, store: str,
                                            nothing_read: None) -> None:
    run_dir = tmp_path / "run"
    with RunDirectory.claim(run_dir) as held:
        held.record("0123abcd", "mlp", "mlp")
        with pytest.raises(RunDirectoryError, match=r"is in use by another live training job: run 0123abcd \(mlp, mlp; "
                                                    rf"pid {__import__('os').getpid()} on "):
            train(_cfg(_overrides(sample_dir, store, run_dir)))
    # the lock goes with the job: the directory is free again
    RunDirectory.claim(run_dir).release()


def test_resume_refuses_a_checkpoint_of_another_run_or_model(sample_dir: Path, tmp_path: Path, store: str) -> None:
    run_dir = tmp_path / "run"
    first = train(_cfg([*_overrides(sample_dir, store, run_dir), "trainer.max_epochs=1"]))
    owner_file = run_dir / OWNER_FILE
    owner = json.loads(owner_file.read_text())
    assert owner["run_id"] == first["run_id"] and owner["model"] == "mlp"
    last = run_dir / "checkpoints" / "last.pt"
    assert torch.load(last, weights_only=True)["train_state"]["run_id"] == first["run_id"]

    # a new run may not overwrite the checkpoints of the directory's run
    with pytest.raises(RunDirectoryError, match=rf"holds the checkpoints \(best.pt, last.pt\) of run {first['run_id']}"):
        train(_cfg(_overrides(sample_dir, store, run_dir)))
    # resuming with another model
    with pytest.raises(RunDirectoryError, match=rf"{re.escape(str(last))} is a checkpoint of a mlp model .*"
                                                r"this job trains model=deepsets"):
        train(_cfg([*_overrides(sample_dir, store, run_dir), "model=deepsets", "trainer.resume=auto"]))
    # a checkpoint that another run wrote into this run's directory
    owner_file.write_text(json.dumps({**owner, "run_id": "ffff0000"}))
    with pytest.raises(RunDirectoryError, match=rf"belongs to MLflow run {first['run_id']}, but {re.escape(str(run_dir))} "
                                                r"belongs to run ffff0000"):
        train(_cfg([*_overrides(sample_dir, store, run_dir), "trainer.resume=auto"]))
    mlflow.set_tracking_uri(store)
    assert len(mlflow.search_runs(experiment_names=["faults"], output_format="list")) == 1


# --------------------------------------------------------------------------- item 2: resume


def test_resume_from_the_last_step_of_an_epoch_logs_the_epochs_true_figures(
        sample_dir: Path, tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    over = ["trainer.checkpoint_every_steps=4"]  # = max_steps_per_epoch: a checkpoint at each epoch's last step
    whole = train(_cfg([*_overrides(sample_dir, store, tmp_path / "whole"), *over]))["history"]

    real_evaluate = loop_module._evaluate_loss

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # the job dies after the last step's checkpoint, before the epoch ends

    run_dir = tmp_path / "killed"
    monkeypatch.setattr(loop_module, "_evaluate_loss", killed)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg([*_overrides(sample_dir, store, run_dir), *over]))
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["train_state"]
    assert (state["epoch"], state["step_in_epoch"]) == (0, 4)
    monkeypatch.setattr(loop_module, "_evaluate_loss", real_evaluate)
    resumed = train(_cfg([*_overrides(sample_dir, store, run_dir), *over, "trainer.resume=auto"]))

    history = resumed["history"]
    # the interrupted epoch's figures are the whole epoch's, and the next epoch goes on as
    # uninterrupted (the checkpoint holds the random state too: the MLP has dropout)
    assert history["train/loss"] == pytest.approx(whole["train/loss"], rel=1e-6)
    assert history["train/acc"] == pytest.approx(whole["train/acc"], rel=1e-9)
    assert history["val/loss"] == pytest.approx(whole["val/loss"], rel=1e-6)
    assert history["train/events"] == whole["train/events"] == [128.0, 128.0]
    assert history["train/loss"][0] > 0.1
    client = mlflow.MlflowClient(tracking_uri=store)
    logged = {m.step: m.value for m in client.get_metric_history(resumed["run_id"], "train/loss")}
    assert logged[1] == pytest.approx(whole["train/loss"][0], rel=1e-6)
    rates = [m.value for m in client.get_metric_history(resumed["run_id"], "train/events_per_s")]
    assert len(rates) == 2 and min(rates) > 0


def test_resume_without_a_checkpoint_marks_the_dead_jobs_run_killed(
        sample_dir: Path, tmp_path: Path, store: str, caplog: pytest.LogCaptureFixture) -> None:
    from flavortag import tracking

    run_dir = tmp_path / "run"
    experiment_id = tracking.configure({"tracking_uri": store, "experiment_name": "faults"})
    client = mlflow.MlflowClient(tracking_uri=store)
    orphan = client.create_run(experiment_id, run_name="mlp").info.run_id  # a job killed -9 left it RUNNING
    with RunDirectory.claim(run_dir) as held:
        held.record(orphan, "mlp", "mlp")
    with caplog.at_level(logging.WARNING, logger="flavortag.train"):
        result = train(_cfg([*_overrides(sample_dir, store, run_dir), "trainer.resume=auto"]))
    assert f"trainer.resume=auto: no checkpoint in {run_dir / 'checkpoints'}; starting a new run" in caplog.text
    assert f"MLflow run {orphan} (mlp) of {run_dir} was left RUNNING" in caplog.text
    assert "marked KILLED" in caplog.text
    dead = client.get_run(orphan)
    assert dead.info.status == "KILLED"
    assert "died without ending the run" in dead.data.tags["flavortag.orphaned"]
    assert result["run_id"] != orphan
    assert client.get_run(result["run_id"]).info.status == "FINISHED"
    assert json.loads((run_dir / OWNER_FILE).read_text())["run_id"] == result["run_id"]


# --------------------------------------------------------------------------- item 4: one class


def test_one_class_training_data_is_refused_before_training(sample_dir: Path, tmp_path: Path, store: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("opened a run")

    monkeypatch.setattr(job_module.tracking, "start_run", forbidden)
    bb = sample_dir / "bb.parquet"
    with pytest.raises(ValueError, match=re.escape(
            f"the training events hold 1 class only (bb: {round(0.7 * N_PER_CLASS)} events) from {bb}: ")):
        train(_cfg(_overrides(sample_dir, store, tmp_path / "mem", files=("bb",))))
    streaming = [*_overrides(sample_dir, store, tmp_path / "stream", files=("bb",)), "data.streaming=true",
                 f"data.val_paths=[{sample_dir / 'uds.parquet'}]"]
    with pytest.raises(ValueError, match=re.escape(
            f"the training files hold 1 class only (bb: {N_PER_CLASS} events) from {bb}: ")):
        train(_cfg(streaming))


# --------------------------------------------------------------------------- item 5: skipped events


def test_skipped_events_are_logged_with_the_run(sample_dir: Path, tmp_path: Path, store: str) -> None:
    from flavortag.io import read_events, write_events

    text_dir = tmp_path / "text"
    for flavour in ("uds", "cc", "bb"):
        write_events(read_events(str(sample_dir / f"{flavour}.parquet"))[:100], text_dir / f"{flavour}.txt")
    path = text_dir / "cc.txt"
    lines = path.read_text().splitlines()
    axes = [i for i, line in enumerate(lines) if line.startswith("Axis")]
    for event in (10, 20, 30):  # a track row that is not numbers in three events
        row = axes[event] + 1
        lines[row] = "nan? " + lines[row].split(maxsplit=1)[1]
    lines[axes[0]] = "Axis = 1 2"  # and an axis line of two numbers in a fourth
    path.write_text("\n".join(lines) + "\n")

    result = train(_cfg([*_overrides(text_dir, store, tmp_path / "run", suffix="txt"), "data.on_error=skip",
                         "trainer.max_epochs=1"]))
    run = mlflow.MlflowClient(tracking_uri=store).get_run(result["run_id"])
    skipped = {k: v for k, v in run.data.metrics.items() if k.startswith("data/skipped")}
    reasons = {k: v for k, v in skipped.items() if k.startswith("data/skipped/")}
    assert reasons == {"data/skipped/not_a_number": 3, "data/skipped/wrong_count_in_axis_line": 1}
    assert skipped["data/skipped_events"] == 4
    assert run.data.params["n_skipped_events"] == "4"
    assert int(run.data.params["n_train_events"]) + int(run.data.params["n_val_events"]) + \
        int(run.data.params["n_test_events"]) == 300 - 4
    assert np.isfinite(skipped["data/skipped_lines"]) and skipped["data/skipped_lines"] > 4


def test_nothing_skipped_is_logged_as_zero(sample_dir: Path, tmp_path: Path, store: str) -> None:
    result = train(_cfg([*_overrides(sample_dir, store, tmp_path / "run"), "trainer.max_epochs=1"]))
    run = mlflow.MlflowClient(tracking_uri=store).get_run(result["run_id"])
    assert run.data.params["n_skipped_events"] == "0"
    assert not [k for k in run.data.metrics if k.startswith("data/skipped")]


# --------------------------------------------------------------------------- issue 21: honest resumes


def test_resume_with_changed_settings_is_refused_naming_the_keys_unless_allowed(
        sample_dir: Path, tmp_path: Path, store: str) -> None:
    run_dir = tmp_path / "run"
    first = train(_cfg([*_overrides(sample_dir, store, run_dir), "trainer.max_epochs=1"]))
    # a longer training is what resume is for: lr, max_tracks changed are not
    changed = [*_overrides(sample_dir, store, run_dir), "trainer.resume=auto", "trainer.max_epochs=3",
               "trainer.lr=0.01", "data.max_tracks=24"]
    with pytest.raises(RunDirectoryError) as err:
        train(_cfg(changed))
    message = str(err.value)
    assert "differs from the checkpoint's" in message and "in 2 key(s)" in message
    assert "data.max_tracks: 16 -> 24" in message and "trainer.lr: 0.001 -> 0.01" in message
    assert "trainer.max_epochs" not in message and "trainer.resume_allow_changes=true" in message

    resumed = train(_cfg([*changed, "trainer.resume_allow_changes=true"]))
    assert resumed["run_id"] == first["run_id"]
    client = mlflow.MlflowClient(tracking_uri=store)
    run = client.get_run(first["run_id"])
    assert run.data.tags["flavortag.resume_changes.0"] == "data.max_tracks, trainer.lr"
    local = client.download_artifacts(first["run_id"], "resume_changes/0.json", str(tmp_path))
    assert json.loads(Path(local).read_text()) == {
        "data.max_tracks": {"before": 16, "after": 24}, "trainer.lr": {"before": 0.001, "after": 0.01}}


def test_a_run_is_resumed_only_from_its_own_directory(sample_dir: Path, tmp_path: Path, store: str) -> None:
    run_dir = tmp_path / "run"
    first = train(_cfg([*_overrides(sample_dir, store, run_dir), "trainer.max_epochs=1"]))
    last = run_dir / "checkpoints" / "last.pt"
    fresh = tmp_path / "fresh"
    with pytest.raises(RunDirectoryError, match=re.escape(
            f"{last} is a checkpoint of MLflow run {first['run_id']} (mlp), kept in {run_dir}; a run is "
            f"resumed only from its own directory: run with output_dir={run_dir} trainer.resume=auto")):
        train(_cfg([*_overrides(sample_dir, store, fresh), f"trainer.resume={last}"]))
    client = mlflow.MlflowClient(tracking_uri=store)
    assert client.get_run(first["run_id"]).info.status == "FINISHED"
    assert len(mlflow.search_runs(experiment_names=["faults"], output_format="list")) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_the_machine_lacks_is_refused_before_anything_is_read(
        sample_dir: Path, tmp_path: Path, store: str, nothing_read: None) -> None:
    from flavortag.errors import UsageError

    cfg = _cfg([*_overrides(sample_dir, store, tmp_path / "run"), "trainer.device=cuda"])
    with pytest.raises(UsageError, match=re.escape(
            "trainer.device=cuda: torch sees no CUDA device on this machine; use trainer.device=auto")):
        train(cfg)
    assert not (tmp_path / "mlflow.db").exists()
