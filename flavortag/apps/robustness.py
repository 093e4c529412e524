"""``flavortag robustness``: the robustness report (Hydra, ``configs/robustness.yaml``).

The work is :func:`flavortag.pipelines.robustness.robustness`.
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

from flavortag.apps import CONFIG_DIR, plain
from flavortag.apps.schema import check_config
from flavortag.errors import reported


def robustness(cfg: DictConfig) -> dict[str, Any]:
    """Parse a composed robustness config and build the report; returns the tables and the parent run id."""
    from flavortag.pipelines import robustness as pipeline  # (here, so that --help needs no torch)

    return pipeline.robustness(pipeline.RobustnessSettings.from_config(plain(cfg)))


@hydra.main(config_path=CONFIG_DIR, config_name="robustness", version_base="1.3")
@reported
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``flavortag robustness``."""
    check_config(cfg, "robustness")  # before any data is read or any run opened
    result = robustness(cfg)
    print(result["markdown"])
    print(f"MLflow parent run {result['parent_run_id']}")


if __name__ == "__main__":
    main()
