"""``flavortag info FILE...``: a quick summary of event files.

Prints, per file and per class: events, mean charged multiplicity, mean
energy sum, and the fraction of tracks with a transverse impact parameter
above 0.1 mm. Needs only the readers (no torch). For a jet file (``flavortag generate
level=jet``) the classes are light, c, b, g, and a second table gives, per
forced decay, the fraction of jets whose label differs from it.

EDM4hep files (``flavortag.io.edm4hep``) get a line naming their layout and
the collections read; ``--level jet`` summarises their jets instead of their
events, ``--bz`` gives the field of a file without ``magFieldBz``.

It also warns, with file and event index, about events implausible as one
event, such as two events merged by a missing ``Axis`` line (the format cannot
tell): more than :data:`MULTIPLICITY_FACTOR` times the file's median number of
tracks, or a visible (track) energy above sqrt(s). sqrt(s) comes from
``--sqrt-s``, else from ``generation.yaml`` beside the file (written by
``flavortag generate``), else :data:`DEFAULT_SQRT_S_GEV` (the Z pole). EDM4hep
files are not checked so: their events cannot merge.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from flavortag.classes import JET_CLASS_NAMES, LABEL_NAMES
from flavortag.features import TrackQuantities
from flavortag.ragged import event_index


def summarise(events: ak.Array) -> list[dict[str, Any]]:
    """Per-class summary rows: class, events, mean tracks, mean sum E [GeV], |d0| > 0.1 mm fraction."""
    labels = np.asarray(events["label"])
    tracks = events["tracks"]
    n_tracks = np.asarray(ak.num(tracks, axis=1))
    e_sum = np.asarray(ak.sum(tracks["E"], axis=1))
    d0 = TrackQuantities(events).d0  # mm, docs/FORMAT.md's straight-line formula
    track_label = labels[event_index(n_tracks)]
    rows = []
    names = JET_CLASS_NAMES if is_jet_file(events) else LABEL_NAMES
    for cls, name in enumerate(names):
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


def is_jet_file(events: ak.Array) -> bool:
    """True for jet records (``flavortag generate level=jet`` and EDM4hep jets carry ``jet_E``)."""
    return "decay_class" in ak.fields(events) or "jet_E" in ak.fields(events)


def label_mismatch(events: ak.Array) -> list[dict[str, Any]]:
    """Per forced decay of a jet file: jets, and the fraction whose label differs from the decay."""
    decay = np.asarray(events["decay_class"])
    labels = np.asarray(events["label"])
    rows = []
    for code in np.unique(decay):
        sel = decay == code
        rows.append({"decay": LABEL_NAMES[int(code)] if 0 <= code < len(LABEL_NAMES) else str(code),
                     "jets": int(sel.sum()), "fraction_differs": float(np.mean(labels[sel] != code)),
                     "labels": {JET_CLASS_NAMES[k]: int(n) for k, n in
                                enumerate(np.bincount(labels[sel][labels[sel] >= 0], minlength=5)) if n}})
    return rows


#: An event with more tracks than this times the file's median is flagged.
MULTIPLICITY_FACTOR: float = 3.0
#: sqrt(s) assumed for a file without generation metadata (GeV): the Z pole.
DEFAULT_SQRT_S_GEV: float = 91.188
#: Warnings printed per file (the rest are counted).
MAX_WARNINGS_PER_FILE: int = 10


def file_sqrt_s(path: str | Path) -> float | None:
    """sqrt(s) in GeV from the ``generation.yaml`` beside ``path`` (``config.sqrt_s``), or None."""
    meta = Path(path).parent / "generation.yaml"
    if not meta.is_file():
        return None
    import yaml

    try:
        content = yaml.safe_load(meta.read_text())
        return float(content["config"]["sqrt_s"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return None


def implausible_events(events: ak.Array, sqrt_s_gev: float) -> list[tuple[int, str]]:
    """``(event index, why)`` for events implausible as one event (see the module docstring)."""
    n_tracks = np.asarray(ak.num(events["tracks"], axis=1))
    e_sum = np.asarray(ak.sum(events["tracks"]["E"], axis=1), dtype=np.float64)
    if not len(n_tracks):
        return []
    median = float(np.median(n_tracks))
    flagged: list[tuple[int, str]] = []
    too_many = n_tracks > MULTIPLICITY_FACTOR * median if median > 0 else np.zeros(len(n_tracks), bool)
    too_much = e_sum > sqrt_s_gev
    for index in np.flatnonzero(too_many | too_much):
        why = []
        if too_many[index]:
            why.append(f"{int(n_tracks[index])} tracks, more than {MULTIPLICITY_FACTOR:g} x the "
                       f"median multiplicity {median:g} of the file")
        if too_much[index]:
            why.append(f"visible energy {e_sum[index]:.1f} GeV above sqrt(s) = {sqrt_s_gev:g} GeV")
        flagged.append((int(index), "; ".join(why) + ": two events merged (a missing Axis line)?"))
    return flagged


def _warn_implausible(paths: list[Path], label: str | None, sqrt_s: float | None) -> None:
    from flavortag.io import read_events

    for path in paths:
        energy = sqrt_s if sqrt_s is not None else file_sqrt_s(path)
        source = "--sqrt-s" if sqrt_s is not None else ("generation.yaml" if energy is not None else "default")
        energy = DEFAULT_SQRT_S_GEV if energy is None else energy
        flagged = implausible_events(read_events(path, label=label), energy)
        for index, why in flagged[:MAX_WARNINGS_PER_FILE]:
            print(f"flavortag info: warning: {path}: event {index}: {why}", file=sys.stderr)
        if len(flagged) > MAX_WARNINGS_PER_FILE:
            print(f"flavortag info: warning: {path}: {len(flagged) - MAX_WARNINGS_PER_FILE} more "
                  "implausible events", file=sys.stderr)
        if flagged:
            print(f"flavortag info: {path}: {len(flagged)} implausible event(s) "
                  f"(sqrt(s) = {energy:g} GeV from {source})", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``flavortag info``."""
    parser = argparse.ArgumentParser(
        prog="flavortag info",
        description="Summarise event files (text, ROOT, Parquet or EDM4hep) per class.",
        epilog="example: flavortag info data/zpole_ild/*.parquet",
    )
    parser.add_argument("paths", nargs="+", help="event files")
    parser.add_argument("--label", default=None, help="class of text files (uds, cc, bb) if not in the name")
    parser.add_argument("--level", choices=("event", "jet"), default=None,
                        help="EDM4hep files: summarise events (default) or the jets of their Jet collection")
    parser.add_argument("--bz", type=float, default=None, metavar="TESLA",
                        help="EDM4hep files: the field when a file has no magFieldBz")
    parser.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                        help="bad input: stop with an error (default) or skip broken events and say so")
    parser.add_argument("--sqrt-s", type=float, default=None, metavar="GEV",
                        help="centre-of-mass energy for the visible-energy check (default: from "
                             f"generation.yaml beside the file, else {DEFAULT_SQRT_S_GEV} GeV)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    from flavortag.io import EventFormatError, ReadReport, read_events
    from flavortag.io.api import expand_paths, input_format
    from flavortag.io.edm4hep import describe_edm4hep

    report = ReadReport()
    try:
        paths = expand_paths(args.paths)  # a quoted glob names several files
        edm4hep = [p for p in paths if input_format(p) == "edm4hep"]
        options = {"bz_tesla": args.bz}
        for path in edm4hep:
            print(f"{path}: {describe_edm4hep(path)}")
        events = read_events(paths, label=args.label, level=args.level, edm4hep=options,
                             on_error=args.on_error, report=report)
        if not is_jet_file(events):  # a jet is not an event: the merged-event checks do not apply
            _warn_implausible([p for p in paths if p not in edm4hep], args.label, args.sqrt_s)
    except (EventFormatError, OSError, ValueError) as err:
        from flavortag.cli import describe_error  # the hints spelt as this command's options

        print(f"flavortag info: {describe_error(err, 'info')}", file=sys.stderr)
        return 1
    if not report.ok:
        print(f"flavortag info: {report.summary()}", file=sys.stderr)
        for example in report.examples[:5]:
            print(f"  dropped: {example}", file=sys.stderr)
    what = "jets" if is_jet_file(events) else "events"
    print(f"{len(events)} {what} in {len(paths)} file(s)")
    print(f"{'class':>6} {'events':>8} {'<tracks>':>9} {'<sum E>/GeV':>12} {'|d0|>0.1mm':>11}")
    for row in summarise(events):
        print(f"{row['class']:>6} {row['events']:>8d} {row['mean_tracks']:>9.2f} "
              f"{row['mean_sum_e_gev']:>12.2f} {row['frac_abs_d0_gt_0p1mm']:>11.4f}")
    if "decay_class" in ak.fields(events):  # generated jets: the label against the forced decay
        rows = label_mismatch(events)
        print("jets: label from the heaviest hadron among the constituents' ancestors vs the forced decay")
        print(f"{'decay':>6} {'jets':>8} {'label differs':>14}  labels")
        for row in rows:
            labels = ", ".join(f"{k}={v}" for k, v in row["labels"].items())
            print(f"{row['decay']:>6} {row['jets']:>8d} {row['fraction_differs']:>14.4f}  {labels}")
        total = sum(r["jets"] for r in rows)
        differs = sum(r["jets"] * r["fraction_differs"] for r in rows) / max(total, 1)
        print(f"{'all':>6} {total:>8d} {differs:>14.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
