"""The tests' one way to compose an app's config as the command line would (Hydra's compose API)."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from flavortag.apps import CONFIG_DIR


def compose_app(app: str, overrides: list[str]) -> DictConfig:
    """The config of ``flavortag <app> <overrides...>``."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=app, overrides=overrides)
