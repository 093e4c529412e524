"""The hyperparameter-search study behind the figures of issue 12 (``flavortag tune``).

1. starts two ``flavortag tune`` workers on one SQLite study (pruning on);
2. kills one with SIGKILL while it trains a trial (after ``--kill-after``
   finished trials) and starts it again with the same command: the study
   resumes, the dead trial is failed by heartbeat and retried;
3. prints the trial table and checks that COMPLETE + PRUNED = n_trials;
4. trains the default configuration with the same budget (data, epochs) and
   prints its validation loss and test figures beside the best trial's.

The issue's study, on the 30k-per-class sample (``flavortag generate
n_events=30000 format=parquet out=samples/zpole_ild_30k``, 20 s)::

    python scripts/tune_study.py --workdir outputs/tune_study_30k \
        --data "data=zpole_30k data.max_tracks=32" --epochs 3

took 37 min for the 20 trials (two one-thread workers on 2 cores) and 5 min
more for the default run; ``--epochs 10`` takes about three times as long.
Without ``--data`` it runs on the embedded sample (3k events per class).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ("best/val_loss", "test/loss", "test/acc", "test/auc_bb", "test/rej_c_at_b80", "test/rej_uds_at_c50")


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="outputs/tune_study")
    parser.add_argument("--model", default="transformer")
    parser.add_argument("--n-trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--data", default="", help="train overrides of the data, space-separated")
    parser.add_argument("--kill-after", type=int, default=6, help="finished trials before the kill")
    parser.add_argument("--heartbeat", type=int, default=5, help="heartbeat interval (grace: 4x)")
    args = parser.parse_args()
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    storage = f"sqlite:///{work / 'optuna.db'}"
    study_name = f"{args.model}_study"
    train = [*args.data.split(), f"trainer.max_epochs={args.epochs}", "trainer.progress=false",
             f"tracking.tracking_uri=sqlite:///{work / 'mlflow.db'}", "tracking.experiment_name=tune-study"]
    tune = [sys.executable, "-m", "flavortag", "tune", f"hparams_search={args.model}", f"study_name={study_name}",
            f"n_trials={args.n_trials}", f"storage={storage}", f"output_dir={work / 'trials'}",
            f"preset_dir={work / 'configs' / 'experiment'}", f"heartbeat.interval_s={args.heartbeat}",
            f"heartbeat.grace_s={4 * args.heartbeat}", "pruner.type=median", "pruner.n_warmup_steps=0",
            "sampler.n_startup_trials=8", "--", *train]
    print("$", " ".join(tune[1:]), flush=True)
    started = time.time()
    logs = [open(work / f"worker{i}.log", "w") for i in range(3)]  # noqa: SIM115
    workers = [subprocess.Popen(tune, cwd=ROOT, env=env, stdout=logs[i], stderr=subprocess.STDOUT)
               for i in range(2)]
    victim = workers[0]
    killed = None
    while killed is None and victim.poll() is None:
        time.sleep(0.5)
        try:
            trials = optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)
        except KeyError:
            continue
        done = sum(t.state.is_finished() for t in trials)
        mine = [t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values
                and t.user_attrs.get("flavortag.worker", "").endswith(f":{victim.pid}")]
        if done >= args.kill_after and mine:
            os.kill(victim.pid, signal.SIGKILL)
            killed = mine[0]
            print(f"kill -9 of worker {victim.pid} at {time.time() - started:.0f} s, in trial {killed.number} "
                  f"(epoch {len(killed.intermediate_values)}); {done} trials finished", flush=True)
    victim.wait()
    workers[0] = subprocess.Popen(tune, cwd=ROOT, env=env, stdout=logs[2], stderr=subprocess.STDOUT)
    codes = [w.wait() for w in workers]
    elapsed = time.time() - started
    study = optuna.load_study(study_name=study_name, storage=storage)
    sys.path.insert(0, str(ROOT))
    from flavortag.tuning import trial_table

    print(trial_table(study))
    trials = study.get_trials()
    n_done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    n_pruned = sum(t.state == TrialState.PRUNED for t in trials)
    print(f"workers exited {codes}; {len(trials)} trials: {n_done} COMPLETE + PRUNED ({n_pruned} pruned) "
          f"of n_trials={args.n_trials}, {elapsed / 60:.1f} min")
    for failed in (t for t in trials if t.state == TrialState.FAIL):  # the killed worker's trial
        retries = [t.number for t in trials if t.system_attrs.get("failed_trial") == failed.number]
        print(f"trial {failed.number}: FAIL (worker killed), retried as trial(s) {retries}")

    best = study.best_trial
    print(f"\n$ flavortag train model={args.model} {' '.join(train)} run_name={args.model}-default")
    subprocess.run([sys.executable, "-m", "flavortag", "train", f"model={args.model}", *train,
                    f"run_name={args.model}-default", f"hydra.run.dir={work / 'default'}"],
                   cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    from flavortag import tracking

    tracking.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    default = tracking.finished_runs("tune-study")
    default_run = next(r for r in default if r.info.run_name == f"{args.model}-default")
    best_run = tracking.get_run(str(best.user_attrs["mlflow_run_id"]))
    print(f"\nbest trial {best.number}: {best.params}")
    print(f"{'figure':<22}{'default':>12}{'best trial':>12}")
    for key in FIGURES:
        a, b = default_run.data.metrics.get(key), best_run.data.metrics.get(key)
        print(f"{key:<22}{a if a is None else f'{a:.4f}':>12}{b if b is None else f'{b:.4f}':>12}")
    return 0 if all(c == 0 for c in codes) and n_done == args.n_trials else 1


if __name__ == "__main__":
    sys.exit(main())
