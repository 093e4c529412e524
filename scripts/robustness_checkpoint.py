"""The robustness report of one tagger checkpoint file (no MLflow run needed).

``flavortag robustness`` takes MLflow runs; on a shared machine a training may
have to be stopped before it finishes, leaving only its ``best.pt``. This
scores that checkpoint with the library behind the app (``flavortag.robustness``,
``flavortag.scale_factors``): its nominal sample is the held-out test split of
the run's own config (``<run dir>/.hydra/config.yaml``), or ``--nominal DIR``
(events made as the training sample was, independently), the shifted samples are
directories of event files; calibration none, scale, function and auto (``--modes``); ``--ceiling
SAMPLE=CHECKPOINT`` adds the report's ceiling tables (a tagger trained on that sample's detector). Prints the
Markdown report (kept fractions and scale factors, with errors) and the wall
time of each (mode, sample).

    python scripts/robustness_checkpoint.py --checkpoint <run dir>/checkpoints/best.pt \\
        --config <run dir>/.hydra/config.yaml --samples samples/robustness/{scale1p5,shape} \\
        --events 1500 --name transformer_tuned
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--config", required=True, help="the run's .hydra/config.yaml")
    parser.add_argument("--samples", nargs="+", required=True, help="directories of shifted samples")
    parser.add_argument("--events", type=int, default=None, help="events per class read of each sample")
    parser.add_argument("--nominal", default=None,
                        help="a directory of nominal events (same detector as training) to use as the nominal "
                             "sample instead of the run's held-out test split (more events: smaller errors)")
    parser.add_argument("--modes", default="none,scale,function,auto")
    parser.add_argument("--ceiling", nargs="*", default=[], metavar="SAMPLE=CHECKPOINT",
                        help="a tagger trained on that shifted sample's own detector (its best.pt): the report "
                             "adds each figure as a fraction of it and ceiling / nominal")
    parser.add_argument("--name", default="tagger")
    parser.add_argument("--out", default=None, help="also write the report here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from omegaconf import OmegaConf

    from flavortag import robustness as rb
    from flavortag.calibration import CalibrationError
    from flavortag.dataset import DataSettings, load_sample
    from flavortag.evaluation import held_out_events
    from flavortag.io.api import EVENT_SUFFIXES
    from flavortag.scoring.inference import load_model

    model = load_model(args.checkpoint)
    if not OmegaConf.has_resolver("hydra"):  # ${hydra:runtime.output_dir}: not needed to find the run's data
        OmegaConf.register_new_resolver("hydra", lambda *_: "")
    run_config = OmegaConf.to_container(OmegaConf.load(args.config), resolve=True)
    def directory_sample(directory: str) -> object:
        paths = sorted(str(p) for p in Path(directory).iterdir() if str(p).endswith(EVENT_SUFFIXES))
        return load_sample({"paths": paths, "max_events_per_class": args.events})

    samples = {"nominal": directory_sample(args.nominal) if args.nominal
               else held_out_events(DataSettings.of_run(run_config))}  # type: ignore[arg-type]
    for directory in args.samples:
        samples[Path(directory).name] = directory_sample(directory)
    ceiling_paths = {}
    for entry in args.ceiling:  # checked before any scoring
        sample, _, path = entry.partition("=")
        if sample not in samples or sample == "nominal" or not path:
            parser.error(f"--ceiling {entry}: write SAMPLE=CHECKPOINT with SAMPLE one of the shifted samples "
                         f"({', '.join(s for s in samples if s != 'nominal')})")
        ceiling_paths[sample] = path
    scored: dict[str, dict[str, rb.Scored]] = {}
    for mode in args.modes.split(","):
        key = f"{args.name} [calib {mode}]"
        scored[key] = {}
        for sample, events in samples.items():
            t0 = time.perf_counter()
            try:
                probs, labels, calib = rb.score_events(model, events, mode)
            except CalibrationError as err:
                print(f"{key} on {sample}: {err}", file=sys.stderr, flush=True)
                continue
            scored[key][sample] = rb.Scored(key, sample, rb.evaluate_scores(probs, labels), calib, probs, labels)
            print(f"{key} on {sample}: acc {scored[key][sample].result.accuracy:.3f} "
                  f"[{time.perf_counter() - t0:.0f} s]", file=sys.stderr, flush=True)
    ceilings = {sample: rb.score_ceiling(load_model(path), samples[sample], sample)
                for sample, path in ceiling_paths.items()}
    text = rb.report_markdown(scored, rb.robustness_rows(scored),
                              rb.ceiling_rows(scored, ceilings) if ceilings else {})
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
