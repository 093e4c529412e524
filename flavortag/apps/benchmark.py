"""``flavortag benchmark``: shared tasks (list, make, score, leaderboard); docs/BENCHMARK.md.

    flavortag benchmark list
    flavortag benchmark make zpole-3class-ild-v1 [--out DIR] [--workers 2] [--root] [--reuse DIR]
    flavortag benchmark score zpole-3class-ild-v1 preds.parquet [--submit NAME --model M ...]
    flavortag benchmark leaderboard zpole-3class-ild-v1 [--tracking-uri sqlite:///mlflow.db]

A task is a name of a shipped task file or the path of one. The dataset folder
defaults to ``$FLAVORTAG_SAMPLES/benchmark/<task>`` (``samples/benchmark/<task>``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from flavortag.benchmark import default_data_dir, list_tasks, load_task


def _dataset_bytes(folder: Path, names: list[str]) -> int:
    """Bytes of a dataset's files (shifted sets included; predictions and ROOT copies not)."""
    return sum((folder / name).stat().st_size for name in names)


def cmd_list(_: argparse.Namespace) -> int:
    """Print the shipped tasks."""
    for task in list_tasks():
        sizes = ", ".join(f"{k} {v:,}" for k, v in task.splits.items())
        made = default_data_dir(task)
        state = f"made in {made}" if (made / "checksums.json").is_file() else "not made"
        per = f"events per {'forced decay' if task.n_jets else 'class'}"
        jets = f"{task.n_jets} jets per event, one record per jet; " if task.n_jets else ""
        print(f"{task.name}  (v{task.version}; {task.process} at {task.sqrt_s_gev:g} GeV, detector "
              f"{task.detector.name}; {jets}classes {', '.join(task.classes)}; {per}: {sizes}; {state})")
        print(f"    {task.description}")
        for variant in task.test_variants:
            print(f"    shifted test set {variant.name} ({variant.n_events:,} per class): {variant.description}")
    return 0


def cmd_make(args: argparse.Namespace) -> int:
    """Make, resume or verify a task's dataset; write generation.yaml and the data card."""
    from flavortag.benchmark.card import write_card, write_generation
    from flavortag.benchmark.make import make_dataset, read_manifest, write_root_copies

    task = load_task(args.task)
    out = Path(args.out) if args.out else default_data_dir(task)
    start = time.perf_counter()
    result = make_dataset(task, out, workers=args.workers, progress=not args.no_progress, reuse=args.reuse)
    write_generation(task, out, result)
    card = write_card(task, out)
    if args.root:
        write_root_copies(out)
    wall_s = time.perf_counter() - start
    disk = _dataset_bytes(out, list(read_manifest(out)["files"]))
    linked = _dataset_bytes(out, result.reused)
    print(f"{task.name}: {len(result.made)} file(s) made ({result.n_events_made:,} events, "
          f"{result.workers} worker(s)), {len(result.reused)} reused, "
          f"{len(result.verified)} verified against checksums.json; "
          f"{wall_s:.1f} s; {disk / 1e6:.1f} MB of Parquet in {out}"
          + (f" ({linked / 1e6:.1f} MB of it reused)" if result.reused else ""))
    for split, rows in card["label_purity"].items():
        purity = ", ".join(f"{k} {r['purity']:.4f}" for k, r in rows.items())
        print(f"  label purity {split}: {purity}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """Score prediction files; with --submit, save the entry for the leaderboard."""
    from flavortag.benchmark.score import (
        Submission,
        check_submission_name,
        format_score,
        save_submission,
        score_predictions,
    )

    task = load_task(args.task)
    data = Path(args.data) if args.data else default_data_dir(task)
    if args.submit:
        check_submission_name(args.submit)
    score = score_predictions(task, data, args.predictions)
    print(format_score(score, task))
    if args.json:
        Path(args.json).write_text(json.dumps(score.to_dict(), indent=1) + "\n")
    if args.submit:
        path = save_submission(data, Submission(
            name=args.submit, model=args.model or args.submit, score=score.to_dict(),
            n_parameters=args.parameters, train_events=args.train_events,
            inference_us_per_event=args.inference_us, inference_device=args.device,
            description=args.description, url=args.url))
        print(f"saved {path}")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Write leaderboard.md and log the entries to the task's MLflow experiment."""
    from flavortag.benchmark.leaderboard import experiment_name, log_to_mlflow, write_leaderboard

    task = load_task(args.task)
    data = Path(args.data) if args.data else default_data_dir(task)
    path, text = write_leaderboard(task, data)
    print(text)
    print(f"wrote {path}")
    if not args.no_mlflow:
        new = log_to_mlflow(task, data, args.tracking_uri)
        print(f"MLflow experiment {experiment_name(task)}: {len(new)} new run(s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``flavortag benchmark``."""
    parser = argparse.ArgumentParser(prog="flavortag benchmark", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the shipped tasks").set_defaults(func=cmd_list)
    make = sub.add_parser("make", help="make (resume, verify) a task's dataset")
    make.add_argument("task", help="task name or task file")
    make.add_argument("--out", default=None, help="dataset folder (default: samples/benchmark/<task>)")
    make.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")
    make.add_argument("--root", action="store_true", help="also write ROOT copies under root/")
    make.add_argument("--reuse", action="append", default=[], metavar="DIR",
                      help="a made dataset whose identically planned files are linked (sha256 checked), "
                      "not generated; may be repeated")
    make.add_argument("--no-progress", action="store_true", help="no progress bar")
    make.set_defaults(func=cmd_make)
    score = sub.add_parser("score", help="official figures of prediction files (event_id + prob_<class>)")
    score.add_argument("task", help="task name or task file")
    score.add_argument("predictions", nargs="+", help="Parquet or CSV files")
    score.add_argument("--data", default=None, help="dataset folder (default: samples/benchmark/<task>)")
    score.add_argument("--json", default=None, help="also write the figures to this JSON file")
    score.add_argument("--submit", default=None, metavar="NAME", help="save as leaderboard entry NAME")
    score.add_argument("--model", default="", help="entry: model description")
    score.add_argument("--parameters", type=int, default=None, help="entry: trainable parameters")
    score.add_argument("--train-events", type=int, default=None, help="entry: training events used")
    score.add_argument("--inference-us", type=float, default=None, help="entry: inference cost, µs per event")
    score.add_argument("--device", default="", help="entry: where the inference cost was measured")
    score.add_argument("--description", default="", help="entry: one line (training recipe, epochs)")
    score.add_argument("--url", default="", help="entry: code or paper")
    score.set_defaults(func=cmd_score)
    board = sub.add_parser("leaderboard", help="Markdown table + MLflow experiment of the scored entries")
    board.add_argument("task", help="task name or task file")
    board.add_argument("--data", default=None, help="dataset folder (default: samples/benchmark/<task>)")
    board.add_argument("--tracking-uri", default=None, help="MLflow store (default: MLFLOW_TRACKING_URI "
                       "or sqlite:///mlflow.db)")
    board.add_argument("--no-mlflow", action="store_true", help="only the Markdown table")
    board.set_defaults(func=cmd_leaderboard)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
