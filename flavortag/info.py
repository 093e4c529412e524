"""``flavortag info FILE...``: a quick summary of event files.

Prints, per file and per class: events, mean charged multiplicity, mean
energy sum, and the fraction of tracks with a transverse impact parameter
above 0.1 mm. Needs only the readers (no torch).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import awkward as ak
import numpy as np

from flavortag.classes import CLASS_NAMES
from flavortag.features import TrackQuantities


def summarise(events: ak.Array) -> list[dict[str, Any]]:
    """Per-class summary rows: class, events, mean tracks, mean sum E [GeV], |d0| > 0.1 mm fraction."""
    labels = np.asarray(events["label"])
    tracks = events["tracks"]
    n_tracks = np.asarray(ak.num(tracks, axis=1))
    e_sum = np.asarray(ak.sum(tracks["E"], axis=1))
    d0 = TrackQuantities(events).d0  # mm, FORMAT.md's straight-line formula
    track_label = np.repeat(labels, n_tracks)
    rows = []
    for cls, name in enumerate(CLASS_NAMES):
        sel = labels == cls
        if not sel.any():
            continue
        tsel = track_label == cls
        rows.append({
            "class": name,
            "events": int(sel.sum()),
            "mean_tracks": float(n_tracks[sel].mean()),
            "mean_sum_e_gev": float(e_sum[sel].mean()),
            "frac_abs_d0_gt_0p1mm": float(np.mean(np.abs(d0[tsel]) > 0.1)) if tsel.any() else 0.0,
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="flavortag info",
        description="Summarise event files (text, ROOT or Parquet) per class.",
        epilog="example: flavortag info data/zpole_ild/*.parquet",
    )
    parser.add_argument("paths", nargs="+", help="event files")
    parser.add_argument("--label", default=None, help="class of text files (uds, cc, bb) if not in the name")
    args = parser.parse_args(argv)
    from flavortag.io import EventFormatError, read_events

    try:
        events = read_events(args.paths, label=args.label)
    except (EventFormatError, OSError, ValueError) as err:
        print(f"flavortag info: {err}", file=sys.stderr)
        return 1
    print(f"{len(events)} events in {len(args.paths)} file(s)")
    print(f"{'class':>6} {'events':>8} {'<tracks>':>9} {'<sum E>/GeV':>12} {'|d0|>0.1mm':>11}")
    for row in summarise(events):
        print(f"{row['class']:>6} {row['events']:>8d} {row['mean_tracks']:>9.2f} "
              f"{row['mean_sum_e_gev']:>12.2f} {row['frac_abs_d0_gt_0p1mm']:>11.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
