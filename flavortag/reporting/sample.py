"""What every plot says about its sample: detector model, sqrt(s), process, number of events.

:class:`SampleInfo` holds what is known of a sample; :func:`sample_info` fills
it from a run's ``data`` and ``detector`` config and, where the files were
made by ``flavortag generate``, from the ``generation.yaml`` beside them (the
detector the events were simulated with, sqrt(s), the flavours, ISR). What is
not known is left out of the block rather than guessed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["SampleInfo", "sample_info"]

_PROCESS_TEX = r"$e^+e^- \to Z/\gamma^* \to q\bar{q}$"


@dataclass(frozen=True)
class SampleInfo:
    """The sample of a plot; None where unknown.

    ``detector``: the detector model's name (with its variations, e.g.
    "ild, IP resolution x1.5"); ``sqrt_s_gev``; ``process`` (TeX allowed);
    ``n_events`` and what they are (``events_label``: "test events");
    ``label``: a last line such as "transformer on zpole_30k".
    """

    detector: str | None = None
    sqrt_s_gev: float | None = None
    process: str | None = None
    n_events: int | None = None
    events_label: str = "test events"
    label: str | None = None

    def with_(self, **changes: Any) -> SampleInfo:
        """A copy with some fields changed (``info.with_(n_events=len(labels))``)."""
        return replace(self, **changes)

    @property
    def energy_text(self) -> str | None:
        """``√s = 91.19 GeV`` (None when unknown)."""
        return None if self.sqrt_s_gev is None else f"√s = {self.sqrt_s_gev:.4g} GeV"

    def lines(self) -> list[str]:
        """The block's lines: energy and detector, process, number of events, label."""
        first = ", ".join(t for t in (self.energy_text, f"{self.detector} detector model"
                                      if self.detector else None) if t)
        lines = [first] if first else []
        if self.process:
            lines.append(self.process)
        if self.n_events is not None:
            lines.append(f"{self.n_events:,} {self.events_label}")
        if self.label:
            lines.append(self.label)
        return lines

    def text(self) -> str:
        """The lines joined by newlines ('' when nothing is known)."""
        return "\n".join(self.lines())


def _detector_text(detector: Mapping[str, Any] | None) -> str | None:
    if not detector:
        return None
    name = str(detector.get("name") or "custom")
    notes = []
    for key, words in (("ip_resolution_scale", "IP resolution"), ("momentum_resolution_scale", "p resolution")):
        scale = detector.get(key)
        if scale is not None and float(scale) != 1.0 and f"x{float(scale):g}" not in name:
            notes.append(f"{words} x{float(scale):g}")
    if detector.get("smear") is False and name != "perfect":
        notes.append("no smearing")
    return f"{name} ({', '.join(notes)})" if notes else name


def _generation(paths: Sequence[str]) -> dict[str, Any] | None:
    """The ``config`` of the ``generation.yaml`` beside the first file, if there is one."""
    import yaml

    for path in paths[:1]:
        meta = Path(path).parent / "generation.yaml"
        if meta.is_file():
            try:
                blob = yaml.safe_load(meta.read_text())
            except (OSError, yaml.YAMLError) as err:
                log.debug("unreadable %s: %s", meta, err)
                return None
            return dict(blob.get("config") or {}) if isinstance(blob, Mapping) else None
    return None


def sample_info(data_cfg: Mapping[str, Any] | None, detector_cfg: Mapping[str, Any] | None = None,
                n_events: int | None = None, label: str | None = None,
                events_label: str = "test events") -> SampleInfo:
    """The sample block of a run's data: from ``generation.yaml`` beside its files, else its config.

    ``data_cfg``: a ``data`` node (its ``paths``, globs allowed); ``detector_cfg``:
    the run's ``detector`` node (used when the files carry no generation record).
    """
    from flavortag.dataset import resolve_paths

    paths: list[str] = []
    given = (data_cfg or {}).get("paths")
    if given:
        try:
            paths = [str(p) for p in resolve_paths(given)]
        except (OSError, ValueError):
            paths = [str(p) for p in ([given] if isinstance(given, str) else list(given))]
    generated = _generation(paths)
    if generated is not None:
        flavours = generated.get("flavours") or []
        if isinstance(flavours, str):
            flavours = [f.strip() for f in flavours.split(",")]
        process = _PROCESS_TEX + (f" ({', '.join(str(f) for f in flavours)})" if flavours else "")
        if generated.get("isr"):
            process += ", ISR"
        sqrt_s = generated.get("sqrt_s")
        return SampleInfo(detector=_detector_text(generated.get("detector")) or _detector_text(detector_cfg),
                          sqrt_s_gev=float(sqrt_s) if sqrt_s is not None else None, process=process,
                          n_events=n_events, events_label=events_label, label=label)
    name = (data_cfg or {}).get("name")
    return SampleInfo(detector=_detector_text(detector_cfg), process=f"sample {name}" if name else None,
                      n_events=n_events, events_label=events_label, label=label)
