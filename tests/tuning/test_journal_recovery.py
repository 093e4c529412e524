"""Issue 21: a journal storage cut mid-line (a worker killed while appending) is named and recovered.

Before, the next worker glued its record onto the cut one; from then on every
worker failed with ``JSONDecodeError: Expecting ',' delimiter`` (no file
named) and the study could not be resumed. The cut journal here is what a
killed append leaves: the file ends inside a record, without its newline.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from flavortag.errors import UsageError
from flavortag.tuning.storage import main as storage_main
from flavortag.tuning.storage import open_storage

CUT_BYTES = 30  # cut inside the last record (each is over 100 bytes)


def _study(url: str, n_trials: int, *, create: bool = False) -> optuna.Study:
    storage = open_storage(url, heartbeat_interval_s=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = (optuna.create_study if create else optuna.load_study)(storage=storage, study_name="s")
        study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=n_trials)
    return study


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_a_record_cut_by_a_killed_worker_is_dropped_with_the_file_and_offset(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "optuna.journal"
    url = f"journal:{path}"
    _study(url, 3, create=True)
    data = path.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1  # the start of the last record
    path.write_bytes(data[:-CUT_BYTES])
    with caplog.at_level(logging.WARNING, logger="flavortag.tune"):
        study = _study(url, 2)  # the study resumes
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: dropped an incomplete last record ({len(data) - CUT_BYTES - last} bytes from byte offset "
        f"{last}), left by a worker killed while writing it"]
    # trial 2's last record (COMPLETE) was lost: it stays RUNNING (heartbeats retry such trials)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE] * 2 + [TrialState.RUNNING] + [TrialState.COMPLETE] * 2
    assert path.read_bytes().startswith(data[:last])
    assert len(_study(url, 0).trials) == 5  # a fresh worker reads it all


def test_a_live_worker_appending_after_the_cut_does_not_glue_its_record(tmp_path: Path) -> None:
    path = tmp_path / "optuna.journal"
    url = f"journal:{path}"
    _study(url, 2, create=True)
    storage = open_storage(url, heartbeat_interval_s=None)  # a worker already running...
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.load_study(storage=storage, study_name="s")
        record = path.read_bytes().splitlines(keepends=True)[-1]
        with open(path, "ab") as f:  # ...when another is killed while appending a record
            f.write(record[:-CUT_BYTES])
        study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=2)
    assert len(study.trials) == 4
    fresh = _study(url, 1)
    assert [t.state for t in fresh.trials] == [TrialState.COMPLETE] * 5  # 4 before, 1 more now


def test_a_journal_damaged_inside_is_named_and_can_be_mended(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "optuna.journal"
    url = f"journal:{path}"
    _study(url, 3, create=True)
    lines = path.read_bytes().splitlines(keepends=True)
    # what an earlier version left: record 5 cut, the next worker's record glued onto it, more after
    damaged = lines[:5] + [lines[5][:-CUT_BYTES] + lines[6]] + lines[7:]
    path.write_bytes(b"".join(damaged))
    offset = sum(len(line) for line in lines[:5])
    with pytest.raises(UsageError) as err:
        open_storage(url, heartbeat_interval_s=None)
    message = str(err.value)
    assert message.startswith(f"journal:{path}: line 6 (byte offset {offset}) is not a journal record (")
    assert message.endswith(f"Stop the study's workers, then mend it (a copy is kept as optuna.journal.bak): "
                            f"python -m flavortag.tuning.storage repair {path}")
    assert storage_main(["repair", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: 1 record(s) recovered from damaged lines, 0 line(s)")
    assert path.with_name("optuna.journal.bak").read_bytes() == b"".join(damaged)
    assert path.read_bytes() == b"".join(lines[:5] + lines[6:])  # only the cut record is gone
    assert len(_study(url, 1).trials) == 4
