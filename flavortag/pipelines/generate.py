"""The generate pipeline: Pythia 8 samples written with their record, ``generation.yaml``.

Produces the samples (:func:`flavortag.generate.production.produce_samples`)
and writes ``out/generation<shard>.yaml``: the resolved config, the package
versions, the Pythia settings, the counts and the wall time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flavortag.detector import DetectorModel
from flavortag.errors import UsageError

log = logging.getLogger("flavortag.generate")


def _flavours(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    raise ValueError(f"flavours must be a list like [uds,cc,bb], not {value!r}")


def _particle_flow(config: Mapping[str, Any], level: str) -> bool:
    """``particle_flow``: true / false as given; null (the default) on for jets, off for events."""
    value = config.get("particle_flow")
    return level == "jet" if value is None else bool(value)


@dataclass(frozen=True)
class GenerateSettings:
    """The ``generate`` command's settings (``configs/generate.yaml``); ``config``: the resolved config, recorded."""

    config: Mapping[str, Any]
    out: str
    n_events: int
    flavours: tuple[str, ...]
    format: str
    seed: int
    sqrt_s_gev: float
    detector: DetectorModel
    workers: int | None
    chunk_size: int
    isr: bool
    pythia: tuple[str, ...]
    progress: bool
    start_method: str
    shard: int
    n_shards: int
    process: str
    n_jets: int | None
    #: the tracks' measured PID and the calorimeter's neutral particles (null in the config: jets only)
    particle_flow: bool

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> GenerateSettings:
        """Parse a resolved ``generate`` config (a plain mapping); ``level=jet`` gives ``n_jets``."""
        level, process = str(config.get("level", "event")), str(config.get("process", "qq"))
        if level not in ("event", "jet"):
            raise UsageError(f"level must be event or jet, not {level!r}")
        n_jets: int | None = None
        if level == "event":
            if process == "zh":
                raise UsageError("process=zh makes jets (Z -> nu nu, H -> two jets): add level=jet")
        else:
            n_jets = int(config.get("n_jets", 2))
            if n_jets < 1:
                raise UsageError(f"n_jets must be >= 1, not {n_jets}")
        workers = config.get("workers")
        return cls(config=dict(config), out=str(config["out"]), n_events=int(config["n_events"]),
                   flavours=_flavours(config["flavours"]), format=str(config["format"]), seed=int(config["seed"]),
                   sqrt_s_gev=float(config["sqrt_s"]), detector=DetectorModel.from_config(config.get("detector")),
                   workers=None if workers is None else int(workers), chunk_size=int(config["chunk_size"]),
                   isr=bool(config["isr"]), pythia=tuple(str(s) for s in config.get("pythia") or ()),
                   progress=bool(config["progress"]), start_method=str(config["start_method"]),
                   shard=int(config.get("shard", 0)), n_shards=int(config.get("n_shards", 1)),
                   process=process, n_jets=n_jets, particle_flow=_particle_flow(config, level))


def generate(settings: GenerateSettings) -> dict[str, Any]:
    """Produce the samples and write ``generation.yaml``; return its content."""
    from importlib.metadata import version

    import yaml

    from flavortag.generate.production import check_shard, produce_samples, shard_name
    from flavortag.generate.pythia_setup import pythia_settings
    from flavortag.io.atomic import atomic_output

    shard, n_shards = settings.shard, settings.n_shards
    try:
        check_shard(shard, n_shards)
    except ValueError as err:
        raise UsageError(f"{err}; e.g. `flavortag generate -m shard=0,1,2,3 n_shards=4`") from None
    result = produce_samples(
        settings.out, settings.n_events, list(settings.flavours), fmt=settings.format, seed=settings.seed,
        sqrt_s_gev=settings.sqrt_s_gev, detector=settings.detector, workers=settings.workers,
        chunk_size=settings.chunk_size, isr=settings.isr, pythia_extra=list(settings.pythia),
        progress=settings.progress, start_method=settings.start_method, shard=shard, n_shards=n_shards,
        process=settings.process, n_jets=settings.n_jets, particle_flow=settings.particle_flow,
    )
    summary = {
        "config": dict(settings.config),
        "versions": {pkg: version(pkg) for pkg in ("flavortag", "pythia8mc", "awkward", "numpy")
                     + (("fastjet",) if settings.n_jets else ())},
        "pythia_settings": {name: pythia_settings(name, settings.sqrt_s_gev, isr=settings.isr,
                                                  extra=list(settings.pythia), process=settings.process)
                            for name in result.paths},
        "files": {name: str(path) for name, path in result.paths.items()},
        "n_events": result.n_events,
        "n_tracks": result.n_tracks,
        "workers": result.workers,
        "wall_s": round(result.wall_s, 2),
    }
    meta = Path(settings.out) / f"generation{shard_name(shard, n_shards)}.yaml"
    with atomic_output(meta) as tmp:
        Path(tmp).write_text(yaml.safe_dump(summary, sort_keys=False))
    total = sum(result.n_events.values())
    what = "jets" if settings.n_jets else "events"
    log.info("wrote %d %s (%s) to %s in %.1f s with %d workers (%.0f %s/s)", total, what,
             ", ".join(f"{k}: {v}" for k, v in result.n_events.items()), settings.out, result.wall_s,
             result.workers, total / max(result.wall_s, 1e-9), what)
    return summary
