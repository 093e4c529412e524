"""``flavortag generate``: the Hydra app that writes Pythia 8 samples (:mod:`flavortag.pipelines.generate`).

    flavortag generate n_events=3000 out=data/zpole_ild
    flavortag generate n_events=500 flavours=[bb] sqrt_s=250 detector=perfect format=root
    flavortag generate process=zh sqrt_s=250 level=jet flavours=[bb,cc,gg,uds] out=samples/zh_jets
    python -m flavortag.generate n_events=100 workers=1 out=/tmp/test
    flavortag generate -m shard=0,1,2,3 n_shards=4 hydra/launcher=slurm   # 4 SLURM jobs, one shard each

Config: ``configs/generate.yaml`` plus the ``detector`` group. The app does not
change directory and writes nothing but its outputs (``hydra.run.dir: .``,
``hydra.output_subdir: null``, logging to stdout only): the event files
``out/<class>.<ext>`` and ``out/generation.yaml`` (the resolved config, the
package versions, the counts and the wall time). With ``n_shards=N`` the job
writes shard ``shard`` of the sample (:mod:`flavortag.generate.production`):
``out/<class>-<shard>-of-<N>.<ext>`` and ``out/generation-<shard>-of-<N>.yaml``.
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

from flavortag.apps import CONFIG_DIR, plain
from flavortag.apps.schema import check_config
from flavortag.errors import reported


def run(cfg: DictConfig) -> dict[str, Any]:
    """Parse a composed generate config, produce the samples; returns the content of ``generation.yaml``."""
    from flavortag.pipelines import generate as pipeline  # (here, so that --help needs no torch)

    return pipeline.generate(pipeline.GenerateSettings.from_config(plain(cfg)))


@hydra.main(config_path=CONFIG_DIR, config_name="generate", version_base="1.3")
@reported
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``flavortag generate`` (see the module doc)."""
    check_config(cfg, "generate")  # before any data is read or any run opened
    run(cfg)


if __name__ == "__main__":
    main()
