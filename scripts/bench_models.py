"""Benchmark: training and inference throughput (events/s), parameters and peak memory per model.

Random padded batches (batch 256, 48 track slots, 16 track features, Z-pole-like
multiplicities of 5..40 valid tracks by default), AdamW steps on the current device. Prints
one row per model and the ratio to the mlp baseline measured in the same run. Peak memory
is the growth of the process's peak resident set (CPU) or peak allocated CUDA memory over
the training and inference steps; each model runs in its own process so peaks do not mix.

    python scripts/bench_models.py --threads 2 --steps 10
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from flavortag.export import example_inputs
from flavortag.models import MODELS, build_model, count_parameters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-tracks", type=int, default=48)
    parser.add_argument("--track-features", type=int, default=16)
    parser.add_argument("--event-features", type=int, default=12)
    parser.add_argument("--valid-tracks", type=int, nargs=2, default=(5, 40), metavar=("MIN", "MAX"),
                        help="valid tracks per event drawn uniformly in [MIN, MAX] (the rest is padding)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--no-pair-features", action="store_true", help="also time the transformer without them")
    parser.add_argument("--single", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)

    configs: list[tuple[str, dict]] = [(name, {"name": name}) for name in args.models]
    if args.no_pair_features and "transformer" in args.models:
        configs.append(("transformer (no pairs)", {"name": "transformer", "use_pair_features": False}))
    if args.single is None:
        # one process per model, so the peak-memory figures do not mix
        baseline_rate = None
        for label, cfg in configs:
            argv = [a for a in sys.argv[1:]]
            out = subprocess.run([sys.executable, __file__, *argv, "--single", json.dumps([label, cfg])],
                                 capture_output=True, text=True, check=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            baseline_rate = baseline_rate or row["train"]
            print(f"{label:24s} params={row['params']:8d}  train {row['train']:9.0f} events/s  "
                  f"(x{row['train'] / baseline_rate:.3f} of {configs[0][0]})  inference {row['infer']:9.0f} "
                  f"events/s  peak memory +{row['peak_mb']:.0f} MB", flush=True)
        return
    configs = [tuple(json.loads(args.single))]  # type: ignore[list-item]

    if args.single is None:
        print(f"device={device} threads={torch.get_num_threads()} batch={args.batch_size} "
              f"N={args.max_tracks} F={args.track_features} valid tracks/event in {list(args.valid_tracks)}")
    for label, cfg in configs:
        model = build_model(cfg, args.track_features, args.event_features).to(device).train()
        inputs = example_inputs(model, args.batch_size, args.max_tracks)
        low, high = args.valid_tracks
        counts = torch.randint(low, min(high, args.max_tracks) + 1, (args.batch_size,))
        inputs["valid"] = torch.arange(args.max_tracks)[None, :] < counts[:, None]
        inputs = {k: v.to(device) for k, v in inputs.items()}
        labels = torch.randint(0, 3, (args.batch_size,), device=device)
        optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)

        def step(model: torch.nn.Module = model, inputs: dict = inputs, labels: torch.Tensor = labels,
                 optimiser: torch.optim.Optimizer = optimiser) -> None:
            optimiser.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model.forward_padded(**inputs), labels)
            loss.backward()
            optimiser.step()

        rss_before_mb = _current_rss_mb()
        for _ in range(args.warmup):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        rate = args.steps * args.batch_size / (time.perf_counter() - start)
        model.eval()
        with torch.no_grad():
            model.forward_padded(**inputs)
            start = time.perf_counter()
            for _ in range(args.steps):
                model.forward_padded(**inputs)
            if device.type == "cuda":
                torch.cuda.synchronize()
        infer = args.steps * args.batch_size / (time.perf_counter() - start)
        if device.type == "cuda":
            peak_mb = torch.cuda.max_memory_allocated() / 2**20
        else:
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before_mb
        print(json.dumps({"label": label, "params": count_parameters(model), "train": rate,
                          "infer": infer, "peak_mb": max(peak_mb, 0.0)}))


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 2**20

if __name__ == "__main__":
    main()
