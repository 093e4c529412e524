"""Stopping a training cleanly on SIGTERM / SIGUSR1: checkpoint at the next step, then exit 75.

SLURM sends SIGTERM before it preempts or requeues a job (and a chosen signal
ahead of the time limit with ``--signal=USR1@<seconds>``; torchrun passes
SIGTERM on to its workers). While :func:`handling` is active, either signal
only sets a flag (:func:`flavortag.pipelines.train.train` holds it around the
torch loop only; before and after, the signals do what they always do); the training loop asks :func:`stop_requested` after each
optimizer step, writes ``last.pt`` (the mid-epoch checkpoint, with the epoch's
figures so far) and raises :class:`TrainingStopped`. The command then exits
with :data:`EXIT_STOPPED` (75, ``EX_TEMPFAIL``: "try again"), the MLflow run is
marked KILLED with the reason, and the same command again (in SLURM: the
requeued job, same job id, same run directory) resumes from the checkpoint.
Under DDP the ranks agree every :data:`SYNC_STEPS` steps (one tiny
all-reduce), so they all stop at the same step.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

log = logging.getLogger("flavortag.train")

#: Exit status of a training stopped by a signal after writing its checkpoint (EX_TEMPFAIL).
EXIT_STOPPED: int = 75
#: Signals that ask for a checkpoint and a clean stop.
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGUSR1)
#: Under DDP, the ranks compare their flags every this many optimizer steps.
SYNC_STEPS: int = 10

_received: list[int] = []


class TrainingStopped(RuntimeError):
    """The training stopped on a signal after writing its checkpoint (exit status 75)."""

    exit_code = EXIT_STOPPED

    def __init__(self, signum: int, epoch: int, step_in_epoch: int, checkpoint: str) -> None:
        self.signum, self.epoch, self.step_in_epoch, self.checkpoint = signum, epoch, step_in_epoch, checkpoint
        name = signal.Signals(signum).name if signum > 0 else "a signal on another rank"
        super().__init__(
            f"stopped by {name} at epoch {epoch + 1} step {step_in_epoch}, checkpoint {checkpoint} written; "
            "run the same command again to resume (in SLURM: the requeued job, same job id), or "
            "trainer.resume=auto hydra.run.dir=<its run directory>")


def _handler(signum: int, frame: FrameType | None) -> None:
    if not _received:
        log.warning("received %s: checkpointing at the next step, then stopping",
                    signal.Signals(signum).name)
    _received.append(signum)


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Catch :data:`STOP_SIGNALS` while the block runs (main thread only; the old handlers come back)."""
    _received.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[signal.Signals, Any] = {}
    try:
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, _handler)
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        _received.clear()


def stop_signal(dist: Any, device: Any, global_step: int) -> int:
    """The signal that asks this training to stop now (0: go on); collective under DDP every SYNC_STEPS."""
    local = _received[0] if _received else 0
    if not getattr(dist, "enabled", False):
        return local
    if global_step % SYNC_STEPS:
        return 0
    return (local or -1) if dist.any_rank(bool(local), device) else 0
