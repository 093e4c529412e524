"""``flavortag generate``: the Hydra app that writes Pythia 8 samples (``python -m flavortag.generate``).

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

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from flavortag.apps import CONFIG_DIR
from flavortag.apps.schema import check_config
from flavortag.errors import UsageError, reported

log = logging.getLogger(__name__)


def _flavours(value: object) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple, ListConfig)):
        return [str(v) for v in value]
    raise ValueError(f"flavours must be a list like [uds,cc,bb], not {value!r}")


def _n_jets(cfg: DictConfig) -> int | None:
    """Jets per event of ``level=jet`` (``n_jets``), None for ``level=event``; zh needs jets."""
    level = str(cfg.get("level", "event"))
    if level not in ("event", "jet"):
        raise UsageError(f"level must be event or jet, not {level!r}")
    if level == "event":
        if str(cfg.get("process", "qq")) == "zh":
            raise UsageError("process=zh makes jets (Z -> nu nu, H -> two jets): add level=jet")
        return None
    n_jets = int(cfg.get("n_jets", 2))
    if n_jets < 1:
        raise UsageError(f"n_jets must be >= 1, not {n_jets}")
    return n_jets


def run(cfg: DictConfig) -> dict:
    """Produce the samples described by ``cfg`` and write ``generation.yaml``; return its content."""
    from importlib.metadata import version

    import yaml

    from flavortag.detector import DetectorModel
    from flavortag.generate.production import check_shard, produce_samples, shard_name

    shard, n_shards = int(cfg.get("shard", 0)), int(cfg.get("n_shards", 1))
    try:
        check_shard(shard, n_shards)
    except ValueError as err:
        raise UsageError(f"{err}; e.g. `flavortag generate -m shard=0,1,2,3 n_shards=4`") from None
    from flavortag.generate.pythia_setup import pythia_settings

    detector_cfg = OmegaConf.to_container(cfg.detector, resolve=True)
    assert isinstance(detector_cfg, dict)
    detector = DetectorModel.from_config({str(k): v for k, v in detector_cfg.items()})
    result = produce_samples(
        cfg.out,
        int(cfg.n_events),
        _flavours(cfg.flavours),
        fmt=str(cfg.format),
        seed=int(cfg.seed),
        sqrt_s_gev=float(cfg.sqrt_s),
        detector=detector,
        workers=cfg.workers,
        chunk_size=int(cfg.chunk_size),
        isr=bool(cfg.isr),
        pythia_extra=[str(s) for s in cfg.pythia],
        progress=bool(cfg.progress),
        start_method=str(cfg.start_method),
        shard=shard,
        n_shards=n_shards,
        process=str(cfg.get("process", "qq")),
        n_jets=_n_jets(cfg),
    )
    summary = {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "versions": {pkg: version(pkg) for pkg in ("flavortag", "pythia8mc", "awkward", "numpy")
                     + (("fastjet",) if _n_jets(cfg) else ())},
        "pythia_settings": {name: pythia_settings(name, float(cfg.sqrt_s), isr=bool(cfg.isr),
                                                  extra=[str(x) for x in cfg.pythia],
                                                  process=str(cfg.get("process", "qq")))
                            for name in result.paths},
        "files": {name: str(path) for name, path in result.paths.items()},
        "n_events": result.n_events,
        "n_tracks": result.n_tracks,
        "workers": result.workers,
        "wall_s": round(result.wall_s, 2),
    }
    meta = Path(cfg.out) / f"generation{shard_name(shard, n_shards)}.yaml"
    tmp = meta.with_name(meta.name + ".tmp")
    tmp.write_text(yaml.safe_dump(summary, sort_keys=False))
    tmp.replace(meta)
    total = sum(result.n_events.values())
    what = "jets" if _n_jets(cfg) else "events"
    log.info(
        "wrote %d %s (%s) to %s in %.1f s with %d workers (%.0f %s/s)",
        total,
        what,
        ", ".join(f"{k}: {v}" for k, v in result.n_events.items()),
        cfg.out,
        result.wall_s,
        result.workers,
        total / max(result.wall_s, 1e-9),
        what,
    )
    return summary


@hydra.main(config_path=CONFIG_DIR, config_name="generate", version_base="1.3")
@reported
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``flavortag generate`` (see the module doc)."""
    check_config(cfg, "generate")  # before any data is read or any run opened
    run(cfg)


if __name__ == "__main__":
    main()
