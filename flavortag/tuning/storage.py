"""Where a study lives: optuna's storage, with heartbeats so that dead workers' trials are retried.

``storage`` (``configs/tune.yaml``) is

- ``sqlite:///optuna.db`` (the default): an SQLite file; several workers on one
  machine share it (write-ahead log, long lock timeout). Not for network file
  systems, where SQLite's locks are not reliable;
- any other SQLAlchemy URL, ``postgresql://user:pass@host/db``: many workers
  on many nodes;
- ``journal:<path>``: optuna's journal file (append-only log, file-system
  locks that work on NFS), for clusters without a database server.

Every worker records a heartbeat of its running trial every
``heartbeat.interval_s``; a trial whose heartbeat is older than
``heartbeat.grace_s`` belongs to a dead worker: the next worker to start a
trial marks it FAIL and queues a copy with the same parameters (optuna's
``RetryHeartbeatStaleTrialCallback``), which the next free worker runs.
RDB storages have optuna's own heartbeat; the journal storage gets the same
through :class:`HeartbeatJournalStorage` (heartbeats as trial system attributes).

A worker killed while appending to a journal leaves its last record cut off
mid-line; the next append (by any worker, :class:`RecoveringJournalFileBackend`)
or the next start first cuts that incomplete record away, under the journal's
lock, with a warning naming the file and the byte offset, so that no record is
glued onto it. A journal damaged inside (a record glued onto a cut one by an
earlier version) is refused when opened, naming the file, the line and the
byte offset; ``python -m flavortag.tuning.storage repair <file>``
(:func:`repair_journal`) mends it, keeping a copy.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from flavortag.errors import UsageError
from flavortag.io.atomic import atomic_output, locked

__all__ = ["HeartbeatJournalStorage", "RecoveringJournalFileBackend", "open_storage", "repair_journal",
           "storage_path"]

log = logging.getLogger("flavortag.tune")

_JOURNAL = "journal:"
_SQLITE = "sqlite:///"
#: Trial system attribute of the journal storage's heartbeat (seconds since the epoch).
HEARTBEAT_ATTR = "flavortag:heartbeat"
#: Seconds an SQLite writer waits for another worker's lock before failing.
SQLITE_TIMEOUT_S = 120


class RecoveringJournalFileBackend(JournalFileBackend):
    """optuna's journal file, which first drops an incomplete last record (a killed writer's) when appending."""

    def __init__(self, path: str) -> None:
        self._repair_lock = JournalFileSymlinkLock(path)  # the lock optuna's own appends take
        super().__init__(path, lock_obj=self._repair_lock)
        self.path = Path(path)

    def drop_incomplete_record(self) -> None:
        """Cut an incomplete last record away, under the journal's lock (see the module doc)."""
        if not self.path.exists() or _ends_complete(self.path):
            return
        self._repair_lock.acquire()
        try:
            _drop_incomplete_tail(self.path)
        finally:
            self._repair_lock.release()

    def append_logs(self, logs: list[dict[str, Any]]) -> None:  # noqa: D102 - JournalFileBackend
        self.drop_incomplete_record()
        super().append_logs(logs)


def _ends_complete(path: Path) -> bool:
    """True when ``path`` is empty or ends with a newline (its last record is whole)."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return True
        f.seek(size - 1)
        return f.read(1) == b"\n"


def _drop_incomplete_tail(path: Path) -> None:
    """Truncate ``path`` after its last newline (the caller holds the lock), with a warning."""
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return  # completed meanwhile
        end, keep = size, 0
        while end > 0:
            begin = max(0, end - (1 << 16))
            f.seek(begin)
            at = f.read(end - begin).rfind(b"\n")
            if at >= 0:
                keep = begin + at + 1
                break
            end = begin
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    log.warning("%s: dropped an incomplete last record (%d bytes from byte offset %d), left by a worker "
                "killed while writing it", path, size - keep, keep)


def _first_damaged_line(path: Path) -> tuple[int, int, str] | None:
    """``(line number, byte offset, why)`` of the first line of ``path`` that is not a JSON record."""
    offset = 0
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if line.endswith(b"\n"):
                try:
                    json.loads(line)
                except ValueError as err:
                    return number, offset, str(err)
            offset += len(line)
    return None


def _journal_damage(path: Path, err: Exception) -> UsageError:
    found = _first_damaged_line(path)
    where = f"line {found[0]} (byte offset {found[1]}) is not a journal record ({found[2]})" if found else str(err)
    return UsageError(
        f"journal:{path}: {where}: the journal is damaged (a worker killed while writing a record, and "
        f"another wrote after it). Stop the study's workers, then mend it (a copy is kept as "
        f"{path.name}.bak): python -m flavortag.tuning.storage repair {path}")


def repair_journal(path: str | Path) -> tuple[int, int]:
    """Mend a damaged journal in place (its workers stopped): ``(records recovered, lines dropped)``.

    A line that is not JSON is a record cut off by a killed writer, with the
    next writer's record glued after it: the longest tail of the line that is a
    JSON record is kept, else the line is dropped (as is a last line without
    its newline). The original is kept as ``<file>.bak``.
    """
    path = Path(path)
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        kept: list[bytes] = []
        recovered = dropped = 0
        with open(path, "rb") as f:
            for line in f:
                if line.endswith(b"\n") and _is_record(line):
                    kept.append(line)
                    continue
                tail = _record_tail(line) if line.endswith(b"\n") else None
                if tail is None:
                    dropped += 1
                else:
                    kept.append(tail)
                    recovered += 1
        shutil.copy2(path, path.with_name(path.name + ".bak"))
        with atomic_output(path) as tmp:
            tmp.write_bytes(b"".join(kept))
    finally:
        lock.release()
    return recovered, dropped


def _is_record(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _record_tail(line: bytes) -> bytes | None:
    """The longest tail of ``line`` that starts a record (``{"op_code"``) and parses, or None."""
    at = line.find(b'{"op_code"', 1)
    while at > 0:
        if _is_record(line[at:]):
            return line[at:]
        at = line.find(b'{"op_code"', at + 1)
    return None


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """optuna's journal storage with a heartbeat (optuna's own has none).

    The heartbeat is the wall-clock time written as a trial system attribute,
    so the nodes' clocks must agree to within the grace period (NTP).
    """

    def __init__(self, backend: RecoveringJournalFileBackend, heartbeat_interval: int, grace_period: int,
                 stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None) -> None:
        super().__init__(backend)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.stale_trial_callback = stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:  # noqa: D102 - BaseHeartbeat
        try:
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # the trial ended between two beats

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        return [t._trial_id for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
                if HEARTBEAT_ATTR in t.system_attrs
                and now - float(t.system_attrs[HEARTBEAT_ATTR]) > self.grace_period]

    def get_heartbeat_interval(self) -> int | None:  # noqa: D102 - BaseHeartbeat
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:  # noqa: D102
        return self.stale_trial_callback


def storage_path(url: str) -> Path | None:
    """The local file of an SQLite or journal storage URL (None for a database server)."""
    if url.startswith(_JOURNAL):
        path = url[len(_JOURNAL):]
        return Path(path[2:] if path.startswith("//") else path)
    if url.startswith(_SQLITE):
        path = url[len(_SQLITE):].split("?", 1)[0]
        return None if path in ("", ":memory:") else Path(path)
    return None


def _prepare_sqlite(path: Path) -> None:
    """Create the SQLite file in write-ahead-log mode (persistent: readers do not block the writer)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=SQLITE_TIMEOUT_S)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


def open_storage(url: str, heartbeat_interval_s: int | None = 60, grace_s: int | None = 120,
                 max_retry: int | None = 3) -> Any:
    """The optuna storage of ``url`` (see the module doc), heartbeats on unless ``heartbeat_interval_s`` is None."""
    url = str(url)
    if heartbeat_interval_s is not None and (int(heartbeat_interval_s) < 1 or grace_s is None
                                             or int(grace_s) <= int(heartbeat_interval_s)):
        raise UsageError(f"heartbeat.interval_s={heartbeat_interval_s} and heartbeat.grace_s={grace_s}: "
                         "need interval_s >= 1 and grace_s > interval_s (or interval_s=null: no heartbeat)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry) if heartbeat_interval_s else None
    interval = int(heartbeat_interval_s) if heartbeat_interval_s else None
    grace = int(grace_s) if (grace_s and interval) else None
    if url.startswith(_JOURNAL):
        path = storage_path(url)
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = RecoveringJournalFileBackend(str(path))
        backend.drop_incomplete_record()
        try:  # optuna reads the whole journal here
            if interval is None:
                return JournalStorage(backend)
            return HeartbeatJournalStorage(backend, interval, grace or 2 * interval, retry)
        except ValueError as err:  # json.JSONDecodeError, optuna's "Invalid log format."
            raise _journal_damage(path, err) from None
    if "://" not in url:
        raise UsageError(f"storage={url!r} is not a storage URL: give sqlite:///<file>, "
                         "postgresql://user:pass@host/db (any SQLAlchemy URL) or journal:<file>")
    engine_kwargs: dict[str, Any] = {}
    sqlite_file = storage_path(url)
    if url.startswith("sqlite:"):
        engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    def create() -> Any:
        return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=interval,
                          grace_period=grace, heartbeat_stale_trial_callback=retry)

    if sqlite_file is not None:  # workers starting together on a fresh file: one creates the tables
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        with locked(sqlite_file.with_name(f".{sqlite_file.name}.lock")):
            _prepare_sqlite(sqlite_file)
            return create()
    return _created_despite_races(create)


def _created_despite_races(create: Callable[[], Any], attempts: int = 5) -> Any:
    """``create()``, again after a short wait when another worker created the same tables at once."""
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            return create()
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> int:
    """``python -m flavortag.tuning.storage repair <journal file>``: :func:`repair_journal`."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "repair":
        print("usage: python -m flavortag.tuning.storage repair <journal file>", file=sys.stderr)
        return 2
    recovered, dropped = repair_journal(args[1])
    print(f"{args[1]}: {recovered} record(s) recovered from damaged lines, {dropped} line(s) dropped; "
          f"the original is {args[1]}.bak")
    return 0


if __name__ == "__main__":
    sys.exit(main())
