"""Checking a config node (a plain dict) against its schema dataclass, with one-line messages.

:func:`check_node` walks a node: an unknown key gets the closest valid key, a
value of the wrong type, out of its bounds or not among its choices gets the
key and what it accepts in words; each schema's ``check(values, key)`` rule
runs. :func:`defaults` is a schema's defaults as a plain dict. No Hydra, no
OmegaConf: the apps and the layers below (typed settings, models) share it.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union

from flavortag.errors import UsageError
from flavortag.schema.fields import FileName


# ------------------------------------------------------------------ the checker
class _Mismatch(Exception):
    """A value that does not fit a type (the words say what would)."""


def type_hints(tp: Any) -> dict[str, Any]:
    return typing.get_type_hints(tp)


def is_union(tp: Any) -> bool:
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
    if is_union(tp):
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
    if is_union(tp):
        if value is None:
            if type(None) in args:
                return
            raise _Mismatch
        nodes = [a for a in args if dataclasses.is_dataclass(a)]
        if nodes and isinstance(value, dict):
            check_node(value, _choose(nodes, value, key), key)
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
        check_node(value, tp, key)  # type: ignore[arg-type]
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
    names = {typing.get_args(type_hints(n)["name"])[0]: n for n in nodes}
    name = value.get("name")
    if name not in names:
        raise UsageError(f"{key}.name must be one of {', '.join(names)}, not {name!r} "
                         f"(choose the group, e.g. {key}={next(iter(names))})")
    return names[name]


def check_node(values: dict[str, Any], schema: Any, key: str) -> None:
    """Check a config node (a dict) against a schema dataclass; ``key`` is its dotted name ('' at the top)."""
    hints = type_hints(schema)
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


def plain_data(node: Any) -> Any:
    """Any mapping / sequence tree (a config node, whatever its library) as plain dicts and lists."""
    if isinstance(node, Mapping):
        return {str(k): plain_data(v) for k, v in node.items()}
    if isinstance(node, Sequence) and not isinstance(node, str | bytes):
        return [plain_data(v) for v in node]
    return node


def defaults(schema: Any, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """The defaults of a schema dataclass as a plain dict (nested nodes as dicts, lists copied).

    ``drop``: keys left out (a model's ``name``).
    """
    return {k: v for k, v in dataclasses.asdict(schema()).items() if k not in drop}


def bounds_of(schema: Any, name: str) -> Mapping[str, float]:
    """The bounds (``ge``, ``gt``, ``le``, ``lt``) of field ``name`` of ``schema``."""
    return next(f.metadata for f in dataclasses.fields(schema) if f.name == name)
