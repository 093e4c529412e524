"""The ``flavortag`` command: one entry point, one subcommand per app (:mod:`flavortag.apps`).

Hydra apps (``generate``, ``train``, ``evaluate``, ``predict``, ``compare``)
take ``key=value`` overrides, ``--help`` shows their config groups and
``--cfg job`` prints the composed config. ``convert`` and ``info`` are plain
argparse commands.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("flavortag.apps.generate", "make samples with Pythia 8 + a parametric detector (Hydra)"),
    "train": ("flavortag.apps.train", "train a tagger: model=mlp|bdt|deepsets|transformer (Hydra)"),
    "evaluate": ("flavortag.apps.evaluate", "metrics, plots, working points of a trained run (Hydra)"),
    "predict": ("flavortag.apps.predict", "score new files, write probabilities and discriminants (Hydra)"),
    "compare": ("flavortag.apps.compare", "compare runs side by side: table + rejection overlays (Hydra)"),
    "calibrate": ("flavortag.apps.calibrate", "fit a sample's impact-parameter resolution scale, no labels (Hydra)"),
    "robustness": ("flavortag.apps.robustness", "taggers on nominal vs shifted samples: kept fractions, ablations (Hydra)"),
    "export": ("flavortag.apps.export", "export a trained tagger to ONNX + TorchScript, working points beside"),
    "convert": ("flavortag.apps.convert", "convert event files between text, ROOT and Parquet"),
    "info": ("flavortag.apps.info", "summarise event files (counts, multiplicity, classes)"),
}

USAGE = """usage: flavortag <command> [args...]

Flavour tagging (uds / cc / bb) of e+e- -> Z/gamma* -> q qbar events.

commands:
{commands}

Hydra commands take overrides, e.g.
  flavortag generate n_events=2000 flavours=[bb,cc] out=samples/test
  flavortag train model=transformer trainer.max_epochs=10
  flavortag train -m model=mlp,bdt,deepsets,transformer
  flavortag evaluate run_id=<mlflow run id>
Run `flavortag <command> --help` for the options of one command.
"""


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [f"  {name:<{width}}  {desc}" for name, (_, desc) in COMMANDS.items()]
    return USAGE.format(commands="\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``flavortag <command> ...`` to the command's module."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if args[0] in ("-V", "--version"):
        from flavortag import __version__

        print(f"flavortag {__version__}")
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"flavortag: unknown command {command!r}\n", file=sys.stderr)
        print(_usage(), file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    if command in ("convert", "info", "export"):
        return int(module.main(rest) or 0)
    # Hydra reads sys.argv itself; the program name shows in its --help.
    sys.argv = [f"flavortag {command}", *rest]
    module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
