"""Workers that start together on a fresh SQLite study: one creates optuna's tables, none fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna

SCRIPT = """
import sys, time
from flavortag.tuning.storage import open_storage
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.005)
storage = open_storage(sys.argv[1], heartbeat_interval_s=None)
print(len(storage.get_all_studies()))
"""


def test_workers_starting_together_on_a_fresh_sqlite_storage(tmp_path: Path) -> None:
    import time

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    start = time.time() + 4.0  # every process imports optuna first, then all open at once
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, url, str(start)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, err[-2000:]
        assert out.strip() == "0"
    storage = optuna.storages.RDBStorage(url)
    assert storage.get_all_studies() == []
