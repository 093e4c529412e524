"""``flavortag compare``: evaluated runs side by side (Hydra, ``configs/compare.yaml``).

The work is :func:`flavortag.pipelines.compare.compare`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from flavortag.apps import CONFIG_DIR, plain
from flavortag.apps.schema import check_config
from flavortag.errors import reported


def compare(cfg: DictConfig) -> dict[str, dict[str, float]]:
    """Parse a composed compare config and build the comparison; returns ``{run name: flat metrics}``."""
    from flavortag.pipelines import compare as pipeline  # (here, so that --help needs no torch)

    return pipeline.compare(pipeline.CompareSettings.from_config(plain(cfg)))


@hydra.main(config_path=CONFIG_DIR, config_name="compare", version_base="1.3")
@reported
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``flavortag compare``."""
    check_config(cfg, "compare")  # before any data is read or any run opened
    compare(cfg)


if __name__ == "__main__":
    main()
