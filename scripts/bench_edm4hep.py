"""Benchmark: EDM4hep events read per second by flavortag against bare uproot reading the same branches.

    python scripts/bench_edm4hep.py [--events 50000] [--level event|jet] [--repeats 3]

Replicates ``tests/data/edm4hep/test_FCC_Winter2023.root`` (100 ZH events,
Delphes IDEA) to ``--events`` events: the branches flavortag reads, written
again and again with uproot into a temporary ROOT file (in blocks of 5000
events, so the baskets are of a realistic size; the covariance is stored
flattened per event, since uproot writes no ``var * 21`` leaf). Then, in one
run, the best of ``--repeats`` of

* bare uproot: ``tree.arrays(<the same branches>)``, the baseline;
* flavortag: ``read_events(path, format="edm4hep", level=...)`` (the records:
  PCA, covariance, thrust axis, MC labels, the physics checks);

and prints events/s of both and their ratio (target >= 0.7). The wall-time
ratio counts on a free second core (the next chunk is read in a thread while
this one is built); ``--cpu`` also prints the ratio of CPU seconds (all
threads), which is what a machine busy with other work sees and which other
jobs on a shared machine hardly change.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import awkward as ak
import uproot
from timing import best_time

from flavortag.io import read_events
from flavortag.io.edm4hep import EDM4hepOptions, leaves_to_read
from flavortag.io.edm4hep_layout import detect_layout

SOURCE = Path(__file__).resolve().parents[1] / "tests" / "data" / "edm4hep" / "test_FCC_Winter2023.root"
BLOCK_EVENTS = 5000


def replicate(source: Path, target: Path, n_events: int) -> list[str]:
    """Write ``n_events`` (a multiple of the source's) copies of the read branches; returns the branch names."""
    with uproot.open(source) as file:
        tree = file["events"]
        leaves = leaves_to_read(detect_layout(file, tree, str(source)), EDM4hepOptions(level="jet"))
        arrays = tree.arrays(filter_name=set(leaves).__contains__)
        n_source = tree.num_entries
    data = {}
    for name in arrays.fields:
        values = arrays[name]
        data[name.split("[")[0]] = ak.flatten(values, axis=2) if "[" in name else values
    block = {k: ak.concatenate([v] * (BLOCK_EVENTS // n_source)) for k, v in data.items()}
    with uproot.recreate(target) as out:
        out_tree = out.mktree("events", {k: v.type for k, v in block.items()})
        for _ in range(n_events // BLOCK_EVENTS):
            out_tree.extend(block)
    return list(block)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; prints events/s and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--level", choices=("event", "jet"), default="event")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu", action="store_true", help="also the ratio of CPU seconds (all threads)")
    args = parser.parse_args(argv)
    n_events = max(BLOCK_EVENTS, args.events // BLOCK_EVENTS * BLOCK_EVENTS)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "replicated.root"
        branches = replicate(SOURCE, path, n_events)
        with uproot.open(path) as file:  # what flavortag reads at this level, bare
            layout = detect_layout(file, file["events"], str(path))
            wanted = set(leaves_to_read(layout, EDM4hepOptions(level=args.level)))

        def bare() -> None:
            with uproot.open(path) as file:
                file["events"].arrays(filter_name=wanted.__contains__, library="ak")

        def flavortag() -> None:
            read_events(path, format="edm4hep", level=args.level)

        records = len(read_events(path, format="edm4hep", level=args.level))
        t_bare = best_time(bare, args.repeats)[0]
        t_flavortag = best_time(flavortag, args.repeats)[0]
        if args.cpu:
            cpu_bare = best_time(bare, args.repeats, time.process_time)[0]
            cpu_flavortag = best_time(flavortag, args.repeats, time.process_time)[0]
        size_mb = path.stat().st_size / 1e6
    print(f"{n_events} EDM4hep events ({size_mb:.0f} MB, {len(wanted)} of its {len(branches)} branches read), "
          f"level={args.level} ({records} records), best of {args.repeats}")
    print(f"bare uproot tree.arrays : {n_events / t_bare:10.0f} events/s ({t_bare:.2f} s)")
    print(f"flavortag read_events   : {n_events / t_flavortag:10.0f} events/s ({t_flavortag:.2f} s)")
    print(f"ratio flavortag / uproot: {t_bare / t_flavortag:.2f} (target >= 0.7)")
    if args.cpu:
        print(f"CPU seconds, all threads: bare {cpu_bare:.2f} s, flavortag {cpu_flavortag:.2f} s, "
              f"ratio {cpu_bare / cpu_flavortag:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
