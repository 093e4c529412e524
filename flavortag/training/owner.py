"""Who owns a training run directory: one live job at a time, and the MLflow run it belongs to.

A training job claims its run directory before it reads any data: it takes an
exclusive lock on ``<run dir>/.owner.lock`` (held until the job ends; the
system drops it when the process dies, even on ``kill -9``) and, once its
MLflow run is open, writes ``<run dir>/owner.json`` with the run id, run name,
model, process id, host and start time. A second job pointed at the same
directory while the first is alive is refused with the owner's run named; a
job that finds ``owner.json`` of a dead job knows which MLflow run the
directory's checkpoints belong to (see :func:`flavortag.pipelines.train.train`).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from flavortag.io.atomic import atomic_output, lock_file

__all__ = ["LOCK_FILE", "OWNER_FILE", "RunDirectory", "RunDirectoryError", "RunOwner"]

OWNER_FILE = "owner.json"
LOCK_FILE = ".owner.lock"


class RunDirectoryError(RuntimeError):
    """A run directory that this job may not use (in use, or holding another run's checkpoints)."""


@dataclass(frozen=True)
class RunOwner:
    """The contents of ``owner.json``: the job and MLflow run a run directory belongs to."""

    run_id: str
    run_name: str = ""
    model: str = ""
    pid: int = 0
    host: str = ""
    started: str = ""

    @classmethod
    def read(cls, path: Path) -> RunOwner | None:
        """The owner recorded in ``path`` (an ``owner.json``), or None when there is none."""
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise RunDirectoryError(f"{path}: unreadable owner record ({exc}); remove it if the "
                                    "directory's checkpoints are of no run you want to resume") from None
        if not isinstance(raw, dict) or not raw.get("run_id"):
            raise RunDirectoryError(f"{path}: owner record without a run_id; remove it if the "
                                    "directory's checkpoints are of no run you want to resume")
        known = {k: raw[k] for k in ("run_id", "run_name", "model", "pid", "host", "started") if k in raw}
        return cls(**known)

    def describe(self) -> str:
        """``run <id> (<name>, <model>; pid <pid> on <host>, started <time>)``."""
        who = ", ".join(x for x in (self.run_name, self.model) if x)
        return (f"run {self.run_id} ({who}; pid {self.pid} on {self.host or '?'}, "
                f"started {self.started or '?'})")


class RunDirectory:
    """A run directory claimed by this job (use :meth:`claim`; a context manager that releases it).

    ``previous`` is the owner recorded by the last job that used the
    directory (None for a new directory).
    """

    def __init__(self, path: Path, lock: IO[Any], previous: RunOwner | None) -> None:
        self.path = path
        self._lock: IO[Any] | None = lock
        self.previous = previous

    @classmethod
    def claim(cls, path: str | os.PathLike) -> RunDirectory:
        """Lock ``path`` for this job; :class:`RunDirectoryError` if another live job holds it."""
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        lock = open(directory / LOCK_FILE, "a")  # noqa: SIM115 - held until release()
        if not lock_file(lock, blocking=False):
            lock.close()
            try:
                owner = RunOwner.read(directory / OWNER_FILE)
            except RunDirectoryError:
                owner = None
            who = owner.describe() if owner is not None else "a job that has not opened its MLflow run yet"
            raise RunDirectoryError(
                f"run directory {directory} is in use by another live training job: {who}. "
                "Two jobs in one directory overwrite each other's checkpoints; give this one its "
                "own directory (hydra.run.dir=... or output_dir=...) or wait for that job to end")
        try:
            previous = RunOwner.read(directory / OWNER_FILE)
        except BaseException:
            lock.close()
            raise
        return cls(directory, lock, previous)

    def record(self, run_id: str, run_name: str, model: str) -> RunOwner:
        """Write ``owner.json``: this directory now belongs to MLflow run ``run_id`` (this job)."""
        owner = RunOwner(run_id=run_id, run_name=run_name, model=model, pid=os.getpid(),
                         host=socket.gethostname(),
                         started=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        with atomic_output(self.path / OWNER_FILE) as tmp:
            Path(tmp).write_text(json.dumps(asdict(owner), indent=1) + "\n")
        return owner

    def release(self) -> None:
        """Drop the lock (``owner.json`` stays: it records which run the directory holds)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> RunDirectory:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
