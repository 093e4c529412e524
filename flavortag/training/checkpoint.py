"""Checkpoints: the resumable training state, atomic writes, finding the checkpoint to resume."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from flavortag.io.atomic import atomic_output

CHECKPOINT_VERSION = 1


@dataclass
class TrainState:
    """Everything a checkpoint must restore to continue a run."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best_val_loss: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    run_id: str | None = None
    history: dict[str, list[float]] = field(default_factory=dict)
    #: the current epoch's ``[loss * n, correct, events]`` over all ranks up to ``step_in_epoch``
    #: (empty at an epoch boundary), so a resumed epoch logs figures for the whole epoch
    epoch_sums: list[float] = field(default_factory=list)
    #: seconds of training in the current epoch up to ``step_in_epoch``
    epoch_seconds: float = 0.0


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` through a temporary file, so a kill never leaves a half-written checkpoint."""
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def find_resume_checkpoint(resume: str | None, checkpoint_dir: Path) -> Path | None:
    """The checkpoint ``trainer.resume`` names: None (fresh run), ``auto`` (``last.pt`` if any) or a path."""
    if resume is None:
        return None
    if resume == "auto":
        last = checkpoint_dir / "last.pt"
        return last if last.exists() else None
    path = Path(resume)
    if not path.exists():
        raise FileNotFoundError(f"trainer.resume: checkpoint {path} not found")
    return path


#: Keys of the train config that may change when a run is resumed: the length of
#: training, where and how it runs, and where it logs. Anything else changes the
#: model being trained, and the run's recorded parameters would no longer describe it.
RESUME_FREE_KEYS: tuple[str, ...] = (
    "trainer.resume", "trainer.resume_allow_changes", "trainer.max_epochs",
    "trainer.early_stopping_patience", "trainer.progress", "trainer.device", "trainer.num_workers",
    "trainer.pin_memory", "trainer.eval_batch_size", "trainer.checkpoint_every_steps",
    "trainer.backend", "tracking", "paths", "output_dir", "evaluate", "evaluate_after_training",
    "hydra",
)


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: node}


def changed_settings(saved: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The keys (dotted) whose values differ between a checkpoint's config and this job's: ``{key: (old, new)}``.

    Keys under :data:`RESUME_FREE_KEYS` are left out; a key present on one side
    only counts as changed (missing = None).
    """
    old, new = _flatten(saved), _flatten(current)

    def free(key: str) -> bool:
        return any(key == k or key.startswith(k + ".") for k in RESUME_FREE_KEYS)

    return {key: (old.get(key), new.get(key)) for key in sorted(set(old) | set(new))
            if not free(key) and old.get(key) != new.get(key)}
