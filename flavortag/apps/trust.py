"""``flavortag trust``: rewrite a trusted pickle-based model file in a data-only format (argparse).

flavortag loads only data-only model files (:mod:`flavortag.safe_load`).
Checkpoints from before that rule (``bdt.pkl``, ``.pt`` files holding Python
objects) are refused; this command, run by a person who vouches for a file,
is the one place that unpickles it, once, and writes the safe copy.
"""

from __future__ import annotations

import argparse

EPILOG = """\
only run this on files whose origin you trust: reading a pickle can run any code.

examples:
  flavortag trust outputs/old_run/checkpoints/bdt.pkl      # -> bdt.skops beside it
  flavortag trust outputs/old_run/checkpoints/best.pt      # -> best.safe.pt beside it
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``flavortag trust``."""
    parser = argparse.ArgumentParser(
        prog="flavortag trust",
        description="Convert a TRUSTED pickle-based checkpoint (old bdt.pkl, old .pt) into a "
                    "data-only file that flavortag loads without running code.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", metavar="FILE", help="checkpoints to convert")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Convert each file; print the path of each safe copy."""
    from flavortag.safe_load import convert_trusted

    args = build_parser().parse_args(argv)
    for name in args.files:
        print(f"{name} -> {convert_trusted(name)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
