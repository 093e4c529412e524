"""The export pipeline: a trained tagger as ONNX and TorchScript files, working points beside.

Writes into OUT_DIR:

* ``tagger.onnx`` (dynamic batch and track axes; inputs in the padded layout; a
  BDT: its trees through skl2onnx, input ``event_features``),
* ``tagger_raw.onnx`` (format ``raw``): the raw-input tagger, whose inputs are the
  event itself (axis, tracks' E, px, py, pz, x, y, z, validity mask, optional
  measured uncertainties and calibration scale) and whose graph computes the
  features (docs/ONNX.md; a BDT: its event features, then its trees),
* ``tagger.torchscript.pt`` (torch taggers only),
* ``working_points.json`` (from the MLflow run, when exporting a run),
* ``tagger.json``: class order, feature lists, detector model and max_tracks,
  i.e. what an analysis needs to build the inputs (``flavortag.Tagger.load(OUT_DIR)``
  scores with it), and the result of the check below.

The ONNX file is checked as part of the export: onnxruntime and torch (a BDT:
scikit-learn) score
the same real events (``--check-events``; by default the first
``--check-n`` events of the run's training files, else of the embedded
sample) through :class:`flavortag.Tagger`, and the export fails (exit 1)
if a class probability differs by more than ``--check-tolerance``; the
raw-input file is checked the same way against the tagger fed by the Python
feature code.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flavortag.schema.groups import DEFAULT_TRACKING_URI
from flavortag.scoring.tagger import EXPORTED_INFO, EXPORTED_ONNX
from flavortag.scoring.tagger import EXPORTED_RAW_ONNX as RAW_ONNX

#: The formats ``flavortag export`` writes.
FORMATS: frozenset[str] = frozenset({"onnx", "raw", "torchscript"})


@dataclass(frozen=True)
class ExportSettings:
    """What to export, where, and how the ONNX files are checked (``flavortag export --help``)."""

    source: str
    out_dir: Path
    formats: frozenset[str] = FORMATS
    tracking_uri: str = DEFAULT_TRACKING_URI
    check_events: tuple[str, ...] = ()
    check_n: int = 1000
    check_tolerance: float = 1e-4


def export(args: ExportSettings) -> int:
    """Export ``args.source`` into ``args.out_dir`` and check it (see the module doc); returns the exit status."""
    from flavortag import tracking
    from flavortag.errors import UsageError
    from flavortag.export import (
        bdt_config,
        class_names,
        export_bdt_onnx,
        export_onnx,
        export_torchscript,
    )
    from flavortag.export_raw import export_raw_bdt_onnx, export_raw_onnx
    from flavortag.scoring.inference import input_shape, is_torch_model, load_model

    is_run = not Path(args.source).exists()
    if is_run:
        tracking.set_tracking_uri(args.tracking_uri)
    formats = set(args.formats)
    model = load_model(args.source)
    is_torch = is_torch_model(model)
    if not is_torch:
        if not formats & {"onnx", "raw"}:
            raise UsageError("a BDT exports to ONNX only (TorchScript is for torch taggers): "
                             "give --formats onnx (or raw)")
        if "torchscript" in formats:
            print("flavortag export: a BDT has no TorchScript form; writing ONNX only", file=sys.stderr)
        formats -= {"torchscript"}
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if is_torch:
        model = model.to("cpu").eval()
        if "onnx" in formats:
            written.append(export_onnx(model, out / EXPORTED_ONNX))
        if "raw" in formats:
            written.append(export_raw_onnx(model, out / RAW_ONNX))
        if "torchscript" in formats:
            written.append(export_torchscript(model, out / "tagger.torchscript.pt"))
    else:
        if "onnx" in formats:
            written.append(export_bdt_onnx(model, out / EXPORTED_ONNX))
        if "raw" in formats:
            written.append(export_raw_bdt_onnx(model, out / RAW_ONNX))
    info = {
        "class_names": class_names(model),
        "model": dict(model.config) if is_torch else bdt_config(model),
        "feature_names": model.feature_names,
        "detector": getattr(model, "detector", None),
        "max_tracks": getattr(model, "max_tracks", None),
        "sort_by": input_shape(model)[1],
        "training_resolution": getattr(model, "training_resolution", None),
        "inputs": list(model.export_inputs) if is_torch else ["event_features"],
        "raw_onnx": RAW_ONNX if "raw" in formats else None,
        "source": args.source,
    }
    (out / EXPORTED_INFO).write_text(json.dumps(info, indent=2))
    written.append(out / EXPORTED_INFO)
    reference = "torch" if is_torch else "scikit-learn"
    checks = [(name, f) for name, f in (("onnx_check", "onnx"), ("raw_onnx_check", "raw")) if f in formats]
    for key, fmt in checks:
        check_fn = check_onnx if fmt == "onnx" else check_raw_onnx
        check = check_fn(model, out, check_paths(args, is_run), args.check_n)
        what = "onnxruntime" if fmt == "onnx" else f"onnxruntime on {RAW_ONNX}"
        if check is None:
            print(f"flavortag export: no events found to check {what} against {reference}: "
                  "give --check-events FILE", file=sys.stderr)
            continue
        info[key] = check
        (out / EXPORTED_INFO).write_text(json.dumps(info, indent=2))
        target = out / (EXPORTED_ONNX if fmt == "onnx" else RAW_ONNX)
        if not check["max_abs_diff"] <= args.check_tolerance:
            print(f"flavortag export: error: {what} and {reference} disagree on {check['n_events']} events "
                  f"of {check['events'][0]}: max |delta p| = {check['max_abs_diff']:.3g} > "
                  f"{args.check_tolerance:g}; do not use {target}", file=sys.stderr)
            return 1
        print(f"flavortag export: {what} agrees with {reference} on {check['n_events']} events "
              f"(max |delta p| = {check['max_abs_diff']:.2g})", file=sys.stderr)
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


def check_paths(args: ExportSettings, is_run: bool) -> list[str]:
    """The event files of the ORT check: given, the run's training files, or the embedded sample."""
    from flavortag import tracking
    from flavortag.dataset import DataSettings, resolve_path, resolve_paths

    if args.check_events:
        return list(args.check_events)
    candidates: list[str] = []
    if is_run:
        run_id = args.source.removeprefix("runs:/").split("/", 1)[0]
        try:
            candidates = list(DataSettings.of_run(tracking.load_run_config(run_id)).paths)
        except Exception:  # noqa: BLE001 - a run without a config: fall back to the embedded sample
            candidates = []
    found: list[str] = []
    for pattern in candidates:  # a file or a glob pattern
        try:
            found += [str(p) for p in resolve_paths([pattern])]
        except (OSError, ValueError):
            continue
    if found:
        return found
    embedded = [f"data/zpole_ild/{name}.parquet" for name in ("uds", "cc", "bb")]
    return [str(resolve_path(p)) for p in embedded if resolve_path(p).is_file()]


def _check_sample(paths: list[str], n_events: int) -> Any:
    """The first ``n_events`` events of ``paths`` (labels not read), or None."""
    from flavortag.io import iter_events

    if not paths:
        return None
    events = next(iter_events(paths, step_size=max(n_events, 1), label="unknown"), None)
    return None if events is None or len(events) == 0 else events


def check_onnx(model: Any, out: Path, paths: list[str], n_events: int) -> dict[str, Any] | None:
    """Score up to ``n_events`` of ``paths`` with torch and with onnxruntime (the files in ``out``).

    Returns ``{"events", "n_events", "max_abs_diff"}`` (largest difference of a
    class probability), or None when there are no events to check on.
    """
    import numpy as np

    from flavortag.scoring.tagger import Tagger

    events = _check_sample(paths, n_events)
    if events is None:
        return None
    torch_probs = Tagger.from_model(model, device="cpu").predict_proba(events)
    onnx_probs = Tagger.from_exported(out, device="cpu").predict_proba(events)
    return {"events": paths, "n_events": len(events),
            "max_abs_diff": float(np.max(np.abs(torch_probs - onnx_probs)))}


def check_raw_onnx(model: Any, out: Path, paths: list[str], n_events: int) -> dict[str, Any] | None:
    """As :func:`check_onnx` for ``tagger_raw.onnx``: its probabilities from the raw tracks
    against the tagger fed by the Python feature code (:meth:`flavortag.Tagger.predict_proba`)."""
    import numpy as np
    import onnxruntime as ort

    from flavortag.batching import raw_inputs
    from flavortag.scoring.tagger import Tagger

    events = _check_sample(paths, n_events)
    if events is None:
        return None
    reference = Tagger.from_model(model, device="cpu").predict_proba(events)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(out / RAW_ONNX), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    inputs = raw_inputs(events, particle_flow="particle" in names)  # neutrals as slots of their own
    (probs,) = session.run(["probabilities"], {name: inputs[name] for name in names})
    return {"events": paths, "n_events": len(events),
            "max_abs_diff": float(np.max(np.abs(reference - np.asarray(probs, dtype=np.float64))))}
