"""``flavortag predict``: score new event files with a trained tagger (Hydra, ``configs/predict.yaml``).

The work is :func:`flavortag.pipelines.predict.predict`.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from flavortag.apps import CONFIG_DIR, plain
from flavortag.apps.schema import check_config
from flavortag.errors import reported


def predict(cfg: DictConfig) -> list[Path]:
    """Parse a composed predict config and score its inputs; returns the written files."""
    from flavortag.pipelines import predict as pipeline  # (here, so that --help needs no torch)

    return pipeline.predict(pipeline.PredictSettings.from_config(plain(cfg)))


@hydra.main(config_path=CONFIG_DIR, config_name="predict", version_base="1.3")
@reported
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``flavortag predict``."""
    check_config(cfg, "predict")  # before any data is read or any run opened
    predict(cfg)


if __name__ == "__main__":
    main()
