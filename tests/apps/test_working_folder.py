"""Issue 26 item 7: nothing is written into the installed package or left in the working folder.

Tune's best-trial preset goes to the user's config folder (``$FLAVORTAG_CONFIG_DIR``,
default ``~/.config/flavortag``), which ``flavortag train +experiment=`` searches;
a new MLflow store leaves no lock file; predict and calibrate (run directory ``.``)
write no Hydra log file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from flavortag.apps import CONFIG_DIR


def test_tune_preset_goes_to_the_user_config_folder_that_train_searches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flavortag.apps.tune_preset import write_preset
    from flavortag.tuning.study import TuneSettings

    monkeypatch.setenv("FLAVORTAG_CONFIG_DIR", str(tmp_path / "user"))
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        tune_cfg = compose(config_name="tune", overrides=["study_name=mine", "output_dir=out"])
    settings = TuneSettings.from_config(dict(tune_cfg), CONFIG_DIR)
    assert settings.preset_dir == tmp_path / "user" / "experiment"
    preset = write_preset(settings.preset_dir, "mine", ["model=deepsets", "trainer.max_epochs=7"],
                          {"trainer.lr": 0.0123}, "test", CONFIG_DIR)
    assert not Path(CONFIG_DIR, "experiment", preset.name).exists()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["+experiment=mine_best"])
    assert (cfg.model.name, cfg.trainer.max_epochs, cfg.trainer.lr) == ("deepsets", 7, 0.0123)


def test_a_new_store_leaves_no_lock_file(tmp_path: Path) -> None:
    from flavortag.tracking import ensure_sqlite_store

    assert ensure_sqlite_store(tmp_path / "mlflow.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]


@pytest.mark.parametrize("app", ["predict", "calibrate"])
def test_apps_that_run_in_the_working_folder_log_to_the_terminal_only(app: str) -> None:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=app, return_hydra_config=True)
    assert cfg.hydra.run.dir == "." and cfg.hydra.output_subdir is None
    handlers = cfg.hydra.job_logging.handlers
    assert all("filename" not in h for h in handlers.values()), handlers
