"""Benchmark: the raw-input ONNX transformer in onnxruntime against torch on CPU, in one run.

The transformer of ``configs/model/transformer.yaml`` (untrained weights,
normalisation fitted on the sample: scoring costs the same), ``max_tracks``
64, exported with :func:`flavortag.export_raw.export_raw_onnx`; the events are
the embedded sample (``data/zpole_ild``, 9000 Z-pole events). Rows:

* ``onnxruntime raw``: ``tagger_raw.onnx`` on the raw padded tracks
  (``flavortag.batching.raw_inputs``, made before the clock starts), so the
  time includes *all* the features, the track sort and the network;
* ``torch Tagger``: :meth:`flavortag.Tagger.predict_proba` on the event array
  (numpy features, then the torch model): the Python path from the same events;
* ``torch forward``: the model's forward on prepared feature tensors
  (``EventTensors.batch``, made before the clock): the network alone.

Batch 256 (events/s, best of ``--repeat``) and single events (median latency
over ``--single`` events, batch 1). All three score the events in order of
track count, as ``Tagger`` does (each batch padded to its longest event), so
the ratios compare runtimes, not batching. Both runtimes get the same number of
threads (``--threads``, default torch's). Ratios are printed against each
torch row, measured in this run.

    python scripts/bench_onnx_raw.py
    python scripts/bench_onnx_raw.py --threads 1 --single 300
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import awkward as ak
import numpy as np
import onnxruntime as ort
import torch
from timing import best_time

from flavortag.batching import build_event_tensors, raw_inputs
from flavortag.detector import DetectorModel
from flavortag.export_raw import export_raw_onnx
from flavortag.features import EVENT_FEATURES, TRACK_FEATURES
from flavortag.io import read_events
from flavortag.models import build_model
from flavortag.scoring.tagger import Tagger

ROOT = Path(__file__).resolve().parents[1]
MAX_TRACKS = 64


def _model() -> torch.nn.Module:
    import yaml

    config = yaml.safe_load((ROOT / "flavortag" / "configs" / "model" / "transformer.yaml").read_text())
    return build_model(config, len(TRACK_FEATURES), len(EVENT_FEATURES))


def main() -> None:
    """Print events/s at batch 256 and single-event latency for onnxruntime and torch."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--events", type=int, default=4500, help="events scored per batch-mode pass")
    parser.add_argument("--single", type=int, default=100, help="events timed one at a time")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="threads for both (0: torch's default)")
    args = parser.parse_args()
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)

    events = ak.concatenate([read_events(str(ROOT / "data" / "zpole_ild" / f"{c}.parquet"))
                             for c in ("uds", "cc", "bb")])[: args.events]
    model = _model()
    tensors = build_event_tensors(events, TRACK_FEATURES, EVENT_FEATURES, max_tracks=MAX_TRACKS)
    model.fit_normalisation(tensors.valid_track_features(), tensors.event_features)
    model.feature_names = {"track": list(TRACK_FEATURES), "event": []}
    model.detector = DetectorModel().to_dict()
    model.max_tracks = MAX_TRACKS
    model.eval()
    tagger = Tagger.from_model(model, device="cpu", batch_size=args.batch)

    with tempfile.TemporaryDirectory() as tmp:
        path = export_raw_onnx(model, Path(tmp) / "tagger_raw.onnx")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    by_count = np.argsort(tensors.n_tracks, kind="stable")
    blocks = [by_count[s:s + args.batch] for s in range(0, len(events), args.batch)]
    raw_batches = []
    for block in blocks:
        inputs = raw_inputs(events[block])
        raw_batches.append({n: inputs[n] for n in names})
    torch_batches = [tensors.batch(block) for block in blocks]

    def run_onnx() -> None:
        for feeds in raw_batches:
            session.run(["probabilities"], feeds)

    def run_tagger() -> None:
        tagger.predict_proba(events)

    @torch.no_grad()
    def run_forward() -> None:
        for batch in torch_batches:
            torch.softmax(model(batch), dim=-1)

    # agreement on the timed events (the same numbers, not only the same speed)
    got = np.concatenate([session.run(["probabilities"], f)[0] for f in raw_batches])
    max_diff = float(np.abs(got - tagger.predict_proba(events)[np.concatenate(blocks)]).max())

    for fn in (run_onnx, run_tagger, run_forward):  # warm-up
        fn()
    rate = {name: len(events) / best_time(fn, args.repeat)[0]
            for name, fn in (("onnx", run_onnx), ("tagger", run_tagger), ("forward", run_forward))}

    single = np.linspace(0, len(events) - 1, args.single).astype(int)
    raw_single = []
    for i in single:
        inputs = raw_inputs(events[i:i + 1])
        raw_single.append({n: inputs[n] for n in names})
    torch_single = [tensors.batch([i]) for i in single]
    latency: dict[str, list[float]] = {"onnx": [], "tagger": [], "forward": []}
    with torch.no_grad():
        for k, i in enumerate(single):
            t0 = time.perf_counter()
            session.run(["probabilities"], raw_single[k])
            t1 = time.perf_counter()
            tagger.predict_proba(events[i:i + 1])
            t2 = time.perf_counter()
            torch.softmax(model(torch_single[k]), dim=-1)
            t3 = time.perf_counter()
            latency["onnx"].append(t1 - t0)
            latency["tagger"].append(t2 - t1)
            latency["forward"].append(t3 - t2)
    median_ms = {k: 1e3 * statistics.median(v) for k, v in latency.items()}

    print(f"transformer (configs/model/transformer.yaml), max_tracks {MAX_TRACKS}, {len(events)} events, "
          f"{threads} thread(s); onnxruntime {ort.__version__}, torch {torch.__version__}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"raw ONNX vs Tagger.predict_proba on these events: max |delta p| = {max_diff:.2g}")
    print(f"{'':28s}{'events/s @' + str(args.batch):>18s}{'single-event ms':>18s}")
    rows = (("onnxruntime raw (features in graph)", "onnx"), ("torch Tagger (numpy features)", "tagger"),
            ("torch forward (prepared features)", "forward"))
    for label, key in rows:
        print(f"{label:36s}{rate[key]:10.0f}{median_ms[key]:18.3f}")
    print(f"ratio onnxruntime raw / torch Tagger:  throughput {rate['onnx'] / rate['tagger']:.2f}x, "
          f"latency {median_ms['onnx'] / median_ms['tagger']:.2f}x")
    print(f"ratio onnxruntime raw / torch forward: throughput {rate['onnx'] / rate['forward']:.2f}x, "
          f"latency {median_ms['onnx'] / median_ms['forward']:.2f}x")


if __name__ == "__main__":
    main()
