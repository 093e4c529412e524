"""``flavortag calibrate``: fit a sample's impact-parameter resolution scale, without labels.

    flavortag calibrate inputs=[data/run1.root,data/run2.root] out=calib/run1.json
    flavortag evaluate run_id=<id> data=zpole_worse_ip split=all calibration=calib/run1.json
    flavortag predict run_id=<id> inputs=[data/run1.root] calibration=calib/run1.json

Writes the calibration file (JSON; ``flavortag.calibration``) and prints the
fitted d0 / z0 scales with their uncertainties and the momentum dependence.
The labels of the inputs are never read.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from flavortag.apps import CONFIG_DIR
from flavortag.apps.schema import check_config
from flavortag.calibration import Calibration, calibrate_resolution
from flavortag.calibration_function import fit_function_calibration
from flavortag.detector import DetectorModel
from flavortag.errors import reported

log = logging.getLogger("flavortag.calibrate")


def calibrate(cfg: DictConfig) -> Calibration:
    """Read ``cfg.inputs``, fit, write ``cfg.out``; log the scales to MLflow if ``cfg.log_to_mlflow``."""
    from flavortag.io import read_events
    from flavortag.io.api import expand_paths
    from flavortag.io.errors import check_on_error

    inputs = [str(p) for p in (cfg.inputs or [])]
    if not inputs:
        raise ValueError("give the files to calibrate: inputs=[<file>,...]")
    paths = [str(p) for p in expand_paths(inputs)]
    events = read_events(paths, on_error=check_on_error(str(cfg.get("on_error", "raise"))))
    detector = DetectorModel.from_config(OmegaConf.to_container(cfg.detector, resolve=True))  # type: ignore[arg-type]
    calib: Calibration
    if str(cfg.get("mode", "function")) == "function":
        fitted = fit_function_calibration(events, detector, inputs=paths)
        calib = fitted.relative_to(None, detector)  # refuses an implausible fit before writing it
        out = fitted.save(str(cfg.out))
        print(fitted.summary())
        print(f"core width x {calib.d0_scale:.3f} (d0), x {calib.z0_scale:.3f} (z0) of detector {detector.name}'s "
              f"at p sin^3/2(theta) = {calib.median_x_gev:.2f} GeV")
    else:
        calib = _scale_calibration(events, detector, paths, str(cfg.out))
        out = Path(str(cfg.out))
    print(f"wrote {out}")
    if cfg.get("log_to_mlflow", False):
        from flavortag import tracking

        with tracking.start_run(cfg.tracking, run_name=f"calibrate-{Path(str(cfg.out)).stem}",
                                tags={tracking.Tag.KIND: "calibration"}):
            tracking.log_calibration(calib, out)
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


@hydra.main(config_path=CONFIG_DIR, config_name="calibrate", version_base="1.3")
@reported
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``flavortag calibrate``."""
    check_config(cfg, "calibrate")  # before any data is read or any run opened
    calibrate(cfg)


if __name__ == "__main__":
    main()
