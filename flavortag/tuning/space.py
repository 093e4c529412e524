"""Search spaces of ``flavortag tune``: parsed and checked once, sampled per trial, turned into overrides.

A search space (``configs/hparams_search/<model>.yaml``) names the model and,
per train-config key, a distribution::

    model: transformer
    params:
      trainer:
        lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
      model:
        depth: {type: int, low: 1, high: 4}
        embed_dim: {type: categorical, choices: [32, 64, 96]}

(a mapping with a ``type`` is a distribution, any other mapping a level of
the train config; dotted keys, ``trainer.lr: {...}``, work too, but only the
nested form can be changed on the command line:
``hparams_search.params.trainer.lr.high=1e-2``).

``type`` is ``float`` (``low``, ``high``, optional ``log`` or ``step``),
``int`` (same, integers) or ``categorical`` (``choices``: numbers, strings,
booleans or null). Every mistake (unknown type or field, ``low >= high``, a
log scale with ``low <= 0``, a missing field, an unknown top-level key, a key
that the train config does not have) is a :class:`~flavortag.errors.UsageError`
that names the key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flavortag.errors import UsageError
from flavortag.schema.nodes import plain_data

__all__ = ["Param", "SearchSpace", "format_override"]

#: Top-level keys of a search-space file.
_TOP_KEYS = ("name", "model", "overrides", "params")
_FIELDS = {"float": {"type", "low", "high", "log", "step"},
           "int": {"type", "low", "high", "log", "step"},
           "categorical": {"type", "choices"}}
_WHERE = "hparams_search"


@dataclass(frozen=True)
class Param:
    """One tuned train-config key (``model.depth``) and its distribution."""

    key: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """The value of this parameter for an optuna ``trial`` (its name in the trial is ``key``)."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.key, int(self.low or 0), int(self.high or 0),
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low or 0.0), float(self.high or 0.0),
                                   step=None if self.step is None else float(self.step), log=self.log)


def _number(value: Any, key: str, field: str, integer: bool) -> float | int:
    where = f"{_WHERE}.params.{key}.{field}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"{where} must be a{'n integer' if integer else ' number'}, not {value!r}")
    if integer and not float(value).is_integer():
        raise UsageError(f"{where} must be an integer for type int, not {value!r}")
    if math.isnan(float(value)) or math.isinf(float(value)):
        raise UsageError(f"{where} must be finite, not {value!r}")
    return int(value) if integer else float(value)


def _param(key: str, spec: Any) -> Param:
    where = f"{_WHERE}.params.{key}"
    if not isinstance(spec, Mapping):
        raise UsageError(f"{where} must be a mapping such as {{type: float, low: 1e-4, high: 1e-2, "
                         f"log: true}}, not {spec!r}")
    kind = spec.get("type")
    if kind not in _FIELDS:
        raise UsageError(f"{where}.type must be one of {', '.join(_FIELDS)}, not {kind!r}")
    unknown = sorted(str(k) for k in spec if str(k) not in _FIELDS[kind])
    if unknown:
        raise UsageError(f"{where}: unknown field(s) {', '.join(unknown)} for type {kind}; "
                         f"the fields are {', '.join(sorted(_FIELDS[kind]))}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list | tuple) or not choices:
            raise UsageError(f"{where}.choices must be a non-empty list, not {choices!r}")
        for choice in choices:
            if choice is not None and not isinstance(choice, bool | int | float | str):
                raise UsageError(f"{where}.choices: {choice!r} is not a number, string, boolean or "
                                 "null (optuna's categorical choices); tune its parts as separate keys")
        return Param(key, kind, choices=tuple(choices))
    integer = kind == "int"
    for field in ("low", "high"):
        if spec.get(field) is None:
            raise UsageError(f"{where}.{field} is missing (type {kind} needs low and high)")
    low = _number(spec["low"], key, "low", integer)
    high = _number(spec["high"], key, "high", integer)
    if low >= high:
        raise UsageError(f"{where}: low ({low}) must be below high ({high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise UsageError(f"{where}.log must be true or false, not {log!r}")
    if log and low <= 0:
        raise UsageError(f"{where}: a log scale needs low > 0, not {low}")
    step = spec.get("step")
    if step is not None:
        step = _number(step, key, "step", integer)
        if step <= 0:
            raise UsageError(f"{where}.step must be > 0, not {step}")
        if log:
            raise UsageError(f"{where}: step and log: true cannot be combined (optuna)")
    return Param(key, kind, low=low, high=high, log=log, step=step)


def _flatten(node: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """``{trainer: {lr: {type: ...}}}`` -> ``{"trainer.lr": {type: ...}}`` (a mapping with ``type`` is a leaf)."""
    flat: dict[str, Any] = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and "type" not in value and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


@dataclass(frozen=True)
class SearchSpace:
    """A parsed search space: the model, extra train overrides and the tuned keys."""

    model: str | None
    overrides: tuple[str, ...]
    params: tuple[Param, ...]

    @classmethod
    def from_config(cls, node: Mapping[str, Any]) -> SearchSpace:
        """Parse and check the ``hparams_search`` node (plain data; see the module doc for its form)."""
        node = plain_data(node)
        if not isinstance(node, Mapping):
            raise UsageError(f"{_WHERE} must be a mapping with params: {{...}}, not {node!r}")
        unknown = sorted(str(k) for k in node if str(k) not in _TOP_KEYS)
        if unknown:
            raise UsageError(f"{_WHERE}: unknown key(s) {', '.join(unknown)}; "
                             f"the keys are {', '.join(_TOP_KEYS)}")
        params = node.get("params")
        if not isinstance(params, Mapping) or not params:
            raise UsageError(f"{_WHERE}.params must map train-config keys (model.depth, trainer.lr, "
                             f"...) to distributions, not {params!r}")
        model = node.get("model")
        if model is not None and not isinstance(model, str):
            raise UsageError(f"{_WHERE}.model must be a model name (transformer, ...), not {model!r}")
        overrides = node.get("overrides") or []
        if not isinstance(overrides, list | tuple) or not all(isinstance(o, str) for o in overrides):
            raise UsageError(f"{_WHERE}.overrides must be a list of key=value strings, not {overrides!r}")
        return cls(model=model, overrides=tuple(overrides),
                   params=tuple(_param(k, v) for k, v in _flatten(params, "").items()))

    def check_keys(self, train_cfg: Mapping[str, Any]) -> None:
        """Refuse a tuned key that the composed train config does not have (names the closest level)."""
        for param in self.params:
            parent, _, leaf = param.key.rpartition(".")
            node: Any = train_cfg
            for part in parent.split(".") if parent else ():
                node = node.get(part) if isinstance(node, Mapping) else None
            if not isinstance(node, Mapping) or leaf not in node:
                keys = sorted(str(k) for k in node) if isinstance(node, Mapping) else []
                known = f"; the keys of {parent or 'the config'} are {', '.join(keys)}" if keys else ""
                raise UsageError(f"{_WHERE}.params.{param.key}: no such key in the train config "
                                 f"(model={self.model or train_cfg['model']['name']}){known}")

    def base_overrides(self) -> list[str]:
        """The train overrides every trial starts from: ``model=<model>`` and the space's own."""
        return ([f"model={self.model}"] if self.model else []) + list(self.overrides)


def format_override(key: str, value: Any) -> str:
    """``key=value`` as a Hydra override string (strings quoted, floats exact, null, true/false)."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"  # Hydra reads 1e-05 as a float only with a dot
    else:
        text = "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
    return f"{key}={text}"
