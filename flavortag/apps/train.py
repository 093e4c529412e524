"""``flavortag train`` / ``python -m flavortag.train``: train a tagger (Hydra, ``configs/train.yaml``).

The work is :func:`flavortag.training.train`; see :mod:`flavortag.training`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import hydra
from omegaconf import DictConfig

from flavortag.apps import CONFIG_DIR
from flavortag.apps.schema import check_config
from flavortag.errors import reported
from flavortag.training import train


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
