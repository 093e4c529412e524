"""Benchmark of flavortag.io: each figure measured in one run beside its baseline, as a ratio.

Makes a text file of ``--size-mb`` MB in the docs/FORMAT.md layout (toy events from
:mod:`flavortag.io.synthetic`: ~20 tracks per event, 7 significant digits),
then measures on that same file:

1. text read speed (``read_events``) / ``pyarrow.csv`` reading the same track
   rows as a plain 7-column table (target >= 0.8); shown for the plain call
   (types inferred: float64) and, stricter, with float32 columns as we use;
2. text read speed / a straightforward pure-Python parser (split + float per
   line), timed on a prefix and extrapolated (target >= 8);
3. peak extra resident memory of a streaming pass (``iter_events``) for two
   file sizes, against ``2 x chunk + one chunk's arrays`` (target: below, and
   flat in the file size);
4. ROOT: events/s of ``read_events`` / bare ``uproot ... .arrays()`` of the
   same branches (target >= 0.8);
5. padded batches: events/s of ``flavortag.batching.pad_tracks`` to
   ``[B, 64, 7]`` if it exists.

Ours and the baseline run back to back, ``--repeats`` rounds; each ratio is
the median over rounds of the per-round ratio, so that load from other
processes hits both alike. Absolute numbers depend on the machine (and on
how many of its cores are free: ``pyarrow.csv`` and our reader use all of
them, the pure-Python parser one); the ratios are what to compare.

    python scripts/bench_io.py                 # 200 MB, temporary directory
    python scripts/bench_io.py --size-mb 50 --workdir /tmp/bench
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from flavortag.io import TRACK_FIELDS, read_events
from flavortag.io.api import write_columns
from flavortag.io.columns import EventColumns
from flavortag.io.synthetic import synthetic_columns
from flavortag.io.text_write import format_text

MB = 1e6
_RSS_PROBE = """
import json, sys
from flavortag.io import iter_events

def rss_kb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))

path, tiny, step = sys.argv[1], sys.argv[2], sys.argv[3]
sum(len(c) for c in iter_events(tiny, step_size=step))  # lazy imports, thread pool
base = rss_kb("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:  # reset the high-water mark VmHWM to VmRSS
    f.write("5")
n_events = max_chunk_bytes = 0
for chunk in iter_events(path, step_size=step):
    n_events += len(chunk)
    max_chunk_bytes = max(max_chunk_bytes, chunk.layout.nbytes)
peak = rss_kb("VmHWM:")
print(json.dumps({"base_kb": base, "peak_kb": peak, "events": n_events, "chunk_bytes": max_chunk_bytes}))
"""

#: CPU seconds (all threads) of the calls timed by the last :func:`rounds`, same shape as its result.
LAST_CPU_TIMES = np.empty((0, 0))


def rounds(repeats: int, *runs: Callable[[], object]) -> np.ndarray:
    """Wall times ``[repeats, len(runs)]``: the callables take turns, round after round.

    Their CPU times (user + system, all threads) go to :data:`LAST_CPU_TIMES`:
    on a loaded machine the ratio of CPU times still says which does less work.
    """
    global LAST_CPU_TIMES
    times = np.empty((repeats, len(runs)))
    cpu = np.empty((repeats, len(runs)))
    for r in range(repeats):
        for k, run in enumerate(runs):
            start, start_cpu = time.perf_counter(), _cpu_seconds()
            run()
            times[r, k] = time.perf_counter() - start
            cpu[r, k] = _cpu_seconds() - start_cpu
    LAST_CPU_TIMES = cpu
    return times


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def paired_ratio(
    times: np.ndarray, ours: int, base: int, ours_work: float, base_work: float
) -> tuple[float, float, float]:
    """Median, min and max over rounds of (our rate / baseline rate); each pair ran back to back."""
    ratios = (ours_work / times[:, ours]) / (base_work / times[:, base])
    return float(np.median(ratios)), float(ratios.min()), float(ratios.max())


def load_average() -> str:
    """The 1-minute load average (the machine may be shared)."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:  # not available on this platform
        return "?"


def make_files(workdir: Path, size_mb: float, seed: int) -> tuple[Path, Path, EventColumns]:
    """The text file (>= size_mb) and the same track rows alone, formatted identically."""
    probe = synthetic_columns(2000, seed=seed + 1)
    bytes_per_event = len(format_text(probe)) / len(probe)
    n_events = int(size_mb * MB / bytes_per_event * 1.01) + 1
    cols = synthetic_columns(n_events, seed=seed)
    text = workdir / "bench_bb.txt"
    write_columns([cols], text, "text")
    tracks = workdir / "bench_tracks_only.txt"
    pacsv.write_csv(
        pa.table({name: cols.tracks[name] for name in TRACK_FIELDS}), tracks,
        write_options=pacsv.WriteOptions(include_header=False, delimiter=" ", quoting_style="none"),
    )
    return text, tracks, cols


def prefix_file(source: Path, target: Path, size_bytes: int) -> Path:
    """The first events of ``source`` up to about ``size_bytes`` (cut before an axis line)."""
    with open(source, "rb") as f:
        data = f.read(size_bytes)
    target.write_bytes(data[: data.rfind(b"\nAxis") + 1])
    return target


def pure_python_read(path: Path) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The straightforward parser: one line at a time, split, float."""
    axes: list[list[float]] = []
    rows: list[list[float]] = []
    counts: list[int] = []
    with open(path) as f:
        for line in f:
            if line.startswith("Axis"):
                axes.append([float(v) for v in line.split()[2:]])
                counts.append(0)
            elif line.strip():
                rows.append([float(v) for v in line.split()])
                counts[-1] += 1
    return np.array(axes, np.float32), np.array(rows, np.float32), counts


def baseline_pyarrow(path: Path, float32: bool) -> pa.Table:
    """``pyarrow.csv`` reading a plain space-separated 7-column table."""
    convert = (
        pacsv.ConvertOptions(column_types={f"f{i}": pa.float32() for i in range(7)})
        if float32 else pacsv.ConvertOptions()
    )
    return pacsv.read_csv(
        path, read_options=pacsv.ReadOptions(autogenerate_column_names=True),
        parse_options=pacsv.ParseOptions(delimiter=" "), convert_options=convert,
    )


def rss_probe(path: Path, tiny: Path, step: str) -> dict:
    """Peak resident memory of a streaming pass, in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(path), str(tiny), step],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def line(name: str, ours: str, base: str, ratio: float | tuple[float, float, float], target: str, ok: bool) -> None:
    """One row of the results table (a ratio given as (median, min, max) shows its range)."""
    verdict = "ok" if ok else "BELOW TARGET"
    spread = f"({ratio[1]:.2f}-{ratio[2]:.2f})" if isinstance(ratio, tuple) else ""
    value = ratio[0] if isinstance(ratio, tuple) else ratio
    print(f"{name:<34} {ours:>18} {base:>26} {value:>6.2f} {spread:<11} {target:<11} {verdict}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns 0 (figures below target are reported, not failed)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=float, default=200.0, help="text file size (default 200)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the files go (default: a temp dir, removed)")
    parser.add_argument("--chunk-mb", type=float, default=16.0, help="streaming chunk size (default 16)")
    parser.add_argument("--python-mb", type=float, default=20.0, help="prefix for the pure-Python parser (default 20)")
    parser.add_argument("--repeats", type=int, default=5, help="timing rounds, median taken (default 5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--text-only", action="store_true", help="only figure 1 (text vs pyarrow.csv)")
    args = parser.parse_args(argv)

    own_dir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="bench_io_")) if own_dir else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        return _run(args, workdir)
    finally:
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)


def _run(args: argparse.Namespace, workdir: Path) -> int:
    t0 = time.perf_counter()
    start_load = load_average()
    text, tracks_only, cols = make_files(workdir, args.size_mb, args.seed)
    size, tsize = os.path.getsize(text), os.path.getsize(tracks_only)
    print(f"file: {text} {size / MB:.1f} MB, {len(cols)} events, {cols.n_tracks / len(cols):.1f} tracks/event "
          f"({time.perf_counter() - t0:.1f} s to make); track rows alone: {tsize / MB:.1f} MB")
    print(f"machine: {os.cpu_count()} cores, load average {start_load}; each ratio is the median over "
          f"{args.repeats} rounds of ours and the baseline run back to back\n")
    print(f"{'figure':<34} {'ours (median)':>18} {'baseline (median)':>26} {'ratio (range)':<18} target")

    # 1. text vs pyarrow.csv on the same numbers.
    events = read_events(text)
    if not np.array_equal(ak.to_numpy(ak.flatten(events.tracks.E)), cols.tracks["E"]):
        raise SystemExit("read_events does not give back the numbers written")
    del events
    times = rounds(
        args.repeats, lambda: read_events(text),
        lambda: baseline_pyarrow(tracks_only, False), lambda: baseline_pyarrow(tracks_only, True),
    )
    ours_mbs = float(np.median(size / times[:, 0])) / MB
    for k, what in ((1, "plain read_csv"), (2, "float32 columns")):
        ratio = paired_ratio(times, 0, k, size, tsize)
        line("text: read_events / pyarrow.csv", f"{ours_mbs:.0f} MB/s",
             f"{float(np.median(tsize / times[:, k])) / MB:.0f} MB/s ({what})", ratio, ">= 0.8",
             ratio[0] >= 0.8)
    cpu = LAST_CPU_TIMES
    print(f"  (by CPU time, ours / pyarrow float32: "
          f"{float(np.median((size / cpu[:, 0]) / (tsize / cpu[:, 2]))):.2f})")

    if args.text_only:
        print(f"\nload average now {load_average()} (at start {start_load})")
        return 0

    # 2. text vs a pure-Python parser (on a prefix, extrapolated as MB/s).
    prefix = prefix_file(text, workdir / "bench_prefix_bb.txt", int(args.python_mb * MB))
    psize = os.path.getsize(prefix)
    times = rounds(args.repeats, lambda: read_events(text), lambda: pure_python_read(prefix))
    py_mbs = float(np.median(psize / times[:, 1])) / MB
    ratio = paired_ratio(times, 0, 1, size, psize)
    line("text: read_events / pure Python", f"{float(np.median(size / times[:, 0])) / MB:.0f} MB/s",
         f"{py_mbs:.1f} MB/s (on {psize / MB:.0f} MB prefix)", ratio, ">= 8", ratio[0] >= 8)

    # 3. peak memory of a streaming pass, two file sizes.
    step = f"{args.chunk_mb:g} MB"
    tiny = prefix_file(text, workdir / "bench_tiny_bb.txt", 100_000)
    half = prefix_file(text, workdir / "bench_half_bb.txt", size // 2)
    for path in (half, text):
        probe = rss_probe(path, tiny, step)
        extra = (probe["peak_kb"] - probe["base_kb"]) * 1024
        budget = 2 * args.chunk_mb * MB + probe["chunk_bytes"]
        line(f"stream {os.path.getsize(path) / MB:.0f} MB: peak RSS / budget",
             f"+{extra / MB:.0f} MB", f"{budget / MB:.0f} MB (2 x {step} + arrays)",
             extra / budget, "<= 1, flat", extra <= budget)

    # 4. ROOT: read_events vs bare uproot.
    import uproot

    from flavortag.io import convert

    root = workdir / "bench_bb.root"
    start = time.perf_counter()
    convert([text], root, progress=False)
    t_convert = time.perf_counter() - start
    with uproot.open(root) as f:
        branches = [b for b in f["events"].keys() if b != "ntrack"]

    def bare() -> object:
        with uproot.open(root) as f:
            return f["events"].arrays(branches)

    times = rounds(args.repeats, lambda: read_events(root), bare)
    ratio = paired_ratio(times, 0, 1, len(cols), len(cols))
    line("ROOT: read_events / uproot arrays", f"{len(cols) / np.median(times[:, 0]) / 1e3:.0f} k events/s",
         f"{len(cols) / np.median(times[:, 1]) / 1e3:.0f} k events/s", ratio, ">= 0.8", ratio[0] >= 0.8)
    print(f"  (text -> ROOT with convert(): {size / t_convert / MB:.0f} MB/s of text, "
          f"ROOT file {os.path.getsize(root) / MB:.0f} MB)")

    # 5. padded batches, if the batching module offers them.
    bench_padding(root, args.repeats)
    print(f"\nload average now {load_average()} (at start {start_load}); "
          f"{time.perf_counter() - t0:.0f} s in all")
    return 0


def bench_padding(root: Path, repeats: int) -> None:
    """Events/s of ``flavortag.batching.pad_tracks`` to ``[B, 64, 7]``, or why it is skipped."""
    try:
        import flavortag.batching as batching
    except ImportError as err:
        print(f"padded batches: skipped (flavortag.batching not importable: {err})")
        return
    if not hasattr(batching, "pad_tracks"):
        print("padded batches: skipped (flavortag.batching has no pad_tracks)")
        return
    events = read_events(root)
    times = rounds(repeats, lambda: batching.pad_tracks(events.tracks, TRACK_FIELDS, 64))
    values, valid, _ = batching.pad_tracks(events.tracks, TRACK_FIELDS, 64)
    print(f"{'padded [B, 64, 7] (pad_tracks)':<34} {len(events) / np.median(times) / 1e3:>12.0f} k events/s"
          f"   shape {tuple(values.shape)}, {valid.mean() * 64:.1f} valid tracks/event")


if __name__ == "__main__":
    sys.exit(main())
