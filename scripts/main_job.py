"""The README's main job: train, evaluate and compare all taggers on the embedded sample.

Runs the real command-line tools one after the other (as a user would):
``flavortag info`` on the embedded sample, ``flavortag train`` for mlp, bdt,
deepsets and transformer (short trainings; each evaluates itself on the
held-out test split and logs to the MLflow store ./mlflow.db), then
``flavortag compare`` over those runs, and prints how to open the MLflow UI.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST_MODEL_SETTINGS = {
    "mlp": ["trainer.max_epochs=30", "trainer.lr=3e-3"],
    "deepsets": ["trainer.max_epochs=30", "trainer.lr=3e-3"],
    "bdt": [],
}
SAMPLE = ["data/zpole_ild/uds.parquet", "data/zpole_ild/cc.parquet", "data/zpole_ild/bb.parquet"]


def run(args: list[str]) -> None:
    """Run ``flavortag <args>`` and stop on failure."""
    print(f"\n$ flavortag {' '.join(args)}", flush=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "flavortag", *args], cwd=ROOT, check=True)
    print(f"  ({time.perf_counter() - t0:.0f} s)", flush=True)


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6, help="epochs for the transformer (default 6)")
    parser.add_argument("--experiment", default="flavortag-embedded", help="MLflow experiment name")
    parser.add_argument("--models", default="mlp,bdt,deepsets,transformer", help="comma-separated models")
    args = parser.parse_args()
    run(["info", *SAMPLE])
    exp = f"tracking.experiment_name={args.experiment}"
    for model in args.models.split(","):
        # the small networks are cheap: more epochs and a larger step size on this small sample
        extra = FAST_MODEL_SETTINGS.get(model, [f"trainer.max_epochs={args.epochs}"])
        run(["train", f"model={model}", *extra, "trainer.progress=true", exp])
    run(["compare", exp])
    from flavortag import tracking

    experiment_id = tracking.configure({"tracking_uri": f"sqlite:///{ROOT / 'mlflow.db'}",
                                        "experiment_name": args.experiment})
    runs_url = f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs"
    print("\nAll runs are in the MLflow store ./mlflow.db. Open the UI with\n"
          "  make ui     (or: .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db)\n"
          f"and browse the runs table of experiment '{args.experiment}':\n  {runs_url}\n"
          f"or its chart view:\n  {runs_url}?compareRunsMode=CHART")
    return 0


if __name__ == "__main__":
    sys.exit(main())
