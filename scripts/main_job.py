"""The README's main job: make a Z-pole sample with Pythia 8, train every tagger on it, compare them.

Runs the real command-line tools one after the other, as a user would:

1. ``flavortag generate``: 30k events per class (bb, cc, uds) at the Z pole with the ILD-like
   detector, the sample of ``data=zpole_30k`` (made once; a second run reuses it);
2. ``flavortag train`` of the presets ``+experiment=<model>_zpole`` for the BDT, the MLP and
   Deep Sets, and ``+experiment=transformer_zpole_tuned`` (the tuned transformer), with budgets
   that fit a laptop (``--budget``); each evaluates itself on the held-out test split and logs
   to the MLflow store ``./mlflow.db`` (experiment ``zpole-30k``);
3. ``flavortag compare`` of exactly these runs: the table ranked by uds rejection at 50% c
   efficiency, with statistical errors, and the rejection overlays.

It ends with the table, where the plots are and the link to the runs in the MLflow UI.
``--budget full`` trains with the presets' own epochs (longer; the figures quoted in
``configs/experiment``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "zpole-30k"  # the presets' experiment
#: model -> (preset, run name, extra overrides of the "quick" budget: about 6-7 minutes on 2 cores,
#: each command ~35 s of reading, features, evaluation and logging beside its epochs; the set
#: models' epochs take seconds, the tuned transformer's ~65 s per 330 steps, so it sees 2 x 330
#: of its 492 steps an epoch)
MODELS: dict[str, tuple[str, str, list[str]]] = {
    "bdt": ("bdt_zpole", "bdt", []),
    "mlp": ("mlp_zpole", "mlp", ["trainer.max_epochs=10"]),
    "deepsets": ("deepsets_zpole", "deepsets", ["trainer.max_epochs=4"]),
    "transformer": ("transformer_zpole_tuned", "transformer-tuned",
                    ["trainer.max_epochs=2", "trainer.max_steps_per_epoch=330"]),
}
#: every command of the quick budget draws its plots as PNG only (PDF too: about 10 s more a command)
QUICK_PLOTS = ["evaluate.plot_formats=[png]"]


def run(args: list[str], quiet: bool = False) -> None:
    """Run ``flavortag <args>`` and stop on failure."""
    print(f"\n$ flavortag {' '.join(args)}", flush=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "flavortag", *args], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL if quiet else None)
    print(f"  ({time.perf_counter() - t0:.0f} s)", flush=True)


def sample_ready(sample: Path) -> bool:
    """The three class files and generation.yaml of a finished ``generate`` are there."""
    return (sample / "generation.yaml").is_file() and all(
        (sample / f"{c}.parquet").is_file() for c in ("uds", "cc", "bb"))


def latest_run_id(run_name: str) -> str:
    """The newest finished run of ``run_name`` in the presets' experiment."""
    from flavortag import tracking

    tracking.set_tracking_uri(f"sqlite:///{ROOT / 'mlflow.db'}")
    runs = [r for r in tracking.finished_runs(EXPERIMENT) if r.info.run_name == run_name]
    if not runs:
        raise SystemExit(f"main job: no finished run {run_name!r} in experiment {EXPERIMENT}")
    return str(max(runs, key=lambda r: r.info.start_time).info.run_id)


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", choices=("quick", "full"), default="quick",
                        help="quick: short trainings (default, 3-6 min on 2 cores); full: the presets' epochs")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, of " + ", ".join(MODELS))
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")
    t_start = time.perf_counter()
    samples = Path(os.environ.get("FLAVORTAG_SAMPLES", ROOT / "samples"))
    sample = samples / "zpole_ild_30k"
    if sample_ready(sample):
        print(f"sample {sample} already made (generation.yaml beside it); reusing it")
    else:  # the recipe of configs/data/zpole_30k.yaml
        run(["generate", "n_events=30000", "format=parquet", f"out={sample}"])
    run_ids = []
    for model in models:
        preset, run_name, quick = MODELS[model]
        extra = [*quick, *QUICK_PLOTS] if args.budget == "quick" else []
        run(["train", f"+experiment={preset}", *extra, f"hydra.run.dir=outputs/main_job/{run_name}"])
        run_ids.append(latest_run_id(run_name))
    compare_dir = ROOT / "outputs" / "main_job" / "compare"
    run(["compare", f"runs=[{','.join(run_ids)}]", f"tracking.experiment_name={EXPERIMENT}",
         f"hydra.run.dir={compare_dir}", *(QUICK_PLOTS if args.budget == "quick" else [])])
    from flavortag import tracking

    experiment_id = tracking.configure({"tracking_uri": f"sqlite:///{ROOT / 'mlflow.db'}",
                                        "experiment_name": EXPERIMENT})
    # the rejection overlays first: the figures a physicist looks at
    plots = sorted((p.relative_to(ROOT) for p in compare_dir.rglob("*.png")),
                   key=lambda p: (not p.name.startswith("rejection"), p.name))
    print(f"\nmain job done in {(time.perf_counter() - t_start) / 60:.1f} min.")
    if plots:
        print("plots: " + "  ".join(str(p) for p in plots[:3]) + ("  ..." if len(plots) > 3 else ""))
    print("The trainings and their figures in the MLflow UI (store ./mlflow.db): `make ui`, then open\n"
          f"  {tracking.trainings_view_url(experiment_id)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
