"""Issue 16: a fresh SQLite MLflow store survives concurrent first use and a kill during its creation."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

_JOB = textwrap.dedent("""
    import sys, mlflow
    from flavortag.tracking import configure, start_run
    cfg = {"tracking_uri": "sqlite:///" + sys.argv[1], "experiment_name": "store-test"}
    with start_run(cfg, run_name="job-" + sys.argv[2]) as run:
        mlflow.log_metric("x", float(sys.argv[2]))
    print(run.info.run_id)
""")


def _runs(db: Path) -> list:
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("store-test")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def test_three_jobs_start_together_on_a_fresh_store(tmp_path):
    db = tmp_path / "mlflow.db"
    jobs = [subprocess.Popen([sys.executable, "-c", _JOB, str(db), str(k)], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for k in range(3)]
    results = [job.communicate(timeout=300) for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0, 0], [err[-2000:] for _, err in results]
    runs = _runs(db)
    assert sorted(r.data.metrics["x"] for r in runs) == [0.0, 1.0, 2.0]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert not [p.name for p in tmp_path.iterdir() if ".init" in p.name]


def test_a_job_killed_while_creating_the_store_leaves_no_half_made_store(tmp_path):
    db = tmp_path / "mlflow.db"
    job = subprocess.Popen([sys.executable, "-c", _JOB, str(db), "1"], cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    # Kill it as soon as the store's database file (final or temporary) exists: tables half made.
    while time.monotonic() < deadline and job.poll() is None:
        if any("mlflow.db" in p.name and not p.name.endswith(".lock") for p in tmp_path.iterdir()):
            break
        time.sleep(0.01)
    time.sleep(0.3)
    assert job.poll() is None, "the job finished before it could be killed"
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert not db.exists()  # no half-made store in place
    # The next job works (and removes the dead builder's file).
    done = subprocess.run([sys.executable, "-c", _JOB, str(db), "2"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [r.data.metrics["x"] for r in _runs(db)] == [2.0]
    assert not [p.name for p in tmp_path.iterdir() if ".init" in p.name]
    assert "the unfinished output of a killed writer" in done.stderr
