"""The Z-pole physics study behind the figures in the issue notes (``make study``).

1. makes the samples if missing (``flavortag generate``): 30k events per class
   with the nominal ILD model, and 10k per class with 1.5x worse impact-parameter
   resolution (``detector=ild_worse_ip``);
2. trains bdt, mlp, deepsets and transformer on the nominal sample
   (``+experiment=<model>_zpole``; each evaluates itself on the held-out test split);
3. evaluates every trained run on the worse-resolution sample (child runs);
4. prints the comparison and the ratios to the BDT of the two headline figures:
   c rejection at 80% b efficiency and uds rejection at 50% c efficiency.

Everything is logged to the MLflow store given by ``--tracking-uri``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("bdt", "mlp", "deepsets", "transformer")
HEADLINE = ("test/acc", "test/rej_c_at_b80", "test/rej_uds_at_b80", "test/rej_b_at_c50", "test/rej_uds_at_c50")


def flavortag(args: list[str], env: dict[str, str]) -> None:
    """Run one ``flavortag`` command, echoing it; stop on failure."""
    print(f"\n$ flavortag {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "flavortag", *args], cwd=ROOT, check=True, env=env)


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", default="samples", help="directory of the samples (FLAVORTAG_SAMPLES)")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--experiment", default="zpole-30k")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of deepsets and transformer")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--skip-training", action="store_true", help="only evaluate and summarise")
    args = parser.parse_args()
    samples = Path(args.samples).resolve()
    env = {**os.environ, "FLAVORTAG_SAMPLES": str(samples)}
    track = [f"tracking.tracking_uri={args.tracking_uri}", f"tracking.experiment_name={args.experiment}"]
    if not (samples / "zpole_ild_30k" / "bb.parquet").exists():
        flavortag(["generate", "n_events=30000", "seed=30000", "format=parquet",
                   f"out={samples / 'zpole_ild_30k'}"], env)
    if not (samples / "zpole_ild_worse_ip_10k" / "bb.parquet").exists():
        flavortag(["generate", "n_events=10000", "seed=777", "detector=ild_worse_ip", "format=parquet",
                   f"out={samples / 'zpole_ild_worse_ip_10k'}"], env)
    models = args.models.split(",")
    if not args.skip_training:
        for model in models:
            extra = [f"trainer.max_epochs={args.epochs}"] if model in ("deepsets", "transformer") else []
            flavortag(["train", f"+experiment={model}_zpole", *track, *extra], env)

    import mlflow

    mlflow.set_tracking_uri(args.tracking_uri)
    runs = {}
    for run in mlflow.search_runs(experiment_names=[args.experiment], output_format="list",
                                  order_by=["attributes.start_time DESC"]):
        name = run.data.tags.get("mlflow.runName")
        if run.data.tags.get("flavortag.kind") or name not in models or name in runs:
            continue
        runs[name] = run
    robust = {}
    for name, run in runs.items():
        flavortag(["evaluate", f"run_id={run.info.run_id}", "data=zpole_worse_ip", "split=all", *track], env)
        child = mlflow.search_runs(experiment_names=[args.experiment], output_format="list",
                                   filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'",
                                   order_by=["attributes.start_time DESC"])[0]
        robust[name] = child.data.metrics
    flavortag(["compare", *track, f"runs=[{','.join(r.info.run_id for r in runs.values())}]",
               "reference=bdt" if "bdt" in runs else "reference=null"], env)
    print("\nnominal ILD test split | 1.5x worse IP resolution (all events); ratio to bdt in brackets")
    print(f"{'model':<12}" + "".join(f"{k.removeprefix('test/'):>30}" for k in HEADLINE))
    ref = runs.get("bdt")
    for name, run in runs.items():
        cells = []
        for key in HEADLINE:
            nominal, worse = run.data.metrics.get(key, float("nan")), robust[name].get(key, float("nan"))
            if ref is not None and key != "test/acc":
                r_nom = nominal / ref.data.metrics[key]
                r_worse = worse / robust["bdt"][key]
                cells.append(f"{nominal:.3g} ({r_nom:.2f}x) | {worse:.3g} ({r_worse:.2f}x)")
            else:
                cells.append(f"{nominal:.4f} | {worse:.4f}")
        print(f"{name:<12}" + "".join(f"{c:>30}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
