"""Typed training settings, parsed once from the ``trainer`` config node.

Every knob of the torch loop (``configs/trainer/default.yaml``) becomes a typed
field of :class:`TrainerSettings`; bad values fail here, before any data is
read, with the config key in the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flavortag.batching import Layout, check_layout

__all__ = ["TrainerSettings"]


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
    progress: bool = True
    distributed: bool = False
    backend: str = "auto"
    save_rank_weights: bool = False
    max_steps_per_epoch: int = 0

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
            max_epochs=int(trainer["max_epochs"]),
            batch_size=int(trainer["batch_size"]),
            eval_batch_size=int(trainer["eval_batch_size"]),
            lr=float(trainer["lr"]),
            weight_decay=float(trainer["weight_decay"]),
            warmup_fraction=float(trainer["warmup_fraction"]),
            min_lr_ratio=float(trainer["min_lr_ratio"]),
            grad_clip_norm=float(trainer["grad_clip_norm"] or 0.0),
            class_weights=bool(trainer["class_weights"]),
            early_stopping_patience=int(trainer["early_stopping_patience"]),
            layout=layout,
            num_workers=int(trainer.get("num_workers") or 0),
            pin_memory=_bool_or_auto(trainer["pin_memory"]),
            checkpoint_every_steps=int(trainer.get("checkpoint_every_steps") or 0),
            resume=None if resume in (None, "", False) else str(resume),
            progress=bool(trainer["progress"]),
            distributed=bool(trainer.get("distributed", False)),
            backend=str(trainer.get("backend", "auto")),
            save_rank_weights=bool(trainer.get("save_rank_weights")),
            max_steps_per_epoch=int(trainer.get("max_steps_per_epoch") or 0),
        )
