"""``flavortag tune``: search spaces checked, a tiny study end to end, two workers and a kill -9."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from hydra import compose, initialize_config_dir
from optuna.trial import TrialState

from flavortag.apps import CONFIG_DIR
from flavortag.apps.tune import train_overrides_argument
from flavortag.errors import UsageError
from flavortag.tuning import SearchSpace, format_override, slots_used

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def _space(**params: object) -> dict:
    return {"name": "x", "model": "mlp", "params": params}


@pytest.mark.parametrize("node, words", [
    (_space(**{"trainer.lr": {"type": "gauss", "low": 1, "high": 2}}), "hparams_search.params.trainer.lr.type"),
    (_space(**{"trainer.lr": {"type": "float", "low": 0.1, "high": 0.01}}), "hparams_search.params.trainer.lr: low"),
    (_space(**{"trainer.lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}),
     "hparams_search.params.trainer.lr: a log scale needs low > 0"),
    (_space(**{"trainer.lr": {"type": "float", "low": 1e-4}}), "hparams_search.params.trainer.lr.high is missing"),
    (_space(**{"trainer.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "lg": True}}),
     "hparams_search.params.trainer.lr: unknown field(s) lg"),
    (_space(**{"model.depth": {"type": "int", "low": 1.5, "high": 4}}), "hparams_search.params.model.depth.low"),
    (_space(**{"model.act": {"type": "categorical", "choices": []}}), "hparams_search.params.model.act.choices"),
    (_space(**{"model.dims": {"type": "categorical", "choices": [[64], [64, 64]]}}),
     "hparams_search.params.model.dims.choices"),
    ({**_space(**{"trainer.lr": {"type": "float", "low": 1e-4, "high": 1e-2}}), "parms": {}},
     "hparams_search: unknown key(s) parms"),
    ({"name": "x", "model": "mlp"}, "hparams_search.params must map"),
])
def test_a_malformed_search_space_names_the_key(node: dict, words: str) -> None:
    with pytest.raises(UsageError) as info:
        SearchSpace.from_config(node)
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_a_key_the_train_config_lacks_is_named_with_its_neighbours() -> None:
    space = SearchSpace.from_config(_space(**{"model.hiden_dims": {"type": "int", "low": 1, "high": 3},
                                              "trainer.lr": {"type": "float", "low": 1e-4, "high": 1e-2}}))
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=space.base_overrides())
    with pytest.raises(UsageError, match=r"hparams_search\.params\.model\.hiden_dims: no such key in the "
                                         r"train config \(model=mlp\); the keys of model are .*hidden_dims"):
        space.check_keys(cfg)
    SearchSpace.from_config(_space(**{"trainer.lr": {"type": "float", "low": 1e-4, "high": 1e-2}})).check_keys(cfg)


def test_overrides_and_the_shipped_spaces() -> None:
    assert format_override("trainer.lr", 1e-05) == "trainer.lr=1.0e-05"
    assert format_override("model.activation", "gelu") == "model.activation='gelu'"
    assert format_override("model.batchnorm", True) == "model.batchnorm=true"
    assert train_overrides_argument(["n_trials=3", "--", "data=zpole_30k", "data.paths=[a,b]"]) == [
        "n_trials=3", "overrides=['data=zpole_30k','data.paths=[a,b]']"]
    with pytest.raises(UsageError, match="not both"):
        train_overrides_argument(["overrides=[a=1]", "--", "b=2"])
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        for name in ("transformer", "deepsets", "mlp", "bdt"):
            tune = compose(config_name="tune", overrides=[f"hparams_search={name}"])
            space = SearchSpace.from_config(tune.hparams_search)
            space.check_keys(compose(config_name="train", overrides=space.base_overrides()))
            assert tune.study_name == name and len(space.params) >= 4


def test_the_budget_counts_a_retry_in_its_originals_slot() -> None:
    def trial(number: int, state: TrialState, **attrs: object) -> optuna.trial.FrozenTrial:
        system = {"failed_trial": attrs.pop("retry_of")} if "retry_of" in attrs else {}
        return optuna.trial.FrozenTrial(number=number, state=state, value=None, datetime_start=None,
                                        datetime_complete=None, params={}, distributions={}, user_attrs=attrs,
                                        system_attrs=system, intermediate_values={}, trial_id=number)

    trials = [trial(0, TrialState.COMPLETE), trial(1, TrialState.FAIL),  # 1: its worker died
              trial(2, TrialState.PRUNED), trial(3, TrialState.RUNNING, retry_of=1),
              trial(4, TrialState.FAIL, **{"flavortag.error": "ValueError: x"}),  # an error frees its slot
              trial(5, TrialState.FAIL, **{"flavortag.surplus": True})]
    assert slots_used(trials) == 3


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store, made once (making one takes seconds) and copied per test."""
    from flavortag.tracking import ensure_sqlite_store

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    ensure_sqlite_store(path)
    return path


def _tune_args(sample_dir: Path, tmp_path: Path, n_trials: int, epochs: int) -> list[str]:
    paths = ",".join(str(sample_dir / f"{f}.parquet") for f in ("uds", "cc", "bb"))
    return [sys.executable, "-m", "flavortag", "tune", "hparams_search=mlp", f"n_trials={n_trials}",
            f"storage=sqlite:///{tmp_path / 'optuna.db'}", f"output_dir={tmp_path / 'trials'}",
            f"preset_dir={tmp_path / 'configs' / 'experiment'}", f"hydra.run.dir={tmp_path / 'worker'}",
            "heartbeat.interval_s=1", "heartbeat.grace_s=6", "sampler.n_startup_trials=2",
            "--", f"data.paths=[{paths}]", f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            "tracking.experiment_name=tune-test", f"trainer.max_epochs={epochs}", "trainer.progress=false",
            "trainer.early_stopping_patience=100", "trainer.batch_size=32", "evaluate_after_training=false"]


def _children(tmp_path: Path) -> tuple[mlflow.entities.Run, list[mlflow.entities.Run]]:
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["tune-test"], output_format="list")
    parents = [r for r in runs if r.data.tags.get("flavortag.role") == "study"]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == len(runs) - 1
    return parents[0], children


@pytest.mark.slow
def test_a_tiny_study_end_to_end(sample_dir: Path, tmp_path: Path, empty_store: Path) -> None:
    """With the robustness term (robustness_weight): each trial's value is val/loss + w val_shifted/loss."""
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    args = _tune_args(sample_dir, tmp_path, 3, 1)
    cut = args.index("--")
    args = [*args[:cut], "robustness_weight=0.5", *args[cut:], "augment=detector", "augment.fraction=0"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=240, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="mlp", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert all(len(t.intermediate_values) == 1 for t in trials)
    assert "best trial preset:" in result.stdout

    parent, children = _children(tmp_path)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["trials/complete"] == 3
    assert parent.data.metrics["best/objective"] == pytest.approx(study.best_value)
    assert parent.data.params["n_trials"] == "3"
    images = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id, "optuna")}
    assert images == {f"optuna/{n}.png" for n in ("optimization_history", "param_importances",
                                                  "parallel_coordinate")}
    by_trial = {int(r.data.tags["flavortag.trial"]): r for r in children}
    assert sorted(by_trial) == [0, 1, 2]
    client = mlflow.MlflowClient()
    for t in trials:
        run = by_trial[t.number]
        assert run.info.status == "FINISHED" and run.data.tags["flavortag.trial_state"] == "COMPLETE"
        assert t.user_attrs["mlflow_run_id"] == run.info.run_id
        for key, value in t.params.items():  # the run trained with the trial's parameters
            assert run.data.params[key] == str(value)
        history = client.get_metric_history(run.info.run_id, "val/loss")
        shifted = client.get_metric_history(run.info.run_id, "val_shifted/loss")
        assert [m.step for m in history] == [m.step for m in shifted] == [1]
        assert history[0].value == pytest.approx(t.value - 0.5 * shifted[0].value)
        assert shifted[0].value != pytest.approx(history[0].value)  # other (re-smeared) events

    preset = tmp_path / "configs" / "experiment" / "mlp_best.yaml"
    assert preset.is_file()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"hydra.searchpath=[file://{tmp_path / 'configs'}]",
                                                      "+experiment=mlp_best"])
    assert cfg.model.name == "mlp"
    for key, value in study.best_params.items():
        assert cfg[key.split(".")[0]][key.split(".")[1]] == value
    assert cfg.trainer.max_epochs == 1 and cfg.evaluate_after_training is False
    assert list(cfg.data.paths) == [str(sample_dir / f"{f}.parquet") for f in ("uds", "cc", "bb")]
    # where the study ran (its MLflow store, progress bars) stays out: the default store and bars
    assert cfg.tracking.tracking_uri == "sqlite:///mlflow.db" and cfg.trainer.progress is True
    assert "# left out (where the study ran): tracking.tracking_uri=" in preset.read_text()


@pytest.mark.slow
def test_two_workers_one_killed_then_resumed_lose_no_trial(sample_dir: Path, tmp_path: Path,
                                                           empty_store: Path) -> None:
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    n_trials = 3
    args = _tune_args(sample_dir, tmp_path, n_trials, 6)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    victim = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    time.sleep(1.0)  # let the victim create the study and its MLflow parent run
    survivor = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    killed = None
    deadline = time.time() + 180
    try:
        while time.time() < deadline and killed is None and victim.poll() is None:
            time.sleep(0.1)
            try:
                trials = optuna.load_study(study_name="mlp", storage=storage).get_trials(deepcopy=False)
            except (KeyError, optuna.exceptions.StorageInternalError):
                continue  # not created yet
            running = [t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values
                       and t.user_attrs.get("flavortag.worker", "").endswith(f":{victim.pid}")]
            if running:
                os.kill(victim.pid, signal.SIGKILL)
                killed = running[0]
    finally:
        if victim.poll() is None and killed is None:
            victim.kill()
        victim.wait()
    assert killed is not None, f"no trial of the victim seen running: {victim.stderr.read()[-2000:]!r}"
    assert victim.returncode == -signal.SIGKILL
    # the survivor runs the rest, then waits for the dead trial, fails it by heartbeat and retries it
    out = survivor.communicate(timeout=240)[1]
    assert survivor.returncode == 0, out[-3000:]
    # the same command again: the study is done, nothing is run or counted twice
    again = subprocess.run(args, capture_output=True, text=True, timeout=120, env=ENV)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "study mlp is done (4 trials)" in again.stdout + again.stderr

    trials = optuna.load_study(study_name="mlp", storage=storage).get_trials()
    states = {t.number: t.state for t in trials}
    assert states[killed.number] == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retries[0].params == killed.params
    assert sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states.values()) == n_trials
    assert len(trials) == n_trials + 1

    parent, children = _children(tmp_path)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["trials/complete"] + parent.data.metrics["trials/pruned"] == n_trials
    by_trial = {int(r.data.tags["flavortag.trial"]): r for r in children}
    assert sorted(by_trial) == sorted(states)  # one child run per trial, none twice
    dead = by_trial[killed.number]
    assert dead.info.status == "KILLED" and dead.data.tags["flavortag.trial_state"] == "FAIL"
    assert by_trial[retries[0].number].data.tags["flavortag.retry_of"] == str(killed.number)
    for number, state in states.items():
        if number != killed.number:
            assert by_trial[number].data.tags["flavortag.trial_state"] == state.name


def test_a_bad_search_space_on_the_command_line_exits_2_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "flavortag", "tune", "hparams_search=mlp",
                             "hparams_search.params.trainer.lr.low=0.5", f"storage=sqlite:///{tmp_path}/o.db"],
                            capture_output=True, text=True, timeout=60, env=ENV, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "hparams_search.params.trainer.lr: low (0.5) must be below high" in lines[0]
    assert not (tmp_path / "o.db").exists()


def test_the_journal_storage_fails_and_retries_a_trial_without_heartbeat(tmp_path: Path) -> None:
    import warnings

    from flavortag.tuning.storage import HEARTBEAT_ATTR, HeartbeatJournalStorage, open_storage

    storage = open_storage(f"journal:{tmp_path / 'optuna.journal'}", heartbeat_interval_s=1, grace_s=5,
                           max_retry=3)
    assert isinstance(storage, HeartbeatJournalStorage)
    study = optuna.create_study(storage=storage, study_name="s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "heartbeat is supposed to be used with optimize"
        trial = study.ask()
    x = trial.suggest_float("x", 0.0, 1.0)
    storage.record_heartbeat(trial._trial_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
        assert [t.state for t in study.get_trials()] == [TrialState.RUNNING]  # alive: left alone
        storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, time.time() - 6.0)
        optuna.storages.fail_stale_trials(study)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].params == {"x": x} and trials[1].system_attrs["failed_trial"] == 0
    with pytest.raises(UsageError, match="grace_s > interval_s"):
        open_storage("sqlite:///x.db", heartbeat_interval_s=10, grace_s=5)
    with pytest.raises(UsageError, match="not a storage URL"):
        open_storage("optuna.db")


def test_robustness_term_needs_an_augmentation(sample_dir: Path, tmp_path: Path) -> None:
    args = _tune_args(sample_dir, tmp_path, 1, 1)
    cut = args.index("--")
    result = subprocess.run([*args[:cut], "robustness_weight=0.5", *args[cut:]], capture_output=True,
                            text=True, timeout=120, env=ENV)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "choose its augmentation in the train overrides (-- augment=detector" in result.stderr
    assert not (tmp_path / "optuna.db").exists()  # refused before the study was opened
