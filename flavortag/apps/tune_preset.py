"""The best trial as an experiment preset: ``<user config folder>/experiment/<study>_best.yaml``.

The preset is a ``# @package _global_`` config that ``flavortag train
+experiment=<study>_best`` takes as it is: the group choices of the study's
train overrides (``model=transformer``, ``data=zpole_30k``) become
``override /group: option`` entries of its defaults list, and the plain
values (the study's ``trainer.max_epochs=10`` and the tuned keys of the best
trial) become nested keys. Overrides that say where and how the study ran
rather than what it trained (:data:`LOCAL_KEYS`: the MLflow store, progress
bars, output and run names, Hydra's own settings) are left out, so the preset
trains the same model on another machine; a comment names them.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from flavortag.errors import UsageError
from flavortag.io.atomic import atomic_output

__all__ = ["LOCAL_KEYS", "preset_text", "write_preset"]

#: Key prefixes of overrides that belong to the machine the study ran on, not to the tuned setting.
LOCAL_KEYS: tuple[str, ...] = ("tracking", "hydra", "output_dir", "run_name", "trainer.progress")


def _is_local(key: str) -> bool:
    return any(key == k or key.startswith(f"{k}.") for k in LOCAL_KEYS)


def _split_overrides(overrides: Iterable[str],
                     config_dir: Path) -> tuple[list[str], dict[str, Any], list[str]]:
    """Defaults-list entries for group overrides, ``{key: value}`` for value overrides, and the
    overrides left out as local to the study's machine (:data:`LOCAL_KEYS`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    defaults: list[str] = []
    values: dict[str, Any] = {}
    local: list[str] = []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if _is_local(key):
            local.append(override.input_line or key)
            continue
        if override.is_delete():
            raise UsageError(f"override {override.input_line!r}: a deletion cannot go into a preset")
        value = override.value()
        if (config_dir / key).is_dir():
            entry = f"/{key}: {value}"
            defaults.append(entry if override.is_add() else f"override {entry}")
        else:
            values[key] = value
    return defaults, values, local


def preset_text(study_name: str, overrides: Iterable[str], params: Mapping[str, Any], note: str,
                config_dir: str | Path) -> str:
    """The YAML of the preset: the study's train ``overrides``, then the best trial's ``params``."""
    defaults, values, local = _split_overrides(overrides, Path(config_dir))
    values.update(params)
    body = OmegaConf.create({})
    for key, value in values.items():
        OmegaConf.update(body, key, value, force_add=True)
    lines = ["# @package _global_",
             f"# Best trial of the optuna study {study_name!r} ({note}),",
             f"# written by flavortag tune on {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC:",
             f"#   flavortag train +experiment={study_name}_best",
             *([f"# left out (where the study ran): {' '.join(local)}"] if local else []),
             "defaults:", *[f"  - {entry}" for entry in defaults], "  - _self_", ""]
    return "\n".join(lines) + OmegaConf.to_yaml(body)


def write_preset(directory: str | Path, study_name: str, overrides: Iterable[str],
                 params: Mapping[str, Any], note: str, config_dir: str | Path) -> Path:
    """Write ``<directory>/<study>_best.yaml`` atomically; returns its path."""
    path = Path(directory) / f"{study_name}_best.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = preset_text(study_name, overrides, params, note, config_dir)
    with atomic_output(path) as tmp:
        Path(tmp).write_text(text)
    return path
