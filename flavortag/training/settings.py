"""Typed training settings, parsed once from the ``trainer`` config node.

Every knob of the torch loop (``configs/trainer/default.yaml``) becomes a typed
field of :class:`TrainerSettings`; bad values fail here, before any data is
read or MLflow run opened, with the config key and its valid range in the
message. :func:`check_split` does the same for ``data.split``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from flavortag.batching import Layout, check_layout

__all__ = ["TrainerSettings", "check_split"]

#: ``field: (lowest, highest, lowest allowed?, highest allowed?, words)``; None = unbounded.
_RANGES: dict[str, tuple[float | None, float | None, bool, bool, str]] = {
    "max_epochs": (1, None, True, False, "an integer >= 1"),
    "batch_size": (1, None, True, False, "an integer >= 1"),
    "eval_batch_size": (1, None, True, False, "an integer >= 1"),
    "lr": (0.0, None, False, False, "a number > 0"),
    "weight_decay": (0.0, None, True, False, "a number >= 0"),
    "warmup_fraction": (0.0, 1.0, True, False, "a number in [0, 1)"),
    "min_lr_ratio": (0.0, 1.0, True, True, "a number in [0, 1]"),
    "grad_clip_norm": (0.0, None, True, False, "a number >= 0 (0 or null: no clipping)"),
    "early_stopping_patience": (1, None, True, False, "an integer >= 1"),
    "num_workers": (0, None, True, False, "an integer >= 0"),
    "checkpoint_every_steps": (0, None, True, False, "an integer >= 0 (0 or null: off)"),
    "max_steps_per_epoch": (0, None, True, False, "an integer >= 0 (0 or null: no limit)"),
}


def _in_range(value: float, low: float | None, high: float | None, low_ok: bool, high_ok: bool) -> bool:
    if math.isnan(value):
        return False
    if low is not None and (value < low or (value == low and not low_ok)):
        return False
    return not (high is not None and (value > high or (value == high and not high_ok)))


def _number(trainer: Mapping[str, Any], key: str, kind: type, optional: bool = False) -> Any:
    """``trainer[key]`` as ``kind`` (int or float); an ``optional`` key that is missing or null is 0."""
    value = trainer.get(key) if optional else trainer[key]
    if optional and value in (None, ""):
        return kind(0)
    bad = ValueError(f"trainer.{key} must be {_RANGES[key][4]}, not {value!r}")
    if isinstance(value, bool) or value is None:
        raise bad
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise bad from None
    if kind is int:
        if not number.is_integer():
            raise bad
        return int(number)
    return number


def check_split(data: Mapping[str, Any]) -> dict[str, float]:
    """The ``data.split`` fractions, checked; ``{}`` when streaming (the split is not used then).

    Each of ``train`` and ``val`` must be in (0, 1), ``test`` in [0, 1), only
    these three keys, summing to 1: a run needs training events and
    validation events (for the loss curve, early stopping and the best
    checkpoint).
    """
    if data.get("streaming", False):
        return {}
    split = data.get("split")
    if not isinstance(split, Mapping) or not split:
        raise ValueError(f"data.split must map train, val (and test) to fractions, not {split!r}")
    unknown = sorted(str(k) for k in split if str(k) not in ("train", "val", "test"))
    if unknown:
        raise ValueError(f"data.split: unknown split(s) {unknown}; the splits are train, val, test")
    fractions: dict[str, float] = {}
    for name in ("train", "val", "test"):
        value = split.get(name, 0.0)
        try:
            fraction = float(value if value is not None else 0.0)
        except (TypeError, ValueError):
            raise ValueError(f"data.split.{name} must be a fraction, not {value!r}") from None
        low_ok = name == "test"
        if not _in_range(fraction, 0.0, 1.0, low_ok, False):
            words = "in [0, 1)" if low_ok else "in (0, 1): training needs " + (
                "training events" if name == "train" else "validation events (loss curve, early "
                "stopping, best checkpoint)")
            raise ValueError(f"data.split.{name} must be {words}, not {value!r}")
        fractions[name] = fraction
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"data.split fractions must sum to 1, not {total:g} ({fractions})")
    return fractions


def _bool_or_auto(value: Any) -> bool | None:
    """``"auto"`` -> None, anything else -> bool."""
    return None if str(value) == "auto" else bool(value)


@dataclass(frozen=True)
class TrainerSettings:
    """The ``trainer`` node as typed values (see ``configs/trainer/default.yaml`` for their meaning).

    ``max_steps_per_epoch`` and ``checkpoint_every_steps`` are 0 when off;
    ``pin_memory`` is None for ``auto`` (pin on CUDA); ``resume`` is None,
    ``"auto"`` or a checkpoint path.
    """

    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    max_epochs: int = 20
    batch_size: int = 256
    eval_batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_fraction: float = 0.05
    min_lr_ratio: float = 0.02
    grad_clip_norm: float = 1.0
    class_weights: bool = False
    early_stopping_patience: int = 5
    layout: Layout = "padded"
    num_workers: int = 0
    pin_memory: bool | None = None
    checkpoint_every_steps: int = 0
    resume: str | None = None
    resume_allow_changes: bool = False
    progress: bool = True
    distributed: bool = False
    backend: str = "auto"
    save_rank_weights: bool = False
    max_steps_per_epoch: int = 0
    bucketing: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name in _RANGES:
                low, high, low_ok, high_ok, words = _RANGES[f.name]
                value = getattr(self, f.name)
                if not _in_range(float(value), low, high, low_ok, high_ok):
                    raise ValueError(f"trainer.{f.name} must be {words}, not {value!r}")

    @classmethod
    def from_config(cls, trainer: Mapping[str, Any]) -> TrainerSettings:
        """Parse a ``trainer`` config node (missing optional keys take their defaults)."""
        try:
            layout = check_layout(str(trainer["layout"]))
        except ValueError:
            raise ValueError(
                f"trainer.layout must be padded or ragged, not {str(trainer['layout'])!r}"
            ) from None
        resume = trainer.get("resume")
        return cls(
            device=str(trainer["device"]),
            precision=str(trainer["precision"]),
            compile=bool(trainer.get("compile")),
            max_epochs=_number(trainer, "max_epochs", int),
            batch_size=_number(trainer, "batch_size", int),
            eval_batch_size=_number(trainer, "eval_batch_size", int),
            lr=_number(trainer, "lr", float),
            weight_decay=_number(trainer, "weight_decay", float),
            warmup_fraction=_number(trainer, "warmup_fraction", float),
            min_lr_ratio=_number(trainer, "min_lr_ratio", float),
            grad_clip_norm=_number(trainer, "grad_clip_norm", float, optional=True),
            class_weights=bool(trainer["class_weights"]),
            early_stopping_patience=_number(trainer, "early_stopping_patience", int),
            layout=layout,
            num_workers=_number(trainer, "num_workers", int, optional=True),
            pin_memory=_bool_or_auto(trainer["pin_memory"]),
            checkpoint_every_steps=_number(trainer, "checkpoint_every_steps", int, optional=True),
            resume=None if resume in (None, "", False) else str(resume),
            resume_allow_changes=bool(trainer.get("resume_allow_changes", False)),
            progress=bool(trainer["progress"]),
            distributed=bool(trainer.get("distributed", False)),
            backend=str(trainer.get("backend", "auto")),
            save_rank_weights=bool(trainer.get("save_rank_weights")),
            max_steps_per_epoch=_number(trainer, "max_steps_per_epoch", int, optional=True),
            bucketing=bool(trainer.get("bucketing", True)),
        )
