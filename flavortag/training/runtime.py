"""Where training runs: device choice, autocast precision, DDP set-up (torchrun or srun), progress bars.

Under a plain ``srun --ntasks=N`` (no torchrun) the ranks come from SLURM's
task variables (:func:`flavortag.slurm.ddp_environment`), and N tasks of a
non-distributed training are refused: they would be N copies of one run.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

log = logging.getLogger("flavortag.train")


def resolve_device(name: str, local_rank: int = 0, key: str = "trainer.device") -> torch.device:
    """``auto`` -> CUDA (``cuda:<local_rank>``) when available, else CPU; a device torch lacks is an error.

    The one device resolution of the package (training, :class:`flavortag.Tagger`); ``key`` names
    the setting in the message.
    """
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    check_device(name, key)
    return torch.device(name)


def check_device(name: str, key: str = "trainer.device") -> None:
    """Refuse a device this machine lacks (before data are read or a run is made), saying what to use."""
    from flavortag.errors import UsageError

    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name.partition(":")[2] or 0)
        if index >= count:
            seen = f"{count} CUDA device(s)" if count else "no CUDA device"
            raise UsageError(f"{key}={name}: torch sees {seen} on this machine; use {key}=auto "
                             f"(CUDA when present, else CPU) or {key}=cpu")
    elif name == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"{key}=mps: torch sees no MPS device here; use {key}=auto or {key}=cpu")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if precision == "bf16":
        return torch.bfloat16
    if precision in ("fp32", "32"):
        return None
    raise ValueError(f"trainer.precision must be auto, fp32 or bf16, not {precision!r}")


class Distributed:
    """torch.distributed set-up from torchrun's (or srun's) environment (no-op when not distributed)."""

    def __init__(self, enabled: bool, backend: str) -> None:
        from flavortag.slurm import ddp_environment

        mapped = ddp_environment(os.environ, bool(enabled))
        if mapped:
            os.environ.update(mapped)
            log.info("SLURM task %s of %s: RANK/WORLD_SIZE/LOCAL_RANK from srun, rendezvous %s:%s",
                     mapped["RANK"], mapped["WORLD_SIZE"], os.environ.get("MASTER_ADDR"),
                     os.environ.get("MASTER_PORT"))
        world = int(os.environ.get("WORLD_SIZE", "1"))
        self.enabled = bool(enabled) and world > 1
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.world_size = world if self.enabled else 1
        if self.enabled and not torch.distributed.is_initialized():
            if backend == "auto":
                backend = "nccl" if torch.cuda.is_available() else "gloo"
            torch.distributed.init_process_group(backend=backend)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, values: list[float], device: torch.device) -> list[float]:
        if not self.enabled:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        torch.distributed.all_reduce(tensor)
        return tensor.tolist()

    def any_rank(self, flag: bool, device: torch.device) -> bool:
        """True if ``flag`` is true on at least one rank."""
        if not self.enabled:
            return flag
        tensor = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return bool(tensor.item())

    def close(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def progress_bar(iterable: Any, enabled: bool, **kwargs: Any) -> Any:
    """The training loop's bar (:func:`flavortag.progress.progress_bar`: on a terminal only), or the bare iterable."""
    if not enabled:
        return iterable
    from flavortag.progress import progress_bar as bar

    return bar(iterable, leave=False, **kwargs)
