"""Every primary config and every experiment preset composes, and the shared groups reach each app."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from flavortag.apps import CONFIG_DIR

PRIMARY = ("train", "evaluate", "compare", "predict", "generate")
EXPERIMENTS = sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))


def _compose(name: str, overrides: list[str] | None = None, hydra_node: bool = False):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=name, overrides=overrides or [], return_hydra_config=hydra_node)


def test_the_top_level_configs_directory_is_the_package_one():
    top = Path(__file__).resolve().parents[2] / "configs"
    assert top.resolve() == Path(CONFIG_DIR).resolve()
    assert (Path(CONFIG_DIR) / "hydra" / "default.yaml").is_file()


@pytest.mark.parametrize("name", PRIMARY)
def test_primary_config_composes(name: str):
    cfg = _compose(name, ["+run_id=abc"] if name in ("evaluate", "predict") else None, hydra_node=True)
    assert cfg.paths.outputs == "outputs"
    assert cfg.hydra.job.chdir is False
    assert "Powered by Hydra" in cfg.hydra.help.footer
    if name != "generate":
        assert list(cfg.evaluate.efficiencies) == [0.5, 0.6, 0.7, 0.8, 0.9]
        assert cfg.evaluate.f_c is None and cfg.evaluate.f_b is None


def test_run_directories_per_app():
    train = _compose("train", hydra_node=True)
    assert OmegaConf.select(train, "hydra.run.dir", throw_on_resolution_failure=False) is not None
    assert train.hydra.run.dir.startswith("outputs/train/mlp/")
    # <time>_<pid>-<random>: two jobs started in the same second get their own directories
    assert re.fullmatch(rf"outputs/train/mlp/\d{{4}}-\d\d-\d\d_\d\d-\d\d-\d\d_{os.getpid()}-[0-9a-f]{{4}}",
                        train.hydra.run.dir), train.hydra.run.dir
    evaluate = _compose("evaluate", hydra_node=True)
    assert evaluate.hydra.run.dir.startswith("outputs/evaluate/")
    assert _compose("predict", hydra_node=True).hydra.run.dir == "."
    assert _compose("generate", hydra_node=True).hydra.run.dir == "."


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_preset_composes(experiment: str):
    cfg = _compose("train", [f"+experiment={experiment}"])
    assert cfg.model.name == experiment.split("_")[0]
    if "_zh_jets" in experiment:  # a jet preset: ZH jets, every visible particle and PID, the strange scheme
        assert cfg.data.name == "zh_jets" and cfg.data.level == "jet"
        assert list(cfg.data.classes) == ["ud", "c", "b", "g", "s"] and "n_kaons" in cfg.features.event
    else:
        assert cfg.data.name == "zpole_30k"
        assert cfg.tracking.experiment_name == "zpole-30k"
    OmegaConf.to_container(cfg, resolve=False)


def test_evaluate_takes_files_without_a_data_config():
    cfg = _compose("evaluate", ["run_id=abc", "data.paths=[a.txt,b.txt]"])
    assert list(cfg.data.paths) == ["a.txt", "b.txt"]
    group = _compose("evaluate", ["run_id=abc", "data=zpole_30k"])
    assert group.data.name == "zpole_30k" and group.data.max_tracks == 48
    assert _compose("evaluate", ["run_id=abc"]).data.paths is None
