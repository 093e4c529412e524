"""Benchmark measurement: list, make, three entries scored, leaderboard, for one task; every step timed.

Runs the commands a user would, in this order, and prints (and writes to
``<data>/bench_timings.json``) the wall time of each:

1. ``flavortag benchmark list`` and ``make <task>`` (``--workers``);
2. reproducibility: one test file deleted and remade (its sha256 must be the
   recorded one) and every other file verified, by ``make`` again;
3. the BDT baseline and flavortag's transformer, each trained with
   ``flavortag train`` on the first ``--train-events`` events per class of the
   task's train split (the transformer for ``--epochs``), scored on the test
   split with ``flavortag predict`` (its output is scored as it is) and
   submitted with ``flavortag benchmark score --submit``; inference cost =
   predict's wall time per test event (reading, features, model, writing);
4. weaver-core's ParT: ``scripts/benchmark_weaver_part.py`` (same events, epochs);
5. ``flavortag benchmark leaderboard <task>`` (Markdown + MLflow).

    python scripts/bench_leaderboard.py --data samples/benchmark/zpole-3class-ild-v1 \\
        --workers 2 --train-events 15000 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(command: list[str], timings: dict[str, float], key: str, log: Path) -> float:
    """Run one command (output appended to ``log``), record and return its wall time; stop on failure."""
    print(f"$ {' '.join(command)}", flush=True)
    start = time.perf_counter()
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    seconds = time.perf_counter() - start
    timings[key] = round(seconds, 1)
    print(f"  {key}: {seconds:.1f} s (exit {code})", flush=True)
    if code != 0:
        sys.exit(f"{key} failed (exit {code}); see {log}")
    return seconds


def flavortag_entry(args: argparse.Namespace, model: str, data: Path, manifest: dict, timings: dict[str, float],
                    log: Path) -> None:
    """Train one flavortag model, predict the test split, score and submit it."""
    ft = [sys.executable, "-m", "flavortag"]
    first_train = [data / n for n in manifest["splits"]["train"]["files"] if "-00000-" in n or "-" not in Path(n).stem]
    run_dir = data / "runs" / model
    train = [*ft, "train", f"model={model}", f"data.paths=[{','.join(map(str, first_train))}]",
             f"data.max_events_per_class={args.train_events}", "data.split={train: 0.9, val: 0.1, test: 0.0}",
             "evaluate_after_training=false", f"output_dir={run_dir}", f"run_name=benchmark-{model}",
             f"tracking.tracking_uri={args.tracking_uri}", "tracking.experiment_name=benchmark-training"]
    if model != "bdt":
        train += [f"trainer.max_epochs={args.epochs}", "trainer.progress=false"]
    run(train, timings, f"train {model}", log)
    checkpoint = run_dir / "checkpoints" / ("bdt.skops" if model == "bdt" else "best.pt")
    out_dir = data / "predictions" / model
    test_files = [str(data / n) for n in manifest["splits"]["test"]["files"]]
    seconds = run([*ft, "predict", f"checkpoint={checkpoint}", f"inputs=[{','.join(test_files)}]",
                   f"out_dir={out_dir}", "formats=[parquet]"], timings, f"predict {model}", log)
    n_test = manifest["splits"]["test"]["n_events"]
    params = _parameters(checkpoint) if model != "bdt" else None
    description = ("LCFIPlus-style BDT on event features (flavortag train model=bdt)" if model == "bdt" else
                   f"flavortag {model}, {args.epochs} epochs (flavortag train model={model})")
    score = [*ft, "benchmark", "score", args.task, *sorted(str(p) for p in out_dir.glob("*.parquet")),
             "--data", str(data), "--submit", f"flavortag-{model}", "--model", model,
             "--train-events", str(int(0.9 * 3 * args.train_events)),
             "--inference-us", f"{1e6 * seconds / n_test:.1f}", "--device", "cpu, flavortag predict (incl. I/O)",
             "--description", description]
    if params is not None:
        score += ["--parameters", str(params)]
    run(score, timings, f"score {model}", log)


def _parameters(checkpoint: Path) -> int | None:
    from flavortag.models import count_parameters
    from flavortag.scoring.inference import load_model

    try:
        return int(count_parameters(load_model(str(checkpoint))))
    except Exception as err:  # noqa: BLE001 -- the count is a nicety of the table
        print(f"  (no parameter count: {err})")
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="zpole-3class-ild-v1")
    parser.add_argument("--data", required=True, help="dataset folder")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--train-events", type=int, default=15000, help="per class, for every entry")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--skip", default="", help="comma list of steps to skip: make,remake,bdt,transformer,weaver")
    args = parser.parse_args(argv)
    data = Path(args.data).resolve()
    args.tracking_uri = args.tracking_uri or f"sqlite:///{data / 'mlflow.db'}"
    skip = set(filter(None, args.skip.split(",")))
    log = data.parent / f"{data.name}.bench.log"
    data.parent.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    ft = [sys.executable, "-m", "flavortag", "benchmark"]
    run([*ft, "list"], timings, "list", log)
    if "make" not in skip:
        run([*ft, "make", args.task, "--out", str(data), "--workers", str(args.workers), "--no-progress"],
            timings, "make", log)
    manifest = json.loads((data / "checksums.json").read_text())
    if "remake" not in skip:
        victim = manifest["splits"]["test"]["files"][-1]
        (data / victim).unlink()
        run([*ft, "make", args.task, "--out", str(data), "--workers", str(args.workers), "--no-progress"],
            timings, f"remake {victim} + verify all", log)
    for model in ("bdt", "transformer"):
        if model not in skip:
            flavortag_entry(args, model, data, manifest, timings, log)
    if "weaver" not in skip:
        weaver = [sys.executable, str(ROOT / "scripts" / "benchmark_weaver_part.py"), "--task", args.task,
                  "--data", str(data), "--train-events", str(int(0.9 * args.train_events)),
                  "--epochs", str(args.epochs), "--submit", "weaver-ParT"]
        run(weaver + (["--threads", str(args.threads)] if args.threads else []), timings, "weaver ParT", log)
    run([*ft, "leaderboard", args.task, "--data", str(data), "--tracking-uri", args.tracking_uri],
        timings, "leaderboard", log)
    disk = sum(p.stat().st_size for p in data.glob("*/*.parquet"))
    result = {"timings_s": timings, "parquet_bytes": disk, "load_average": os.getloadavg()}
    (data / "bench_timings.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    print((data / "leaderboard.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
