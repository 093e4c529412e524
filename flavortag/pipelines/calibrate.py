"""The calibrate pipeline: fit a sample's impact-parameter resolution, without labels.

    flavortag calibrate inputs=[data/run1.root,data/run2.root] out=calib/run1.json
    flavortag evaluate run_id=<id> data=zpole_worse_ip split=all calibration=calib/run1.json
    flavortag predict run_id=<id> inputs=[data/run1.root] calibration=calib/run1.json

Writes the calibration file (JSON) and prints what was fitted: ``mode=function``
(default) the resolution functions of ``flavortag.calibration_function``
(applied relative to the tagger's training sample), ``mode=scale`` one overall
d0 / z0 scale with its uncertainty and momentum dependence (``flavortag.calibration``).
The labels of the inputs are never read.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flavortag.calibration import Calibration, calibrate_resolution
from flavortag.calibration_function import fit_function_calibration
from flavortag.detector import DetectorModel
from flavortag.schema.groups import TrackingSettings

log = logging.getLogger("flavortag.calibrate")


@dataclass(frozen=True)
class CalibrateSettings:
    """The ``calibrate`` command's settings (``configs/calibrate.yaml``)."""

    inputs: tuple[str, ...]
    out: str
    detector: DetectorModel
    tracking: TrackingSettings
    on_error: str = "raise"
    log_to_mlflow: bool = True
    #: ``function``: the resolution functions | ``scale``: one overall scale
    mode: str = "function"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CalibrateSettings:
        """Parse a resolved ``calibrate`` config (a plain mapping)."""
        return cls(inputs=tuple(str(p) for p in config.get("inputs") or ()), out=str(config["out"]),
                   detector=DetectorModel.from_config(config.get("detector")),
                   tracking=TrackingSettings.from_config(config.get("tracking")),
                   on_error=str(config.get("on_error", "raise")),
                   log_to_mlflow=bool(config.get("log_to_mlflow", False)),
                   mode=str(config.get("mode", "function")))


def calibrate(settings: CalibrateSettings) -> Calibration:
    """Read the inputs, fit, write ``out``; log the scales to MLflow if ``log_to_mlflow``."""
    from flavortag.io import read_events
    from flavortag.io.api import expand_paths
    from flavortag.io.errors import check_on_error

    inputs = list(settings.inputs)
    if not inputs:
        raise ValueError("give the files to calibrate: inputs=[<file>,...]")
    if settings.mode not in ("function", "scale"):
        raise ValueError(f"mode must be function or scale, not {settings.mode!r}")
    paths = [str(p) for p in expand_paths(inputs)]
    events = read_events(paths, on_error=check_on_error(settings.on_error))
    detector = settings.detector
    calib: Calibration
    if settings.mode == "function":
        fitted = fit_function_calibration(events, detector, inputs=paths)
        calib = fitted.relative_to(None, detector)  # refuses an implausible fit before writing it
        out = fitted.save(settings.out)
        print(fitted.summary())
        print(f"core width x {calib.d0_scale:.3f} (d0), x {calib.z0_scale:.3f} (z0) of detector {detector.name}'s "
              f"at p sin^3/2(theta) = {calib.median_x_gev:.2f} GeV")
    else:
        calib = _scale_calibration(events, detector, paths, settings.out)
        out = Path(settings.out)
    print(f"wrote {out}")
    if settings.log_to_mlflow:
        from flavortag import tracking

        with tracking.start_run(settings.tracking, run_name=f"calibrate-{Path(settings.out).stem}",
                                tags={tracking.Tag.KIND: tracking.Kind.CALIBRATION}) as run:
            run.log_calibration(calib, out)
    return calib


def _scale_calibration(events: Any, detector: DetectorModel, paths: list[str], out_path: str) -> Calibration:
    """The ``scale`` mode: fit, write, print the scales (overall and per momentum bin)."""
    calib = calibrate_resolution(events, detector, inputs=paths)
    calib.save(out_path)
    bins = calib.momentum_bins_gev
    per_bin = ", ".join(
        f"[{lo:g}, {hi:g}): {s:.3f}" if math.isfinite(s) else f"[{lo:g}, {hi:g}): -"
        for lo, hi, s in zip(bins[:-1], bins[1:], calib.d0_scale_per_bin))
    print(f"d0 resolution scale {calib.d0_scale:.4f} ± {calib.d0_scale_error:.4f}, "
          f"z0 {calib.z0_scale:.4f} ± {calib.z0_scale_error:.4f} "
          f"({calib.n_tracks_d0} tracks of {calib.n_events} events; relative to detector {detector.name})")
    print(f"d0 scale per p sin^3/2(theta) bin (GeV): {per_bin}")
    return calib
