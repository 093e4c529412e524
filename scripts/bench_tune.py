"""Trials per hour of ``flavortag tune`` with one worker and with two on one SQLite study, as a ratio.

Both runs are the same small fixed study (the MLP search space on the embedded
sample, a fixed number of trials and epochs, no pruning), each in a fresh
storage and MLflow store; the two-worker run starts both workers at once. The
figure is wall time: on a machine with fewer free cores than workers the ratio
says so.

    python scripts/bench_tune.py --trials 8 --epochs 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_study(work: Path, n_workers: int, n_trials: int, epochs: int, events_per_class: int) -> float:
    """Seconds of wall time for ``n_workers`` workers to finish an ``n_trials`` study in ``work``."""
    from flavortag.tracking import ensure_sqlite_store

    ensure_sqlite_store(work / "mlflow.db")  # not timed: made once per store
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "flavortag", "tune", "hparams_search=mlp", f"n_trials={n_trials}",
           f"storage=sqlite:///{work / 'optuna.db'}", f"output_dir={work / 'trials'}",
           f"preset_dir={work / 'presets'}", f"hydra.run.dir={work / 'worker'}", "pruner.type=none",
           "heartbeat.interval_s=5", "heartbeat.grace_s=30", "--",
           f"tracking.tracking_uri=sqlite:///{work / 'mlflow.db'}", "tracking.experiment_name=bench-tune",
           f"trainer.max_epochs={epochs}", "trainer.progress=false", "trainer.early_stopping_patience=100",
           f"data.max_events_per_class={events_per_class}", "evaluate_after_training=false"]
    started = time.perf_counter()
    workers = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
               for _ in range(n_workers)]
    for worker in workers:
        _, err = worker.communicate()
        if worker.returncode != 0:
            raise SystemExit(f"worker failed:\n{err.decode()[-3000:]}")
    return time.perf_counter() - started


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--events-per-class", type=int, default=1500)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n_workers in (1, 2):
            work = Path(tmp) / f"w{n_workers}"
            work.mkdir()
            seconds = run_study(work, n_workers, args.trials, args.epochs, args.events_per_class)
            rates[n_workers] = args.trials / seconds * 3600
            print(f"{n_workers} worker(s): {args.trials} trials in {seconds:.1f} s = "
                  f"{rates[n_workers]:.0f} trials/hour", flush=True)
    print(f"two workers / one worker: {rates[2] / rates[1]:.2f}x trials per hour "
          f"({os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
