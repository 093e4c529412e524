"""The checker: walk a composed config against its app's schema; word Hydra's refusals."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from flavortag.apps.schema.apps import APPS
from flavortag.schema.nodes import check_node, is_union, type_hints


def check_values(values: Mapping[str, Any], app: str) -> None:
    """Check a plain config dict (resolved) against the schema of ``app``; :class:`UsageError` if bad."""
    check_node(dict(values), APPS[app], "")


def check_config(cfg: Any, app: str) -> None:
    """Check an app's composed config (a ``DictConfig``) before it runs; :class:`UsageError` if bad.

    Interpolations are resolved first (an unresolvable one is OmegaConf's
    error, also a usage error); a mandatory value not given (``???``) is left
    for the app to ask for.
    """
    from omegaconf import OmegaConf

    values = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert isinstance(values, dict)
    check_values({str(k): v for k, v in values.items()}, app)


# ------------------------------------------------------------------ Hydra's refusal of an override
def _flat_keys(node: Any, prefix: str = "") -> list[str]:
    keys: list[str] = []
    if isinstance(node, Mapping):
        for k, v in node.items():
            keys.append(f"{prefix}{k}")
            keys += _flat_keys(v, f"{prefix}{k}.")
    return keys


def schema_keys(schema: Any, prefix: str = "") -> list[str]:
    """Every key of a schema dataclass, dotted (``trainer.lr``), nested nodes included."""
    keys: list[str] = []
    hints = type_hints(schema)
    for f in dataclasses.fields(schema):
        keys.append(f"{prefix}{f.name}")
        tp = hints[f.name]
        nodes = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)] if is_union(tp) else (
            [tp] if dataclasses.is_dataclass(tp) else [])
        for node in nodes:
            keys += [k for k in schema_keys(node, f"{prefix}{f.name}.") if k not in keys]
    return keys


def _composed_keys(app: str, overrides: list[str]) -> list[str] | None:
    """The keys of ``app``'s config composed with ``overrides`` (None if it does not compose)."""
    try:
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra
        from omegaconf import OmegaConf

        from flavortag.apps import CONFIG_DIR

        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name=app, overrides=overrides)
        return _flat_keys(OmegaConf.to_container(cfg, resolve=False))
    except Exception:  # noqa: BLE001 - a sweep or another bad override: fall back to the schema
        return None


def unknown_override(app: str, full_key: str, overrides: Sequence[str]) -> str:
    """The message for an override of a key the config lacks: ``unknown key K; did you mean K2?``.

    The candidates are the keys of the config composed with the other
    overrides (so ``model.`` keys are those of the chosen model), else every
    key of the app's schema.
    """
    others = [o for o in overrides if "=" in o and not o.startswith("-")
              and o.split("=", 1)[0].lstrip("+~") != full_key]
    keys = _composed_keys(app, others) if app in APPS else None
    if keys is None:
        keys = schema_keys(APPS[app]) if app in APPS else []
    parent, _, leaf = full_key.rpartition(".")
    siblings = [k.rpartition(".")[2] for k in keys if k.rpartition(".")[0] == parent]
    close = difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.6)
    if close:
        return f"unknown key {full_key}; did you mean {parent + '.' if parent else ''}{close[0]}?"
    close = difflib.get_close_matches(full_key, keys, n=1, cutoff=0.6)
    if close:
        return f"unknown key {full_key}; did you mean {close[0]}?"
    listed = ", ".join(sorted(siblings)) if siblings else "none"
    return f"unknown key {full_key}; the keys of {parent or 'the config'} are {listed}"
