"""The robustness study behind issue 10's figures (``make robustness-study``).

1. makes the samples if missing: 20k Z-pole events per class with the nominal
   ILD model (training + held-out test split), 20k per class with 1.5x worse
   impact-parameter resolution, and 5k per class of each further variation
   (IP resolution x1.25; a 3 um d0/z0 misalignment bias; one fake track per
   event with 95% track efficiency; momentum resolution x1.5);
2. trains each model three ways: as today (``_base``), with resolution
   augmentation (``_augonly``: ``augment=resolution``) and resolution-aware
   (``_aware``: ``augment=resolution_aware features=resolution_aware``);
3. runs ``flavortag robustness`` on all of them with ``calibration=both`` and
   prints the report (nominal, shifted, kept, with errors). ``--ablations``
   adds the input-group ablations (each retrains every base tagger).

Everything goes to the MLflow store of ``--tracking-uri`` (experiment
``--experiment``); runs already there with the same name are reused, so a
study interrupted half-way continues where it stopped.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

MODELS = ("bdt", "mlp", "deepsets", "transformer")
VARIANTS = {
    "base": [],
    "augonly": ["augment=resolution"],
    "aware": ["augment=resolution_aware", "features=resolution_aware"],
}
SAMPLES = {
    # name: (events per class, seed, detector overrides)
    "nominal_20k": (20000, 101, []),
    "worse_ip_20k": (20000, 202, ["detector=ild_worse_ip"]),
    "ip1p25_5k": (5000, 303, ["detector.ip_resolution_scale=1.25"]),
    "ipbias3um_5k": (5000, 304, ["detector.d0_bias_um=3", "detector.z0_bias_um=3"]),
    "fakes1_eff95_5k": (5000, 305, ["detector.fake_tracks_per_event=1", "detector.track_efficiency=0.95"]),
    "mom1p5_5k": (5000, 306, ["detector.momentum_resolution_scale=1.5"]),
}
EPOCHS = {"bdt": None, "mlp": 15, "deepsets": 6, "transformer": 6}


def flavortag(args: list[str]) -> None:
    """Run one ``flavortag`` command, echoing it; stop on failure."""
    print(f"\n$ flavortag {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "flavortag", *args], check=True, env=dict(os.environ))


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", default="samples", help="directory of the samples")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--experiment", default="robustness")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--ablations", default="", help="e.g. impact_parameters,kinematics,angles")
    args = parser.parse_args()
    samples = Path(args.samples).resolve()
    track = [f"tracking.tracking_uri={args.tracking_uri}", f"tracking.experiment_name={args.experiment}"]
    for name, (n, seed, detector) in SAMPLES.items():
        if not (samples / name / "bb.parquet").exists():
            flavortag(["generate", f"n_events={n}", f"seed={seed}", *detector,
                       f"out={samples / name}", "progress=false"])
    nominal = samples / "nominal_20k"
    data = [f"data.paths=[{','.join(str(nominal / f'{c}.parquet') for c in ('uds', 'cc', 'bb'))}]",
            "data.name=nominal_20k", "trainer.progress=false", "evaluate.write_predictions=false"]

    import mlflow

    mlflow.set_tracking_uri(args.tracking_uri)

    def finished(run_name: str) -> str | None:
        found = mlflow.search_runs(experiment_names=[args.experiment], output_format="list",
                                   filter_string=f"tags.mlflow.runName = '{run_name}' "
                                                 "and attributes.status = 'FINISHED'")
        return found[0].info.run_id if found else None

    run_ids = []
    for model in args.models.split(","):
        for variant in args.variants.split(","):
            name = f"{model}_{variant}"
            if finished(name) is None:
                epochs = [f"trainer.max_epochs={EPOCHS[model]}"] if EPOCHS[model] else []
                flavortag(["train", f"model={model}", *data, *epochs, *VARIANTS[variant],
                           f"run_name={name}", *track])
            run_id = finished(name)
            assert run_id is not None
            run_ids.append(run_id)
    shifted = [str(samples / name) for name in SAMPLES if name != "nominal_20k"]
    flavortag(["robustness", f"runs=[{','.join(run_ids)}]", f"samples=[{','.join(shifted)}]",
               "calibration=both", f"ablations=[{args.ablations}]", *track])
    return 0


if __name__ == "__main__":
    sys.exit(main())
