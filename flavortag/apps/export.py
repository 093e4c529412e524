"""``flavortag export``: a trained tagger as ONNX and TorchScript files, working points beside.

Writes into OUT_DIR:

* ``tagger.onnx`` (dynamic batch and track axes; inputs in the padded layout),
* ``tagger.torchscript.pt``,
* ``working_points.json`` (from the MLflow run, when exporting a run),
* ``tagger.json``: class order, feature lists, detector model and max_tracks,
  i.e. what an analysis needs to build the inputs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EPILOG = """examples:
  flavortag export 3f2c0d... exported/transformer           # an MLflow run id (./mlflow.db)
  flavortag export outputs/train/.../checkpoints/best.pt exported/ds --formats onnx
"""


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="flavortag export", description=__doc__, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="MLflow run id, runs:/ URI, or a trainer checkpoint (.pt)")
    parser.add_argument("out_dir", help="output directory (created)")
    parser.add_argument("--formats", default="onnx,torchscript", help="comma-separated: onnx, torchscript")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="MLflow store of the run")
    args = parser.parse_args(argv)

    from flavortag import tracking
    from flavortag.classes import CLASS_NAMES
    from flavortag.export import export_onnx, export_torchscript
    from flavortag.inference import is_torch_model, load_model

    is_run = not Path(args.source).exists()
    if is_run:
        tracking.set_tracking_uri(args.tracking_uri)
    model = load_model(args.source)
    if not is_torch_model(model):
        print("flavortag export: only torch taggers (mlp, deepsets, transformer) export to "
              "ONNX/TorchScript; a BDT is logged as an MLflow sklearn model", file=sys.stderr)
        return 2
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    formats = {f.strip() for f in args.formats.split(",") if f.strip()}
    unknown = formats - {"onnx", "torchscript"}
    if unknown:
        parser.error(f"unknown formats {sorted(unknown)}")
    model = model.to("cpu").eval()
    written = []
    if "onnx" in formats:
        written.append(export_onnx(model, out / "tagger.onnx"))
    if "torchscript" in formats:
        written.append(export_torchscript(model, out / "tagger.torchscript.pt"))
    info = {
        "class_names": list(CLASS_NAMES),
        "model": dict(model.config),
        "feature_names": model.feature_names,
        "detector": getattr(model, "detector", None),
        "max_tracks": getattr(model, "max_tracks", None),
        "inputs": list(model.export_inputs),
        "source": args.source,
    }
    (out / "tagger.json").write_text(json.dumps(info, indent=2))
    written.append(out / "tagger.json")
    if is_run:
        uri = args.source if ":/" in args.source else f"runs:/{args.source}"
        try:
            wp = tracking.load_text(f"{uri.rsplit('/model', 1)[0]}/working_points.json")
            (out / "working_points.json").write_text(wp)
            written.append(out / "working_points.json")
        except Exception as err:  # noqa: BLE001 - a run without evaluation has none
            print(f"flavortag export: no working points in the run ({err})", file=sys.stderr)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
