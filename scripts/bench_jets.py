"""Benchmark jet production (Pythia + detector model + fastjet Durham clustering + labels) against bare Pythia.

Prints, measured in one run on the same process and settings (one process, init not counted):

* bare ``pythia.next()``: events/s and jets/s (``n_jets`` per event);
* the jet pipeline (``ChunkGenerator.columns`` of ``level=jet`` chunks: ``nextBatch``,
  record, ancestry, detector model, clustering, labels, regrouping): jets/s;
* their ratio, and the share of the pipeline spent in fastjet.

    python scripts/bench_jets.py                       # ZH -> nu nu (H -> bb) at 250 GeV, ~30 s
    python scripts/bench_jets.py --process qq --sqrt-s 91.188 --flavour bb --events 4000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from flavortag.generate import jets as jetmod
from flavortag.generate.events import ChunkGenerator, plan_chunks
from flavortag.generate.pythia_setup import make_pythia


def bare_rate(flavour: str, n_events: int, seed: int, sqrt_s_gev: float, process: str) -> float:
    """Events/s of ``pythia.next()`` alone (init not counted)."""
    pythia = make_pythia(flavour, sqrt_s_gev, seed=seed, process=process)
    start = time.perf_counter()
    for _ in range(n_events):
        pythia.next()
    return n_events / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--process", default="zh", choices=["qq", "zh"])
    parser.add_argument("--flavour", default="bb")
    parser.add_argument("--sqrt-s", type=float, default=250.0)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument("--n-jets", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    bare = bare_rate(args.flavour, args.events, args.seed, args.sqrt_s, args.process)
    chunks = plan_chunks(args.flavour, args.events, chunk_size=args.chunk_size, seed=args.seed,
                         sqrt_s_gev=args.sqrt_s, process=args.process, n_jets=args.n_jets)
    make = ChunkGenerator()
    make._instance(chunks[0])  # Pythia init outside the timing, as for the bare rate
    clustering_s = 0.0
    original = jetmod.cluster_exclusive

    def timed(*a: object, **k: object) -> jetmod.Clustering:
        nonlocal clustering_s
        t0 = time.perf_counter()
        out = original(*a, **k)  # type: ignore[arg-type]
        clustering_s += time.perf_counter() - t0
        return out

    jetmod.cluster_exclusive = timed  # type: ignore[assignment]
    start = time.perf_counter()
    n_jets = sum(len(make.columns(spec).counts) for spec in chunks)
    wall = time.perf_counter() - start
    jetmod.cluster_exclusive = original  # type: ignore[assignment]
    pipeline = n_jets / wall
    print(f"process {args.process} {args.flavour} at {args.sqrt_s:g} GeV, {args.events} events, "
          f"{args.n_jets} Durham jets per event, one process")
    print(f"bare pythia.next():          {bare:8.0f} events/s = {bare * args.n_jets:8.0f} jets/s")
    print(f"generate + detector + jets:  {pipeline / args.n_jets:8.0f} events/s = {pipeline:8.0f} jets/s")
    print(f"ratio pipeline / bare:       {pipeline / (bare * args.n_jets):8.2f}")
    print(f"fastjet clustering share:    {clustering_s / wall:8.2%} of the pipeline "
          f"({1e6 * clustering_s / max(args.events, 1):.0f} us per event)")
    assert np.isfinite(pipeline)


if __name__ == "__main__":
    main()
