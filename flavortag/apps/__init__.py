"""The command-line apps, one module each, thin entry points over the library.

Hydra apps (``train``, ``evaluate``, ``predict``, ``compare``, ``generate``)
read their primary config from :data:`CONFIG_DIR` (``flavortag/configs``,
shipped inside the package, also reachable as the top-level ``configs/`` of
a checkout); ``export``, ``convert`` and ``info`` are argparse commands.
Every module has ``main``; ``flavortag <app>`` (:mod:`flavortag.cli`) and
``python -m flavortag.apps.<app>`` run it.
"""

from pathlib import Path

#: Directory of the Hydra configs (package data).
CONFIG_DIR: str = str(Path(__file__).resolve().parents[1] / "configs")

__all__ = ["CONFIG_DIR"]
