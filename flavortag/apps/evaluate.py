"""``flavortag evaluate run_id=...``: metrics, plots, working points of a trained tagger (Hydra).

Config ``configs/evaluate.yaml``; the work is :func:`flavortag.pipelines.evaluate.evaluate_run`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from flavortag.apps import CONFIG_DIR, plain
from flavortag.apps.schema import check_config
from flavortag.errors import reported


def evaluate_run(cfg: DictConfig) -> tuple[str, dict[str, float]]:
    """Parse a composed evaluate config and run the evaluation; returns the model's name and the metrics."""
    from flavortag.pipelines import evaluate as pipeline  # (here, so that --help needs no torch)

    return pipeline.evaluate_run(pipeline.EvaluateSettings.from_config(plain(cfg)))


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """As :func:`evaluate_run`; returns the flat metrics."""
    return evaluate_run(cfg)[1]


@hydra.main(config_path=CONFIG_DIR, config_name="evaluate", version_base="1.3")
@reported
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``flavortag evaluate``: the metrics tables, once (logged by the evaluation)."""
    check_config(cfg, "evaluate")  # before any data is read or any run opened
    evaluate_run(cfg)  # logs its table(s) once, under the model's and the data's name


if __name__ == "__main__":
    main()
