"""``flavortag tune``: a hyperparameter search with optuna (Hydra, ``configs/tune.yaml``).

The work is :func:`flavortag.tuning.run_worker`; see :mod:`flavortag.tuning.study`.
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

from flavortag.apps import CONFIG_DIR
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
    from flavortag.apps.schema import check_config
    from flavortag.tuning import SearchSpace, run_worker, trial_table

    check_config(cfg, "tune")
    space = SearchSpace.from_config(cfg.hparams_search)

    def compose(overrides: list[str]) -> DictConfig:
        trial_cfg = hydra.compose(config_name="train", overrides=overrides)
        check_config(trial_cfg, "train")  # a trial skips the train app's own check
        return trial_cfg

    result = run_worker(cfg, space, compose, CONFIG_DIR)
    print(trial_table(result.study))
    if result.preset is not None:
        print(f"best trial preset: {result.preset}  (flavortag train +experiment={result.preset.stem})")
    complete = [t.value for t in result.study.trials if t.value is not None]
    return float(min(complete)) if complete else math.inf


if __name__ == "__main__":
    main()
