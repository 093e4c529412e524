"""Stress test of the default SQLite MLflow store: N concurrent trainings into a fresh store.

Starts ``--jobs`` (default 4) tiny real trainings (``python -m flavortag.train``,
MLP, one epoch, 200 events per class of the embedded sample) together on a
new ``sqlite:///<dir>/mlflow.db``, kills the job that is creating the store
while it creates it (its temporary ``.mlflow.db.<pid>.<random>.init`` names
it), then starts that job again. Prints the jobs started, killed and re-run,
the runs started and finished in the store and the runs lost: jobs not killed
on purpose whose run did not finish. Exit status 1 when any run is lost.

    python scripts/stress_tracking.py --jobs 4
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _command(db: Path, out: Path, k: int) -> list[str]:
    return [
        sys.executable, "-m", "flavortag.train", "model=mlp", f"tracking.tracking_uri=sqlite:///{db}",
        "tracking.experiment_name=stress", f"run_name=stress-{k}", f"output_dir={out / f'job{k}'}",
        f"hydra.run.dir={out / f'job{k}'}", "trainer.max_epochs=1", "trainer.batch_size=64",
        "trainer.progress=false", "data.max_events_per_class=200", "data.max_tracks=16",
        "evaluate_after_training=false",
    ]


def _builder_pid(directory: Path) -> int | None:
    for p in directory.iterdir():
        parts = p.name.split(".")
        if p.name.startswith(".mlflow.db.") and p.name.endswith(".init") and parts[-3].isdigit():
            return int(parts[-3])
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the stress test; returns 0 when no run is lost."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4, help="concurrent trainings (default 4)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for all jobs")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="flavortag-stress-"))
    db = work / "mlflow.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    logs = {k: open(work / f"job{k}.log", "w") for k in range(args.jobs)}  # noqa: SIM115
    jobs = {k: subprocess.Popen(_command(db, work, k), cwd=ROOT, env=env, stdout=logs[k],
                                stderr=subprocess.STDOUT) for k in range(args.jobs)}
    started = time.monotonic()
    killed: int | None = None
    while killed is None and time.monotonic() - started < args.timeout:
        pid = _builder_pid(work)
        if pid is not None:
            time.sleep(0.3)  # well inside the table creation
            killed = next((k for k, job in jobs.items() if job.pid == pid), None)
            if killed is not None and jobs[killed].poll() is None:
                jobs[killed].send_signal(signal.SIGKILL)
                print(f"killed job {killed} (pid {pid}) while it created the store")
            else:
                killed = None
        if all(job.poll() is not None for job in jobs.values()):
            print("every job ended before a store builder could be caught; nothing killed")
            break
        if db.exists() and killed is None:
            print("the store was created before a builder could be caught; nothing killed")
            break
        time.sleep(0.01)
    codes: dict[int, int] = {}
    for k, job in jobs.items():
        codes[k] = job.wait(timeout=max(args.timeout - (time.monotonic() - started), 1))
    rerun_code = None
    if killed is not None:
        logs[killed].close()
        logs[killed] = open(work / f"job{killed}.rerun.log", "w")  # noqa: SIM115
        rerun_code = subprocess.run(_command(db, work, killed), cwd=ROOT, env=env, stdout=logs[killed],
                                    stderr=subprocess.STDOUT, timeout=args.timeout).returncode
    for f in logs.values():
        f.close()

    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("stress")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    finished_names = {r.info.run_name for r in runs if r.info.status == "FINISHED"}
    expected = {f"stress-{k}" for k in range(args.jobs)}
    lost = sorted(expected - finished_names)
    failed = {k: c for k, c in codes.items() if c != 0 and k != killed}
    print(f"store: {db}")
    print(f"jobs started: {args.jobs}, killed during store creation: {0 if killed is None else 1}, "
          f"re-run: {0 if rerun_code is None else 1} (exit {rerun_code})")
    print(f"exit codes: {codes}")
    print(f"runs started: {len(runs)}")
    print(f"runs finished: {len(finished_names & expected)}")
    print(f"runs lost: {len(lost)}{' ' + str(lost) if lost else ''}")
    if failed:
        for k in failed:
            print(f"--- job {k} log tail ---\n" + (work / f"job{k}.log").read_text()[-2000:])
    return 1 if lost or failed else 0


if __name__ == "__main__":
    sys.exit(main())
