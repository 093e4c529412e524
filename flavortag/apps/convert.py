"""``flavortag convert``: convert event files between text, ROOT and Parquet, and from EDM4hep (argparse)."""

from __future__ import annotations

import argparse
import logging
import sys

from flavortag.classes import UnknownClassError
from flavortag.io.api import UnknownFormatError
from flavortag.io.errors import EventFormatError, ReadReport

#: The option of this command that sets what each ``convert()`` argument sets.
CLI_OPTIONS: dict[str, str] = {"format": "--from ", "output_format": "--to "}

EPILOG = """\
formats come from the suffixes: .txt .dat .txt.gz .gz (text), .root, .parquet .pq;
a .root file of EDM4hep collections is read as EDM4hep (docs/FORMAT.md)
the class of a text file comes from --label, else from its name (bb.txt -> bb)

examples:
  flavortag convert bb.txt.gz cc.txt.gz uds.txt.gz zpole.parquet
  flavortag convert sample.txt sample.root --label cc
  flavortag convert bad_bb.txt bb.parquet --on-error skip
  flavortag convert run_*.root all.parquet --step-size 64MB
  flavortag convert events.parquet bb.txt.gz
  flavortag convert mc_b_sample.dat b.root --label-rule '_b_=bb'
  flavortag convert zh_edm4hep.root zh_jets.parquet --level jet

exit status: 0 converted (with --on-error skip, also when events were dropped:
the summary on stderr says how many and why); 1 bad input or other error,
and then no output file is written; 2 bad usage.
"""


def _rule(text: str) -> tuple[str, str]:
    pattern, sep, cls = text.rpartition("=")
    if not sep or not pattern or not cls:
        raise argparse.ArgumentTypeError(f"expected REGEX=CLASS, got {text!r}")
    return pattern, cls


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``flavortag convert``."""
    parser = argparse.ArgumentParser(
        prog="flavortag convert",
        description="Convert event files between text (docs/FORMAT.md), ROOT and Parquet.\n"
        "Streams in chunks (bounded memory); the output appears only when complete.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="IN", help="input files (any mix of formats)")
    parser.add_argument("output", metavar="OUT", help="output file")
    parser.add_argument("--label", help="class of the text inputs (uds, cc, bb, or 0/1/2; 'unknown' -> -1)")
    parser.add_argument("--label-rule", action="append", type=_rule, metavar="REGEX=CLASS",
                        help="file-name rule for the class of text inputs (repeatable; first match wins; "
                             "replaces the default rules)")
    parser.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                        help="bad input: stop with an error (default) or skip broken events")
    parser.add_argument("--from", dest="in_format", choices=("text", "root", "parquet", "edm4hep"),
                        help="input format (default: from each suffix)")
    parser.add_argument("--to", dest="out_format", choices=("text", "root", "parquet"),
                        help="output format (default: from the suffix of OUT)")
    parser.add_argument("--level", choices=("event", "jet"), default=None,
                        help="EDM4hep inputs: one record per event (default) or per jet of the Jet collection")
    parser.add_argument("--bz", type=float, default=None, metavar="TESLA",
                        help="EDM4hep inputs: the field when a file has no magFieldBz")
    parser.add_argument("--neutrals-in-axis", action="store_true",
                        help="EDM4hep inputs: thrust axis of tracks and neutral particles")
    parser.add_argument("--tree", default="events", help="TTree name in ROOT files (default: events)")
    parser.add_argument("--step-size", default="16 MB",
                        help="chunk size: bytes like 16MB, or a number of events (default: 16 MB)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``flavortag convert``; returns the exit status."""
    from flavortag.io.convert import convert

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.WARNING,
                        format="flavortag convert: %(levelname)s: %(message)s")
    step: int | str = int(args.step_size) if args.step_size.isdigit() else args.step_size
    report = ReadReport()
    try:
        convert(
            args.inputs, args.output, label=args.label,
            label_rules=dict(args.label_rule) if args.label_rule else None,
            on_error=args.on_error, format=args.in_format, output_format=args.out_format,
            tree=args.tree, step_size=step, progress=False if args.no_progress or args.quiet else None,
            report=report, level=args.level,
            edm4hep={"bz_tesla": args.bz, "neutrals_in_axis": args.neutrals_in_axis},
        )
    except UnknownFormatError as err:  # the fix in the options typed here, not convert()'s arguments
        print(f"flavortag convert: error: {err.describe(CLI_OPTIONS[err.option])}; nothing written",
              file=sys.stderr)
        return 2
    except UnknownClassError as err:
        print(f"flavortag convert: error: {err.describe('--label CLASS', '--label-rule REGEX=CLASS')}; "
              "nothing written", file=sys.stderr)
        return 2
    except (EventFormatError, ValueError, FileNotFoundError, OSError) as err:
        print(f"flavortag convert: error: {err}; nothing written", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"flavortag convert: {args.output}: {report.summary()}", file=sys.stderr)
        for example in report.examples[:5]:
            print(f"  dropped: {example}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
