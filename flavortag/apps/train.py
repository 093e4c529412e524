"""``flavortag train`` / ``python -m flavortag.train``: train a tagger (Hydra, ``configs/train.yaml``).

Parses the config into a :class:`~flavortag.training.settings.TrainJob` and
runs the train pipeline, :func:`flavortag.pipelines.train.train`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig

from flavortag.apps import CONFIG_DIR, plain
from flavortag.apps.schema import check_config
from flavortag.errors import reported
from flavortag.training.settings import TrainJob

if TYPE_CHECKING:
    from flavortag.pipelines.train import EpochCallback


def train(cfg: DictConfig, epoch_callback: EpochCallback | None = None,
          run_tags: dict[str, str] | None = None) -> dict[str, Any]:
    """Parse a composed train config and run the job (see :func:`flavortag.pipelines.train.train`)."""
    job = TrainJob.from_config(plain(cfg))
    job.data.check_files()  # a missing sample is said now, not after the pipeline's imports
    from flavortag.pipelines import train as pipeline  # (here, so that --help needs no torch)

    return pipeline.train(job, epoch_callback=epoch_callback, run_tags=run_tags)


@hydra.main(config_path=CONFIG_DIR, config_name="train", version_base="1.3")
@reported
def main(cfg: DictConfig) -> float:
    """Hydra entry point; returns the best validation loss (for sweepers)."""
    check_config(cfg, "train")  # before any data is read or any run opened
    result = train(cfg)
    history: Mapping[str, list[float]] = result["history"]
    val = history.get("val/loss", [math.inf])
    return float(min(val)) if val else math.inf


if __name__ == "__main__":
    main()
