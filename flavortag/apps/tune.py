"""``flavortag tune``: a hyperparameter search with optuna (Hydra, ``configs/tune.yaml``).

The work is :func:`flavortag.pipelines.tune.run_worker`; see :mod:`flavortag.pipelines.tune`.
Each trial's train config is composed with Hydra's compose API from the same
config directory (and search path) as this app. The train overrides of every
trial go after ``--`` (``flavortag tune n_trials=20 -- data=zpole_30k
trainer.max_epochs=10``) or, quoted, into ``overrides=['data=zpole_30k']``.
"""

from __future__ import annotations

import math
import sys

import hydra
from omegaconf import DictConfig

from flavortag.apps import CONFIG_DIR, plain
from flavortag.errors import UsageError, reported


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "\\'") + "'"


def train_overrides_argument(args: list[str]) -> list[str]:
    """``[tune args..., "--", train overrides...]`` -> the tune args with ``overrides=[...]`` (quoted)."""
    if "--" not in args:
        return args
    cut = args.index("--")
    own, train = args[:cut], args[cut + 1:]
    if any(a.split("=", 1)[0].lstrip("+") == "overrides" for a in own):
        raise UsageError("give the train overrides either after -- or as overrides=[...], not both")
    return [*own, f"overrides=[{','.join(_quoted(a) for a in train)}]"] if train else own


def main() -> None:
    """``flavortag tune [key=value ...] [-- train overrides ...]``."""
    sys.argv = [sys.argv[0], *train_overrides_argument(sys.argv[1:])]
    _worker()


@hydra.main(config_path=CONFIG_DIR, config_name="tune", version_base="1.3")
@reported
def _worker(cfg: DictConfig) -> float:
    """Hydra entry point: one worker of the study; returns the study's best validation loss so far."""
    from pathlib import Path
    from typing import Any

    from flavortag.apps.schema import check_config
    from flavortag.apps.tune_preset import write_preset
    from flavortag.pipelines.tune import run_worker
    from flavortag.training.settings import TrainJob
    from flavortag.tuning import SearchSpace, TuneSettings, trial_table

    check_config(cfg, "tune")
    settings = TuneSettings.from_config(plain(cfg), CONFIG_DIR)
    space = SearchSpace.from_config(plain(cfg)["hparams_search"])
    base_overrides = [*space.base_overrides(), *settings.overrides]

    def compose(overrides: list[str]) -> TrainJob:
        trial_cfg = hydra.compose(config_name="train", overrides=overrides)
        check_config(trial_cfg, "train")  # a trial skips the train app's own check
        return TrainJob.from_config(plain(trial_cfg))

    def preset(params: Any, note: str) -> Path:
        return write_preset(settings.preset_dir, settings.study_name, base_overrides, params, note,
                            settings.config_dir)

    result = run_worker(settings, space, compose, preset)
    print(trial_table(result.study))
    if result.preset is not None:
        print(f"best trial preset: {result.preset}  (flavortag train +experiment={result.preset.stem})")
    complete = [t.value for t in result.study.trials if t.value is not None]
    return float(min(complete)) if complete else math.inf


if __name__ == "__main__":
    main()
