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
