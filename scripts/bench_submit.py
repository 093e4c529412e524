"""Enter a trained flavortag tagger on a benchmark task: predict every scored split, time it, score, submit.

For each split ``score`` needs (``test`` and every shifted test set) this runs
``flavortag predict`` on the split's files into ``<predictions>/<split>/`` and
then ``flavortag benchmark score --submit``. A split whose outputs are all there
is not predicted again (its timing, kept in ``<predictions>/timings.json``, is),
so two tasks that share a test split (``zpole-3class-ild-v1`` and
``zpole-robustness-v1``) can share one ``--predictions`` folder.

Inference cost per event: predict's steady state, the time between the first
and the last output file of each predict call over the events of all its files
but the first (start-up, model loading and the first file drop out), summed
over the calls.

Before the full run the first two files left are predicted alone; if the time
of the rest, extrapolated from their steady rate plus a start-up per predict
call, exceeds ``--max-minutes`` the script stops (exit 3) and says so.

    python scripts/bench_submit.py --task zpole-robustness-v1 --data <dataset> \\
        --checkpoint <run>/checkpoints/bdt.skops --name flavortag-bdt --model bdt \\
        --train-events 27000 --description "LCFIPlus-style BDT" --predictions <dataset>/predictions/bdt
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench_leaderboard import _parameters, run  # scripts/ is on sys.path when run as a script


def _outputs(files: list[Path], out_dir: Path) -> list[Path]:
    return [out_dir / f"{f.stem}.flavortag.parquet" for f in files]


def _predict(checkpoint: str, files: list[Path], out_dir: Path, timings: dict[str, float], key: str,
             log: Path) -> float:
    command = [sys.executable, "-m", "flavortag", "predict", f"checkpoint={checkpoint}",
               f"inputs=[{','.join(map(str, files))}]", f"out_dir={out_dir}", "formats=[parquet]"]
    return run(command, timings, key, log)


def _probe(args: argparse.Namespace, data: Path, manifest: dict, todo: dict[str, list[Path]], preds: Path,
           timings: dict[str, float], log: Path) -> float:
    """Predict the first two files left; minutes the rest would take (steady rate, plus a start-up per call)."""
    split = next(iter(todo))
    files = [f for f, p in zip(todo[split], _outputs(todo[split], preds / split)) if not p.is_file()][:2]
    if len(files) < 2:
        return 0.0
    seconds = _predict(args.checkpoint, files, preds / split, timings, "probe", log)
    events = [manifest["files"][str(f.relative_to(data))]["n_events"] for f in files]
    first, second = (p.stat().st_mtime for p in _outputs(files, preds / split))
    per_event_s = (second - first) / events[1]
    start_up_s = max(0.0, seconds - per_event_s * sum(events))
    left = sum(manifest["files"][str(f.relative_to(data))]["n_events"] for s in todo
               for f, p in zip(todo[s], _outputs(todo[s], preds / s)) if not p.is_file())
    estimate_min = (per_event_s * left + start_up_s * len(todo)) / 60
    print(f"probe: {sum(events):,} events in {seconds:.1f} s ({1e6 * per_event_s:.0f} µs/event steady, start-up "
          f"{start_up_s:.0f} s); the rest ({left:,} events) about {estimate_min:.1f} min", flush=True)
    return estimate_min


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--data", required=True, help="dataset folder")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--name", required=True, help="submission name")
    parser.add_argument("--model", required=True)
    parser.add_argument("--train-events", type=int, required=True)
    parser.add_argument("--description", default="")
    parser.add_argument("--device", default="cpu, flavortag predict steady state (reading, features, model, "
                        "writing), shared 2 cores")
    parser.add_argument("--predictions", default=None, help="default: <data>/predictions/<name>")
    parser.add_argument("--max-minutes", type=float, default=15.0, help="stop if predicting would take longer")
    args = parser.parse_args(argv)
    from flavortag.benchmark import load_task
    from flavortag.benchmark.make import read_manifest

    task, data = load_task(args.task), Path(args.data).resolve()
    manifest = read_manifest(data)
    preds = Path(args.predictions or data / "predictions" / args.name).resolve()
    preds.mkdir(parents=True, exist_ok=True)
    log = preds / "bench_submit.log"
    timing_path = preds / "timings.json"
    kept: dict[str, dict] = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
    timings: dict[str, float] = {}
    splits = {s: [data / n for n in manifest["splits"][s]["files"]] for s in task.scored_splits()}
    todo = {s: f for s, f in splits.items() if not all(p.is_file() for p in _outputs(f, preds / s))}
    if todo:
        estimate_min = _probe(args, data, manifest, todo, preds, timings, log)
        if estimate_min > args.max_minutes:
            print(f"stopped: predicting the rest would take about {estimate_min:.0f} min "
                  f"(> --max-minutes {args.max_minutes:g})")
            return 3
    for split, every in todo.items():
        out_dir = preds / split
        out_dir.mkdir(parents=True, exist_ok=True)
        files = [f for f, p in zip(every, _outputs(every, out_dir)) if not p.is_file()]
        if not files:  # all predicted by the probe
            continue
        _predict(args.checkpoint, files, out_dir, timings, f"predict {split}", log)
        outputs = _outputs(files, out_dir)
        times = sorted(p.stat().st_mtime for p in outputs)
        steady = sum(manifest["files"][str(f.relative_to(data))]["n_events"] for f in files[1:])
        kept[split] = {"steady_s": times[-1] - times[0], "steady_events": steady, "wall_s": timings[f"predict {split}"]}
        timing_path.write_text(json.dumps(kept, indent=1) + "\n")
    used = [kept[s] for s in splits if s in kept]
    us = 1e6 * sum(k["steady_s"] for k in used) / max(1, sum(k["steady_events"] for k in used)) if used else None
    files = sorted(str(p) for s, f in splits.items() for p in _outputs(f, preds / s))
    score = [sys.executable, "-m", "flavortag", "benchmark", "score", str(args.task), *files, "--data", str(data),
             "--submit", args.name, "--model", args.model, "--train-events", str(args.train_events),
             "--device", args.device, "--description", args.description]
    params = _parameters(Path(args.checkpoint)) if not args.checkpoint.endswith(".skops") else None
    score += ["--parameters", str(params)] if params is not None else []
    score += ["--inference-us", f"{us:.1f}"] if us is not None else []
    start = time.perf_counter()
    run(score, timings, "score", log)
    print(json.dumps({"timings_s": timings, "steady_us_per_event": us, "per_split": kept,
                      "score_s": round(time.perf_counter() - start, 1)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
