"""Atomic output files and file locks: the one home of both.

Atomic outputs: write under a temporary name in the same directory, then
rename. A reader of the output therefore sees either the old file (or none)
or the complete new one, never a partial file, even if the writer fails or is
killed half-way. A killed writer leaves only a hidden
``.<name>.<pid>.<random>.tmp``; the next write to the same path removes such
leftovers of writers that are no longer running (their process id is gone)
and says so in a log line.

Locks: :func:`lock_file` / :func:`unlock_file` (``flock`` on POSIX, nothing
elsewhere) and :func:`locked`, for the run directory's owner, the MLflow
store's creation and optuna's table creation.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("flavortag.io")


def temporary_name(target: Path, suffix: str = "tmp") -> Path:
    """``.<name>.<pid>.<random>.<suffix>`` beside ``target``: the name of our temporary files."""
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.{suffix}")


def pid_alive(pid: int) -> bool:
    """True while a process with id ``pid`` runs on this machine (ours included)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user holds the id
        return True
    return True


def leftovers_of_dead_writers(directory: str | os.PathLike, pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    """``(name, pid)`` of the entries of ``directory`` whose name matches ``pattern`` (group 1: the
    writer's process id) and whose writer no longer runs; ``[]`` for a directory that cannot be listed."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    matches = ((name, pattern.match(name)) for name in names)
    return [(name, m.group(1)) for name, m in matches if m is not None and not pid_alive(int(m.group(1)))]


def remove_stale_temporaries(target: str | os.PathLike, suffix: str = "tmp") -> list[Path]:
    """Delete the temporary files of ``target`` (see :func:`temporary_name`) left by dead writers.

    Only names of exactly our pattern are touched, and only when their process
    id is no longer running on this machine (a writer still at work keeps its
    file). Each removal is logged at WARNING; returns the removed paths.
    """
    target = Path(target)
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(\d+)\.[0-9a-f]{{8}}\.{re.escape(suffix)}$")
    removed: list[Path] = []
    for name, pid in leftovers_of_dead_writers(target.parent, pattern):
        leftover = target.parent / name
        try:
            size = leftover.stat().st_size
            leftover.unlink()
        except FileNotFoundError:
            continue  # removed by someone else meanwhile
        except OSError as err:
            log.warning("%s: cannot remove the leftover of a killed writer (%s)", leftover, err)
            continue
        log.warning(
            "%s: removed %s (%d bytes), the unfinished output of a killed writer (process %s)",
            target, name, size, pid,
        )
        removed.append(leftover)
    return removed


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``, else delete it.

    The parent directory is created if needed. The temporary file is created
    by the writer itself (so it gets the usual permissions from the umask).
    Leftover temporaries of killed writers of ``path`` are removed first.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    tmp = temporary_name(target)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{tmp}: the writer did not create the file")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise



def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically (:func:`atomic_output`); returns the path."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    return Path(path)


def lock_file(file: IO[Any], blocking: bool = True) -> bool:
    """An exclusive ``flock`` on the open ``file``; False when ``blocking=False`` and another holds it.

    Not POSIX: no lock is taken, and True is returned.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return True
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def unlock_file(file: IO[Any]) -> None:
    """Release :func:`lock_file`'s lock (closing the file releases it too)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return
    fcntl.flock(file.fileno(), fcntl.LOCK_UN)


@contextmanager
def locked(lock_path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on the file ``lock_path`` (made if missing) for the ``with`` block."""
    with open(lock_path, "a") as file:
        lock_file(file)
        try:
            yield
        finally:
            unlock_file(file)
