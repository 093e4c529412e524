"""What making each shipped benchmark task costs: measured on reduced copies, extrapolated to the default sizes.

    PYTHONPATH=. python scripts/bench_task_cost.py [--scales 0.0125 0.025] [--workers 2] [--out /tmp/task-cost]
                                                    [--tasks zpole-3class-ild-v1 zpole-robustness-v1 zh-jets-ild-v1]

Each task file is copied twice with every split (and shifted test set)
scaled by each of ``--scales`` (rounded to whole chunks, at least one) into a
scratch folder and made there with ``flavortag.benchmark.make.make_dataset``.
CPU time (this process and its worker processes) per event is the difference
of the two runs divided by the difference of their events, so the fixed costs
(worker imports, Pythia initialisation per class, setting and worker) drop out;
they are printed apart. The script prints, per task: events (records) made,
wall and CPU time, CPU-s per 1000 events relative to zpole-3class-ild-v1
measured in the same run, bytes per event (record) of Parquet per split; then
the extrapolation to the default sizes (CPU = fixed + events x CPU per event;
disk = events x bytes per event, per split). On a machine shared with other
jobs CPU time itself is inflated (caches, hyper-threads): compare the ratios.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import time
from pathlib import Path

import yaml

from flavortag.benchmark import load_task
from flavortag.benchmark.make import make_dataset, read_manifest
from flavortag.benchmark.task import tasks_dir

BASELINE = "zpole-3class-ild-v1"


def _cpu_s() -> float:
    self, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return self.ru_utime + self.ru_stime + children.ru_utime + children.ru_stime


def _scaled(n: int, scale: float, chunk: int) -> int:
    return max(chunk, round(n * scale / chunk) * chunk)


def reduced_copy(name: str, scale: float, folder: Path) -> Path:
    """The task file of ``name`` with every split and shifted set scaled by ``scale``, in ``folder``."""
    raw = yaml.safe_load((tasks_dir() / f"{name}.yaml").read_text())
    chunk = int(raw["chunk_size"])
    raw["splits"] = {k: _scaled(int(v), scale, chunk) for k, v in raw["splits"].items()}
    for variant in (raw.get("test_variants") or {}).values():
        variant["events"] = min(_scaled(int(variant["events"]), scale, chunk), raw["splits"]["test"])
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def measure(name: str, scale: float, workers: int, out: Path) -> dict[str, float | dict]:
    """Make the reduced copy of ``name``; wall, CPU, events and bytes per split of the copy and of the full task."""
    folder = out / "tasks"
    folder.mkdir(parents=True, exist_ok=True)
    small = load_task(reduced_copy(name, scale, folder))
    target = out / name
    shutil.rmtree(target, ignore_errors=True)
    cpu0, wall0 = _cpu_s(), time.perf_counter()
    make_dataset(small, target, workers=workers, progress=False)
    wall_s, cpu_s = time.perf_counter() - wall0, _cpu_s() - cpu0
    manifest = read_manifest(target)
    per_split = {}
    full = load_task(name)
    for split, part in manifest["splits"].items():
        size = sum((target / n).stat().st_size for n in part["files"])
        n_full = full.split_events(split) * len(full.flavours) * (full.n_jets or 1)
        per_split[split] = {"records": part["n_events"], "bytes": size, "bytes_per_record": size / part["n_events"],
                            "records_full": n_full}
    records = sum(s["records"] for s in per_split.values())
    return {"wall_s": wall_s, "cpu_s": cpu_s, "records": records, "splits": per_split,
            "events": records / (small.n_jets or 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", type=float, nargs=2, default=[0.0125, 0.025],
                        help="two reduced sizes: the CPU per event is the difference of the two runs (no fixed costs)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="/tmp/flavortag-task-cost")
    parser.add_argument("--tasks", nargs="+", default=[BASELINE, "zpole-robustness-v1", "zh-jets-ild-v1"])
    args = parser.parse_args()
    names = [BASELINE, *[t for t in args.tasks if t != BASELINE]]
    out = Path(args.out)
    print(f"scales {args.scales}, {args.workers} worker(s), {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    small = {name: measure(name, args.scales[0], args.workers, out / "small") for name in names}
    large = {name: measure(name, args.scales[1], args.workers, out / "large") for name in names}

    def marginal(name: str) -> float:  # CPU-s per event without the fixed costs (imports, Pythia init)
        return (large[name]["cpu_s"] - small[name]["cpu_s"]) / (large[name]["events"] - small[name]["events"])

    base = marginal(BASELINE)
    for name in names:
        r, per_event = large[name], marginal(name)
        fixed = small[name]["cpu_s"] - per_event * small[name]["events"]
        full_records = sum(s["records_full"] for s in r["splits"].values())
        full_bytes = sum(s["records_full"] * s["bytes_per_record"] for s in r["splits"].values())
        full_events = full_records / (load_task(name).n_jets or 1)
        full_cpu = fixed + full_events * per_event
        print(f"\n{name}: reduced copies {small[name]['events']:,.0f} and {r['events']:,.0f} events made in "
              f"{small[name]['wall_s']:.1f} / {r['wall_s']:.1f} s wall, {small[name]['cpu_s']:.1f} / {r['cpu_s']:.1f} "
              f"CPU-s: {1000 * per_event:.2f} CPU-s per 1000 events beyond a fixed {fixed:.1f} CPU-s "
              f"({per_event / base:.2f} x {BASELINE} in this run)")
        for split, s in r["splits"].items():
            print(f"  {split:<22} {s['records']:>8,} records, {s['bytes_per_record']:7.1f} bytes/record; "
                  f"default size {s['records_full']:>9,} records -> {s['records_full'] * s['bytes_per_record'] / 1e6:7.1f} MB")
        print(f"  default size: {full_records:,} records ({full_events:,.0f} events), extrapolated "
              f"{full_bytes / 1e6:,.0f} MB of Parquet, {full_cpu:,.0f} CPU-s "
              f"({full_cpu / 60 / args.workers:.1f} min on {args.workers} free cores)")


if __name__ == "__main__":
    main()
