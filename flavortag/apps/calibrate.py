"""``flavortag calibrate``: fit a sample's impact-parameter resolution scale, without labels (Hydra).

    flavortag calibrate inputs=[data/run1.root,data/run2.root] out=calib/run1.json
    flavortag evaluate run_id=<id> data=zpole_worse_ip split=all calibration=calib/run1.json
    flavortag predict run_id=<id> inputs=[data/run1.root] calibration=calib/run1.json

Config ``configs/calibrate.yaml``; the work is :func:`flavortag.pipelines.calibrate.calibrate`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from flavortag.apps import CONFIG_DIR, plain
from flavortag.apps.schema import check_config
from flavortag.calibration import Calibration
from flavortag.errors import reported


def calibrate(cfg: DictConfig) -> Calibration:
    """Parse a composed calibrate config, fit and write the calibration."""
    from flavortag.pipelines import calibrate as pipeline  # (here, so that --help needs no torch)

    return pipeline.calibrate(pipeline.CalibrateSettings.from_config(plain(cfg)))


@hydra.main(config_path=CONFIG_DIR, config_name="calibrate", version_base="1.3")
@reported
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``flavortag calibrate``."""
    check_config(cfg, "calibrate")  # before any data is read or any run opened
    calibrate(cfg)


if __name__ == "__main__":
    main()
