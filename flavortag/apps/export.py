"""``flavortag export``: a trained tagger as ONNX and TorchScript files, working points beside (argparse).

What is written and how it is checked: :mod:`flavortag.pipelines.export`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flavortag.pipelines.export import FORMATS, ExportSettings, export
from flavortag.pipelines.export import __doc__ as EXPORT_DOC
from flavortag.schema.groups import DEFAULT_TRACKING_URI

EPILOG = """examples:
  flavortag export 3f2c0d... exported/transformer           # an MLflow run id (./mlflow.db)
  flavortag export outputs/train/.../checkpoints/best.pt exported/ds --formats onnx
  flavortag export 3f2c0d... exported/raw --formats raw    # only tagger_raw.onnx (docs/ONNX.md)
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``flavortag export``."""
    parser = argparse.ArgumentParser(
        prog="flavortag export", description=EXPORT_DOC, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="MLflow run id, runs:/ URI, or a trainer checkpoint (.pt)")
    parser.add_argument("out_dir", help="output directory (created)")
    parser.add_argument("--formats", default="onnx,raw,torchscript",
                        help="comma-separated: onnx, raw (tagger_raw.onnx), torchscript")
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI, help="MLflow store of the run")
    parser.add_argument("--check-events", action="append", metavar="FILE",
                        help="event files to check onnxruntime against torch on (default: the run's "
                             "training files, else the embedded sample)")
    parser.add_argument("--check-n", type=int, default=1000, metavar="N", help="events checked (default 1000)")
    parser.add_argument("--check-tolerance", type=float, default=1e-4, metavar="TOL",
                        help="largest accepted probability difference (default 1e-4)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    formats = frozenset(f.strip() for f in args.formats.split(",") if f.strip())
    if formats - FORMATS:
        parser.error(f"unknown formats {sorted(formats - FORMATS)}")
    return export(ExportSettings(source=args.source, out_dir=Path(args.out_dir), formats=formats,
                                 tracking_uri=args.tracking_uri, check_events=tuple(args.check_events or ()),
                                 check_n=args.check_n, check_tolerance=args.check_tolerance))


if __name__ == "__main__":
    sys.exit(main())
