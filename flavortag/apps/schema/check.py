"""The checker: walk a composed config against its app's schema; word Hydra's refusals."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union

from flavortag.apps.schema.apps import APPS
from flavortag.apps.schema.fields import FileName
from flavortag.errors import UsageError


# ------------------------------------------------------------------ the checker
class _Mismatch(Exception):
    """A value that does not fit a type (the words say what would)."""


def _hints(tp: Any) -> dict[str, Any]:
    return typing.get_type_hints(tp)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _words(tp: Any, meta: Mapping[str, float] | None = None) -> str:
    """What a type accepts, in words (``"an integer >= 1"``, ``"one of a, b"``)."""
    meta = meta or {}
    low = ("gt", "(") if "gt" in meta else ("ge", "[") if "ge" in meta else None
    high = ("lt", ")") if "lt" in meta else ("le", "]") if "le" in meta else None
    if low and high:  # an interval, as the trainer's own messages write it: "in [0, 1)"
        limits = f"in {low[1]}{meta[low[0]]:g}, {meta[high[0]]:g}{high[1]}"
    else:
        limits = " and ".join(f"{op} {meta[k]:g}" for k, op in (("gt", ">"), ("ge", ">="), ("lt", "<"),
                                                                 ("le", "<=")) if k in meta)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return "anything"
    if _is_union(tp):
        parts = [_words(a, meta) for a in args if a is not type(None)]
        text = " or ".join(parts)
        return f"{text} or null" if type(None) in args else text
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is list:
        return f"a list, each {_words(args[0], meta)}" if args else "a list"
    if origin is dict:
        return "a mapping"
    if tp is bool:
        return "true or false"
    if tp is int:
        return f"an integer {limits}".rstrip()
    if tp is float:
        return f"a number {limits}".rstrip()
    if tp is str:
        return "a string"
    if tp is FileName:
        return "a file name or pattern"
    if dataclasses.is_dataclass(tp):
        return "a config node (key: value, ...)"
    return getattr(tp, "__name__", str(tp))


def _in_bounds(number: float, meta: Mapping[str, float]) -> bool:
    if number != number:  # NaN
        return False
    return not (("ge" in meta and number < meta["ge"]) or ("gt" in meta and number <= meta["gt"])
                or ("le" in meta and number > meta["le"]) or ("lt" in meta and number >= meta["lt"]))


def _fits(value: Any, tp: Any, key: str, meta: Mapping[str, float]) -> None:
    """Raise :class:`_Mismatch` unless ``value`` fits ``tp`` (and ``meta``'s bounds); recurse into nodes."""
    if tp is Any:
        return
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if _is_union(tp):
        if value is None:
            if type(None) in args:
                return
            raise _Mismatch
        nodes = [a for a in args if dataclasses.is_dataclass(a)]
        if nodes and isinstance(value, dict):
            _check_node(value, _choose(nodes, value, key), key)
            return
        for option in args:
            if option is type(None):
                continue
            try:
                _fits(value, option, key, meta)
                return
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        if isinstance(value, bool) and not any(isinstance(a, bool) for a in args):
            raise _Mismatch
        if value in args or (not isinstance(value, bool) and str(value) in [str(a) for a in args]):
            return
        raise _Mismatch
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _Mismatch
        _check_node(value, tp, key)  # type: ignore[arg-type]
        return
    if origin is list:
        if not isinstance(value, list):
            raise _Mismatch
        for i, item in enumerate(value):
            try:
                _fits(item, args[0] if args else Any, f"{key}[{i}]", meta)
            except _Mismatch:
                raise UsageError(f"{key}[{i}] must be {_words(args[0], meta)}, not {item!r}") from None
        return
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        return
    if value is None:
        raise _Mismatch
    if tp is bool:
        if not isinstance(value, bool):
            raise _Mismatch
        return
    if tp is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise _Mismatch
        return
    if tp is FileName:
        if not isinstance(value, str):
            raise _Mismatch
        return
    if tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Mismatch
        if tp is int and not float(value).is_integer():
            raise _Mismatch
        if not _in_bounds(float(value), meta):
            raise _Mismatch
        return
    raise TypeError(f"schema type {tp!r} of {key} is not supported")  # a schema bug, not the user's


def _choose(nodes: list[Any], value: dict[str, Any], key: str) -> Any:
    """The dataclass among ``nodes`` whose ``name`` literal is ``value["name"]``."""
    names = {typing.get_args(_hints(n)["name"])[0]: n for n in nodes}
    name = value.get("name")
    if name not in names:
        raise UsageError(f"{key}.name must be one of {', '.join(names)}, not {name!r} "
                         f"(choose the group, e.g. {key}={next(iter(names))})")
    return names[name]


def _check_node(values: dict[str, Any], schema: Any, key: str) -> None:
    """Check a config node (a dict) against a schema dataclass; ``key`` is its dotted name ('' at the top)."""
    hints = _hints(schema)
    known = [f.name for f in dataclasses.fields(schema)]
    prefix = f"{key}." if key else ""
    for name in values:
        if name not in hints:
            close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
            if close:
                raise UsageError(f"unknown key {prefix}{name}; did you mean {prefix}{close[0]}?")
            where = f" (model={values.get('name')})" if key == "model" else ""
            raise UsageError(f"unknown key {prefix}{name}; the keys of {key or 'the config'}{where} "
                             f"are {', '.join(known)}")
    for f in dataclasses.fields(schema):
        if f.name not in values:
            continue
        value, tp = values[f.name], hints[f.name]
        if isinstance(value, str) and value == "???":  # a mandatory value not given: the app says so
            continue
        try:
            _fits(value, tp, f"{prefix}{f.name}", f.metadata)
        except _Mismatch:
            raise UsageError(f"{prefix}{f.name} must be {_words(tp, f.metadata)}, not {value!r}") from None
    check = getattr(schema, "check", None)
    if check is not None:
        try:
            check(values, key)
        except UsageError:
            raise
        except (ValueError, TypeError) as err:
            raise UsageError(str(err)) from None


def check_values(values: Mapping[str, Any], app: str) -> None:
    """Check a plain config dict (resolved) against the schema of ``app``; :class:`UsageError` if bad."""
    _check_node(dict(values), APPS[app], "")


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


def _schema_keys(schema: Any, prefix: str = "") -> list[str]:
    keys: list[str] = []
    hints = _hints(schema)
    for f in dataclasses.fields(schema):
        keys.append(f"{prefix}{f.name}")
        tp = hints[f.name]
        nodes = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)] if _is_union(tp) else (
            [tp] if dataclasses.is_dataclass(tp) else [])
        for node in nodes:
            keys += [k for k in _schema_keys(node, f"{prefix}{f.name}.") if k not in keys]
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
        keys = _schema_keys(APPS[app]) if app in APPS else []
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
