"""Benchmark: features + padding into [B, max_tracks, F] batches, and loader iteration speed.

Makes ~100k synthetic events (~20 tracks each, contract layout), then times

1. per-track features (``track_features``, default list);
2. padding them to ``[n, max_tracks, F]`` sorted by energy: flat numpy scatter
   (``pad_tracks(method="flat")``) against awkward argsort / pad_none / fill_none
   (``method="awkward"``), with the ratio measured in the same run;
3. the whole ``build_event_tensors`` (track + event features, padding, vectors);
4. iterating ``make_loader`` (one gather per batch; padded trimmed / untrimmed,
   ragged) against a plain per-event ``DataLoader`` + ``collate_padded``.

Prints events/s for each. Usage::

    python scripts/bench_batching.py [--n-events 100000] [--mean-tracks 20] [--max-tracks 64]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import awkward as ak
import numpy as np
import torch
from timing import best_time
from torch.utils.data import DataLoader

from flavortag.batching import (
    EventDataset,
    build_event_tensors,
    collate_padded,
    make_loader,
    pad_tracks,
)
from flavortag.features import TRACK_FEATURES, track_features

FIELDS = ("E", "px", "py", "pz", "x", "y", "z")


def synthetic_events(n: int, mean_tracks: float, seed: int = 0) -> ak.Array:
    """Random events in the contract layout (Poisson multiplicity, Gaussian momenta/positions)."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(mean_tracks, n)
    total = int(counts.sum())
    p = rng.normal(size=(total, 3)) * rng.exponential(2.0, size=(total, 1))
    e = np.sqrt((p**2).sum(1) + 0.13957**2)
    pos = rng.normal(size=(total, 3)) * 0.02
    cols = [e, p[:, 0], p[:, 1], p[:, 2], pos[:, 0], pos[:, 1], pos[:, 2]]
    tracks = ak.zip({f: c.astype(np.float32) for f, c in zip(FIELDS, cols)})
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    return ak.zip({"axis": ak.to_regular(ak.Array(axis.astype(np.float32)), axis=1),
                   "tracks": ak.unflatten(tracks, counts),
                   "label": rng.integers(0, 3, n).astype(np.int32)}, depth_limit=1)


def iterate(loader: Any) -> int:
    """Consume a loader, touching every batch; returns the number of events."""
    n = 0
    for batch in loader:
        n += len(batch)
    return n


def main() -> None:
    """Run the benchmark and print events/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-events", type=int, default=100_000)
    parser.add_argument("--mean-tracks", type=float, default=20.0)
    parser.add_argument("--max-tracks", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (numpy is single-threaded)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    n = args.n_events
    t0 = time.perf_counter()
    events = synthetic_events(n, args.mean_tracks)
    n_tracks = int(ak.sum(ak.num(events.tracks)))
    print(f"{n} events, {n_tracks} tracks ({n_tracks / n:.1f}/event), "
          f"{len(TRACK_FEATURES)} track features, max_tracks={args.max_tracks} "
          f"(made in {time.perf_counter() - t0:.1f} s)")

    rows: list[tuple[str, float]] = []
    t_feat, tf = best_time(lambda: track_features(events), args.repeat)
    rows.append(("track_features (16 features)", t_feat))
    names = list(TRACK_FEATURES)
    key = events.tracks.E
    t_flat, padded = best_time(lambda: pad_tracks(tf, names, args.max_tracks, sort_values=key),
                               args.repeat)
    rows.append(("pad_tracks flat numpy scatter", t_flat))
    t_awk, padded_awk = best_time(
        lambda: pad_tracks(tf, names, args.max_tracks, sort_values=key, method="awkward"),
        args.repeat)
    rows.append(("pad_tracks awkward pad_none/fill_none", t_awk))
    assert np.array_equal(padded[0], padded_awk[0]) and np.array_equal(padded[1], padded_awk[1])
    rows.append(("features + flat padding", t_feat + t_flat))
    rows.append(("features + awkward padding", t_feat + t_awk))
    t_build, tensors = best_time(lambda: build_event_tensors(events, max_tracks=args.max_tracks),
                                 args.repeat)
    rows.append(("build_event_tensors (+ event features, vectors)", t_build))

    print(f"\n{'building padded arrays':52s} {'seconds':>8s} {'events/s':>12s}")
    for label, seconds in rows:
        print(f"{label:52s} {seconds:8.3f} {n / seconds:12,.0f}")
    print(f"ratio awkward / flat padding time: {t_awk / t_flat:.2f}")
    print(f"tracks truncated: {padded[2]}")

    bs = args.batch_size
    loaders = [
        ("make_loader padded, trimmed", make_loader(tensors, bs, shuffle=True)),
        ("make_loader padded, untrimmed", make_loader(tensors, bs, shuffle=True, trim=False)),
        ("make_loader ragged", make_loader(tensors, bs, shuffle=True, layout="ragged")),
        ("per-event DataLoader + collate_padded (baseline)",
         DataLoader(EventDataset(tensors), batch_size=bs, shuffle=True, collate_fn=collate_padded)),
    ]
    print(f"\n{'iterating loaders, batch ' + str(bs):52s} {'seconds':>8s} {'events/s':>12s}")
    times = {}
    for label, loader in loaders:
        reps = 1 if "baseline" in label else args.repeat
        seconds, count = best_time(lambda loader=loader: iterate(loader), reps)
        assert count == n
        times[label] = seconds
        print(f"{label:52s} {seconds:8.3f} {n / seconds:12,.0f}")
    base = times["per-event DataLoader + collate_padded (baseline)"]
    print(f"speed-up of the batched gather over per-event collate: "
          f"{base / times['make_loader padded, trimmed']:.1f}x")


if __name__ == "__main__":
    main()
