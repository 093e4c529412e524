"""Benchmark: ``flavortag predict`` streaming, events/s and peak memory for a 1x and a 10x input.

Makes the inputs from the embedded sample (``data/zpole_ild``, 9000 events):
``sample_1x`` (the sample once) and ``sample_10x`` (ten times), in ``--format``
(Parquet, one row group per ``--step`` events, or text), and a checkpoint of a
``--model`` tagger (untrained weights, normalisation fitted on the sample:
scoring costs the same). Each prediction runs in a fresh interpreter that
reports its wall time and peak resident memory (``ru_maxrss``); rows:

* streaming (``step_size=--step``) on 1x and 10x: events/s, peak memory, and the
  ratio of the peaks 10x / 1x (goal about 1: memory flat in the file size);
* reading each input whole (``step_size`` larger than the file, what predict did
  before streaming) as the baseline, measured the same way.

    python scripts/bench_predict.py                       # parquet, deepsets, step 5000
    python scripts/bench_predict.py --format text --model transformer --scale 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = [ROOT / "data" / "zpole_ild" / f"{name}.parquet" for name in ("uds", "cc", "bb")]

_PROBE = """
import json, resource, sys, time
from hydra import compose, initialize_config_dir
from flavortag.apps import CONFIG_DIR
from flavortag.apps.predict import predict
checkpoint, source, out, step, formats = sys.argv[1:6]
with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
    cfg = compose(config_name="predict", overrides=[
        f"checkpoint={checkpoint}", f"inputs=[{source}]", f"out_dir={out}", f"step_size={step}",
        f"formats=[{formats}]"])
import flavortag.batching, flavortag.scoring.inference, flavortag.io, torch  # imports before the clock starts
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
predict(cfg)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "base_kb": base}))
"""


def make_inputs(workdir: Path, scale: int, fmt: str, step: int) -> tuple[Path, Path, int]:
    """The 1x and ``scale``x inputs and the number of events of the 1x one."""
    from flavortag.io import read_events
    from flavortag.io.api import write_columns
    from flavortag.io.columns import EventColumns

    cols = EventColumns.from_awkward(read_events([str(p) for p in SAMPLE]))
    n = len(cols)
    suffix = {"parquet": ".parquet", "text": ".txt", "root": ".root"}[fmt]
    if fmt == "text":  # one class per text file: label the copies unknown
        cols.label[:] = -1

    def chunks(copies: int):  # noqa: ANN202
        for _ in range(copies):
            for start in range(0, n, step):
                yield cols.slice(start, min(start + step, n))

    one, many = workdir / f"sample_1x{suffix}", workdir / f"sample_{scale}x{suffix}"
    write_columns(chunks(1), one, fmt)
    write_columns(chunks(scale), many, fmt)
    return one, many, n


def make_checkpoint(workdir: Path, model_name: str, max_tracks: int) -> Path:
    """A checkpoint of a ``model_name`` tagger with the default features (weights untrained)."""
    import torch

    from flavortag.batching import build_event_tensors
    from flavortag.detector import DetectorModel
    from flavortag.io import read_events
    from flavortag.models import build_model, checkpoint_state
    from flavortag.training.settings import feature_names

    track_names, event_names = feature_names(None)
    tensors = build_event_tensors(read_events([str(p) for p in SAMPLE]), track_names, event_names,
                                  max_tracks=max_tracks, detector=DetectorModel())
    model = build_model({"name": model_name}, len(track_names), len(event_names))
    model.fit_normalisation(tensors.valid_track_features(), tensors.event_features)
    model.feature_names = {"track": list(track_names), "event": list(event_names)}
    model.detector = DetectorModel().to_dict()
    model.max_tracks = max_tracks  # type: ignore[assignment]
    path = workdir / f"{model_name}.pt"
    torch.save({"model": checkpoint_state(model)}, path)
    return path


def probe(checkpoint: Path, source: Path, out: Path, step: int, formats: str) -> dict:
    """Wall time and peak memory of one ``predict`` in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", _PROBE, str(checkpoint), str(source), str(out), str(step),
                             formats], check=True, capture_output=True, text=True, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", choices=("parquet", "text", "root"), default="parquet")
    parser.add_argument("--model", default="deepsets", help="tagger to score with (default deepsets)")
    parser.add_argument("--scale", type=int, default=10, help="size of the large input in samples (default 10)")
    parser.add_argument("--step", type=int, default=5000, help="events per chunk when streaming (default 5000)")
    parser.add_argument("--formats", default="parquet,root", help="output formats (default parquet,root)")
    parser.add_argument("--max-tracks", type=int, default=48)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    own = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="bench_predict_")) if own else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        one, many, n = make_inputs(workdir, args.scale, args.format, args.step)
        checkpoint = make_checkpoint(workdir, args.model, args.max_tracks)
        load = f"{os.getloadavg()[0]:.2f}"
        print(f"inputs: {one.name} ({n} events, {one.stat().st_size / 1e6:.1f} MB), {many.name} "
              f"({args.scale * n} events, {many.stat().st_size / 1e6:.1f} MB); model {args.model}, "
              f"outputs {args.formats}; load average {load}")
        rows = {}
        for mode, step in (("streaming", args.step), ("whole file", 10 * args.scale * n)):
            for name, source in (("1x", one), (f"{args.scale}x", many)):
                out = workdir / f"out_{mode.replace(' ', '_')}_{name}"
                r = probe(checkpoint, source, out, step, args.formats)
                events = n if name == "1x" else args.scale * n
                rows[(mode, name)] = r
                print(f"{mode:<11} {name:>4}: {events / r['seconds']:8.0f} events/s   peak RSS "
                      f"{r['peak_kb'] / 1024:7.0f} MB (after imports {r['base_kb'] / 1024:.0f} MB)")
        for mode in ("streaming", "whole file"):
            small, large = rows[(mode, "1x")], rows[(mode, f"{args.scale}x")]
            grow_small = small["peak_kb"] - small["base_kb"]
            grow_large = large["peak_kb"] - large["base_kb"]
            print(f"{mode}: peak RSS {args.scale}x / 1x = {large['peak_kb'] / small['peak_kb']:.2f} "
                  f"(growth over imports {grow_large / max(grow_small, 1):.2f}); events/s {args.scale}x / 1x = "
                  f"{(args.scale * small['seconds']) / large['seconds']:.2f}")
        stream, whole = rows[("streaming", f"{args.scale}x")], rows[("whole file", f"{args.scale}x")]
        print(f"{args.scale}x input: streaming / whole-file peak RSS = {stream['peak_kb'] / whole['peak_kb']:.2f}, "
              f"events/s = {whole['seconds'] / stream['seconds']:.2f}")
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
