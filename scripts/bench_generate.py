"""Benchmark sample production against bare Pythia 8 event generation.

Prints, measured in one run with the same Pythia settings:

* bare ``pythia.next()`` rate (events/s, one process, after init);
* the full pipeline per worker (``produce_samples`` with workers=1: Pythia
  init, ``nextBatch``, record extraction, ancestry, detector model, thrust,
  writing the file) and its ratio to the bare rate (target >= 0.5);
* a breakdown of the pipeline stages per event;
* the speed-up from 1 to 2 workers (wall time, same events).

    python scripts/bench_generate.py                 # ~30-60 s on 2 cores
    python scripts/bench_generate.py --events 4000 --flavour uds --format root
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from flavortag.detector import DetectorModel
from flavortag.generate.detector_sim import simulate_tracks
from flavortag.generate.events import (
    ChunkColumns,
    ChunkGenerator,
    events_from_chunks,
    plan_chunks,
    true_charged_particles,
)
from flavortag.generate.production import produce_samples
from flavortag.generate.pythia_setup import make_pythia
from flavortag.generate.record import record_from_batch
from flavortag.generate.thrust import thrust_axis


def bare_rate(flavour: str, n_events: int, seed: int) -> float:
    """Events/s of ``pythia.next()`` alone (init not counted)."""
    pythia = make_pythia(flavour, seed=seed)
    start = time.perf_counter()
    for _ in range(n_events):
        pythia.next()
    return n_events / (time.perf_counter() - start)


def pipeline_rate(flavour: str, n_events: int, seed: int, fmt: str, workers: int) -> float:
    """Events/s of the whole production (init, generation, extraction, writing) with ``workers``."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        produce_samples(out, n_events, [flavour], fmt=fmt, seed=seed, workers=workers, progress=False)
        return n_events / (time.perf_counter() - start)


def stage_breakdown(flavour: str, n_events: int, seed: int) -> dict[str, float]:
    """Microseconds per event spent in each stage of a chunk (one process)."""
    make = ChunkGenerator()
    chunks = plan_chunks(flavour, n_events, seed=seed)
    make(chunks[0])  # init outside the timing
    stages = dict.fromkeys(("nextBatch", "record", "ancestry+charge", "detector", "thrust", "awkward"), 0.0)
    detector = DetectorModel()
    for spec in chunks:
        t0 = time.perf_counter()
        batch = make.pythia_batch(spec)
        t1 = time.perf_counter()
        record = record_from_batch(batch)
        t2 = time.perf_counter()
        particles = true_charged_particles(record, make._instance(spec)[1])
        t3 = time.perf_counter()
        tracks = simulate_tracks(particles, detector, spec.detector_rng())
        t4 = time.perf_counter()
        axis, _ = thrust_axis(tracks.momenta, tracks.offsets)
        t5 = time.perf_counter()
        events_from_chunks([ChunkColumns(2, np.diff(tracks.offsets), tracks.columns, axis.astype(np.float32))])
        t6 = time.perf_counter()
        for name, dt in zip(stages, np.diff([t0, t1, t2, t3, t4, t5, t6])):
            stages[name] += dt
    return {name: 1e6 * total / n_events for name, total in stages.items()}


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=6000, help="events per single-worker measurement")
    parser.add_argument("--flavour", default="bb")
    parser.add_argument("--format", default="parquet", choices=("parquet", "root", "text"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scaling-events", type=int, default=30000, help="events for the 1 vs 2 worker test")
    args = parser.parse_args()

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"flavour={args.flavour} sqrt_s=91.188 GeV detector=ild format={args.format} "
          f"cores={os.cpu_count()} load average before: {load}")
    bare = [bare_rate(args.flavour, args.events, args.seed)]
    per_worker = pipeline_rate(args.flavour, args.events, args.seed, args.format, 1)
    bare.append(bare_rate(args.flavour, args.events, args.seed + 1))
    bare_mean = float(np.mean(bare))
    print(f"bare pythia.next():        {bare_mean:8.0f} events/s  (two runs: {bare[0]:.0f}, {bare[1]:.0f})")
    print(f"pipeline, 1 worker:        {per_worker:8.0f} events/s  (incl. init and writing)")
    print(f"ratio pipeline / bare:     {per_worker / bare_mean:8.2f}      (target >= 0.5)")

    stages = stage_breakdown(args.flavour, args.events, args.seed)
    total = sum(stages.values())
    print(f"stages per event (us), total {total:.0f} vs bare next() {1e6 / bare_mean:.0f}:")
    for name, us in stages.items():
        print(f"  {name:<16} {us:7.1f}")

    t1 = args.scaling_events / pipeline_rate(args.flavour, args.scaling_events, args.seed, args.format, 1)
    t2 = args.scaling_events / pipeline_rate(args.flavour, args.scaling_events, args.seed, args.format, 2)
    print(f"{args.scaling_events} events: 1 worker {t1:.1f} s, 2 workers {t2:.1f} s, "
          f"speed-up {t1 / t2:.2f}x (2 workers include ~1 s of process start-up)")
    print("load average after: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
