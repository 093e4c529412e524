"""Typed training settings, parsed once from the ``trainer`` config node.

Every knob of the torch loop becomes a typed field of :class:`TrainerSettings`.
Its defaults, types and ranges are those of the ``trainer`` schema
(:class:`flavortag.schema.groups.TrainerSchema`, the single source; the YAML
``configs/trainer/default.yaml`` chooses the same values, held equal by a
test): bad values fail here, before any data is read or MLflow run opened,
with the config key and its valid range in the message. :func:`check_split`
does the same for ``data.split``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flavortag.batching import Layout
from flavortag.schema import check_node, defaults
from flavortag.schema.groups import TrainerSchema

__all__ = ["TrainerSettings", "check_split"]

def _typed(node: Mapping[str, Any]) -> dict[str, Any]:
    """A checked ``trainer`` node as :class:`TrainerSettings` values: off switches (null) as 0, ``auto`` as None."""
    def zero_if_null(key: str, kind: type) -> Any:
        value = node.get(key)
        return kind(0) if value in (None, "") else kind(value)

    resume = node.get("resume")
    pin = node.get("pin_memory")
    return {
        **{k: node[k] for k in ("device", "precision", "layout", "backend")},
        **{k: bool(node[k]) for k in ("compile", "class_weights", "progress", "distributed",
                                       "save_rank_weights", "bucketing", "resume_allow_changes")},
        **{k: int(node[k]) for k in ("max_epochs", "batch_size", "eval_batch_size",
                                      "early_stopping_patience")},
        **{k: float(node[k]) for k in ("lr", "weight_decay", "warmup_fraction", "min_lr_ratio")},
        "grad_clip_norm": zero_if_null("grad_clip_norm", float),
        "num_workers": zero_if_null("num_workers", int),
        "checkpoint_every_steps": zero_if_null("checkpoint_every_steps", int),
        "max_steps_per_epoch": zero_if_null("max_steps_per_epoch", int),
        "pin_memory": None if str(pin) == "auto" else bool(pin),
        "resume": None if resume in (None, "", False) else str(resume),
    }


#: The schema's defaults, as typed values.
_D = _typed(defaults(TrainerSchema))


@dataclass(frozen=True)
class TrainerSettings:
    """The ``trainer`` node as typed values (see ``configs/trainer/default.yaml`` for their meaning).

    ``max_steps_per_epoch``, ``checkpoint_every_steps``, ``grad_clip_norm`` and
    ``num_workers`` are 0 when off (null); ``pin_memory`` is None for ``auto``
    (pin on CUDA); ``resume`` is None, ``"auto"`` or a checkpoint path.
    Defaults: the schema's.
    """

    device: str = _D["device"]
    precision: str = _D["precision"]
    compile: bool = _D["compile"]
    max_epochs: int = _D["max_epochs"]
    batch_size: int = _D["batch_size"]
    eval_batch_size: int = _D["eval_batch_size"]
    lr: float = _D["lr"]
    weight_decay: float = _D["weight_decay"]
    warmup_fraction: float = _D["warmup_fraction"]
    min_lr_ratio: float = _D["min_lr_ratio"]
    grad_clip_norm: float = _D["grad_clip_norm"]
    class_weights: bool = _D["class_weights"]
    early_stopping_patience: int = _D["early_stopping_patience"]
    layout: Layout = _D["layout"]
    num_workers: int = _D["num_workers"]
    pin_memory: bool | None = _D["pin_memory"]
    checkpoint_every_steps: int = _D["checkpoint_every_steps"]
    resume: str | None = _D["resume"]
    resume_allow_changes: bool = _D["resume_allow_changes"]
    progress: bool = _D["progress"]
    distributed: bool = _D["distributed"]
    backend: str = _D["backend"]
    save_rank_weights: bool = _D["save_rank_weights"]
    max_steps_per_epoch: int = _D["max_steps_per_epoch"]
    bucketing: bool = _D["bucketing"]

    @classmethod
    def from_config(cls, trainer: Mapping[str, Any]) -> TrainerSettings:
        """Parse a ``trainer`` config node, checked against the schema (missing keys: its defaults)."""
        values = {**defaults(TrainerSchema), **{str(k): v for k, v in dict(trainer).items()}}
        check_node(values, TrainerSchema, "trainer")
        return cls(**_typed(values))


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
        if not (0.0 <= fraction < 1.0 and (low_ok or fraction > 0.0)):
            words = "in [0, 1)" if low_ok else "in (0, 1): training needs " + (
                "training events" if name == "train" else "validation events (loss curve, early "
                "stopping, best checkpoint)")
            raise ValueError(f"data.split.{name} must be {words}, not {value!r}")
        fractions[name] = fraction
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"data.split fractions must sum to 1, not {total:g} ({fractions})")
    return fractions
