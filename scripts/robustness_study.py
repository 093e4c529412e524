"""The robustness study behind issues 10 and 24 (``make robustness-study``).

1. makes the samples if missing (``--events`` per class, default 10k; the
   nominal training sample twice that): the nominal ILD model, and one sample
   per kind of detector difference: an overall IP-resolution scale (x1.5), a
   different momentum dependence (a and b of sigma(d0, z0) changed by
   different factors), non-Gaussian tails (10% of tracks smeared 4x wider),
   a lower track efficiency (95%), fake tracks (0.5 per event), a misaligned
   vertex detector (3 um d0 / z0 bias), a combination (shape + tails + 96%
   efficiency) and a generator-level sample (no smearing: the calibration
   must refuse it);
2. trains the taggers of ``--models`` on the nominal sample (the default
   transformer, the tuned preset ``+experiment=transformer_zpole_tuned``, the
   BDT, and the default transformer trained with the detector augmentation
   ``augment=detector``); ``--epochs`` shortens the torch trainings;
3. runs ``flavortag robustness`` on all of them with ``calibration=all``
   (none, the overall scale, the resolution function) and writes its report
   (kept fractions and scale factors at the nominal working points, with
   errors) to ``--report``.

Everything goes to the MLflow store of ``--tracking-uri`` (experiment
``--experiment``); runs already there with the same name are reused, so a
study interrupted half-way continues where it stopped. Prints the wall time of
each step.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

#: name: (events per class as a multiple of --events, seed, detector overrides)
SAMPLES: dict[str, tuple[float, int, list[str]]] = {
    "nominal": (2.0, 101, []),
    "scale1p5": (1.0, 202, ["detector.ip_resolution_scale=1.5"]),
    "shape": (1.0, 203, ["detector.d0_a_mm=0.007", "detector.d0_b_mm_gev=0.018",
                         "detector.z0_a_mm=0.008", "detector.z0_b_mm_gev=0.016"]),
    "tails": (1.0, 204, ["detector.ip_tail_fraction=0.1", "detector.ip_tail_scale=4"]),
    "eff95": (1.0, 205, ["detector.track_efficiency=0.95"]),
    "fakes": (1.0, 206, ["detector.fake_tracks_per_event=0.5"]),
    "misalign": (1.0, 207, ["detector.d0_bias_um=3", "detector.z0_bias_um=3"]),
    "combined": (1.0, 208, ["detector.d0_a_mm=0.007", "detector.d0_b_mm_gev=0.016", "detector.z0_a_mm=0.007",
                            "detector.z0_b_mm_gev=0.015", "detector.ip_tail_fraction=0.08",
                            "detector.ip_tail_scale=4", "detector.track_efficiency=0.96"]),
    "genlevel": (0.2, 209, ["detector=perfect"]),
}
#: run name: train overrides (the data and tracking overrides are added)
MODELS: dict[str, list[str]] = {
    "transformer": ["model=transformer"],
    "transformer_tuned": ["+experiment=transformer_zpole_tuned"],
    "bdt": ["model=bdt"],
    "transformer_aug": ["model=transformer", "augment=detector"],
}


def flavortag(args: list[str]) -> None:
    """Run one ``flavortag`` command, echoing it and its wall time; stop on failure."""
    print(f"\n$ flavortag {' '.join(args)}", flush=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "flavortag", *args], check=True, env=dict(os.environ))
    print(f"[{time.perf_counter() - t0:.0f} s]", flush=True)


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", default="samples/robustness", help="directory of the samples")
    parser.add_argument("--events", type=int, default=10000, help="events per class of a shifted sample")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--experiment", default="robustness")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--epochs", type=int, default=None,
                        help="max_epochs of the default transformers (the tuned preset keeps its own 3)")
    parser.add_argument("--train-events", type=int, default=None,
                        help="use this many nominal events per class for the torch taggers, split "
                             "train 0.5 / val 0.1 / test 0.4 (a shared machine: shorter training, "
                             "a test split as large as the default one)")
    parser.add_argument("--shifted-events", type=int, default=None,
                        help="read at most this many events per class of each shifted sample")
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument("--report", default="robustness_report.md", help="where the report is copied")
    parser.add_argument("--output-dir", default="outputs/robustness_study")
    args = parser.parse_args()
    samples = Path(args.samples).resolve()
    track = [f"tracking.tracking_uri={args.tracking_uri}", f"tracking.experiment_name={args.experiment}"]
    for name, (factor, seed, detector) in SAMPLES.items():
        if not (samples / name / "bb.parquet").exists():
            flavortag(["generate", f"n_events={int(factor * args.events)}", f"seed={seed}", *detector,
                       f"out={samples / name}", "progress=false"])
    nominal = samples / "nominal"
    data = [f"data.paths=[{','.join(str(nominal / f'{c}.parquet') for c in ('uds', 'cc', 'bb'))}]",
            "data.name=nominal", "trainer.progress=false", "evaluate.write_predictions=false"]

    import mlflow

    mlflow.set_tracking_uri(args.tracking_uri)

    def finished(run_name: str) -> str | None:
        found = mlflow.search_runs(experiment_names=[args.experiment], output_format="list",
                                   filter_string=f"tags.mlflow.runName = '{run_name}' "
                                                 "and attributes.status = 'FINISHED'")
        return found[0].info.run_id if found else None

    run_ids = []
    for name in args.models.split(","):
        if finished(name) is None:
            shorter = args.epochs and name.startswith("transformer") and "tuned" not in name
            epochs = [f"trainer.max_epochs={args.epochs}"] if shorter else []
            smaller = [f"data.max_events_per_class={args.train_events}",
                       "data.split={train: 0.5, val: 0.1, test: 0.4}"] \
                if args.train_events and name != "bdt" else []
            flavortag(["train", *MODELS[name], *data, *smaller, *epochs, f"run_name={name}", *track])
        run_id = finished(name)
        assert run_id is not None
        run_ids.append(run_id)
    if args.train_only:
        return 0
    shifted = [str(samples / name) for name in SAMPLES if name != "nominal"]
    parts = []
    for name, run_id in zip(args.models.split(","), run_ids):  # one report per tagger: a study can resume
        out = Path(args.output_dir) / name
        if not (out / "robustness.md").exists():
            flavortag(["robustness", f"runs=[{run_id}]", f"samples=[{','.join(shifted)}]",
                       "calibration=all", f"output_dir={out}", f"run_name=robustness-{name}", *track,
                       *([f"max_events_per_class={args.shifted_events}"] if args.shifted_events else [])])
        parts.append(f"## {name}\n\n" + (out / "robustness.md").read_text())
    Path(args.report).write_text("\n".join(parts))
    print(f"report: {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
