"""The compare pipeline: several evaluated runs side by side, logged as a comparison run.

Collects runs (an explicit list, or the latest evaluated run of each run name
in an experiment), recomputes their curves from their logged test
predictions (a run without them: its logged numbers), chooses the ratio
reference, and writes the table and overlays
(:func:`flavortag.reporting.comparison.write_comparison`); everything is
logged as artifacts of a comparison run.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flavortag import metrics as ftm
from flavortag import tracking
from flavortag.reporting import plots
from flavortag.reporting.comparison import Scored, read_scored, write_comparison
from flavortag.reporting.report import evaluation_settings
from flavortag.reporting.sample import SampleInfo, sample_info
from flavortag.schema.groups import TrackingSettings, is_bdt

log = logging.getLogger("flavortag.compare")

#: Where a run's test predictions are logged.
PREDICTIONS_ARTIFACT = "predictions/predictions.parquet"


@dataclass(frozen=True)
class CompareSettings:
    """The ``compare`` command's settings (``configs/compare.yaml``)."""

    output_dir: Path
    tracking: TrackingSettings
    runs: tuple[str, ...] = ()
    experiment_name: str = "flavortag"
    reference: str | None = None
    prefix: str = "test/"
    evaluate: Mapping[str, Any] | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CompareSettings:
        """Parse a resolved ``compare`` config (a plain mapping)."""
        reference = config.get("reference")
        return cls(output_dir=Path(str(config.get("output_dir"))),
                   tracking=TrackingSettings.from_config(config.get("tracking")),
                   runs=tuple(str(r) for r in config.get("runs") or ()),
                   experiment_name=str(config.get("experiment_name") or "flavortag"),
                   reference=str(reference) if reference else None, prefix=str(config.get("prefix", "test/")),
                   evaluate=config.get("evaluate"))


def find_runs(experiment_name: str, prefix: str = "test/") -> list[Any]:
    """Latest finished run of each run name in the experiment that has ``<prefix>acc``."""
    runs = tracking.finished_runs(experiment_name)
    chosen: dict[str, Any] = {}
    for run in runs:
        tags = run.data.tags
        if tags.get(tracking.Tag.KIND) in ("comparison", "evaluation"):
            continue
        if f"{prefix}acc" not in run.data.metrics:
            continue
        name = tags.get(tracking.Tag.RUN_NAME, run.info.run_id)
        chosen.setdefault(name, run)
    return list(reversed(list(chosen.values())))


def load_scored(run_id: str) -> Scored:
    """A run's logged test predictions (:func:`flavortag.reporting.comparison.read_scored`)."""
    with tempfile.TemporaryDirectory() as tmp:
        return read_scored(tracking.download_artifact(run_id, PREDICTIONS_ARTIFACT, tmp))


def _reference(given: str | None, runs: dict[str, Any], names: list[str]) -> str | None:
    """The ratio reference: ``reference=`` (a run name or a model), else the BDT, else the first run."""
    if not names:
        return None
    if given:
        for name in names:
            if name == given or runs[name].data.tags.get(tracking.Tag.MODEL) == given:
                return name
        raise ValueError(f"reference={given} is none of the compared runs ({', '.join(names)}) "
                         "nor their models")
    for name in names:
        if is_bdt(runs[name].data.tags.get(tracking.Tag.MODEL)):
            return name
    return plots.default_reference(names)


def _sample(run: Any, n_events: int | None) -> SampleInfo:
    """The sample block of the reference run (from its training config), what is known of it."""
    try:
        train_cfg = tracking.load_run_config(run.info.run_id)
    except Exception as err:  # noqa: BLE001 - a run without a config: the counts only
        log.debug("no config for run %s: %s", run.info.run_id, err)
        return SampleInfo(n_events=n_events)
    return sample_info(train_cfg.get("data"), train_cfg.get("detector"), n_events=n_events)


def compare(settings: CompareSettings) -> dict[str, dict[str, float]]:
    """Build the comparison of the configured runs; returns ``{run name: flat metrics}``."""
    tracking.configure(settings.tracking)
    prefix = settings.prefix
    if settings.runs:
        runs = [tracking.get_run(r) for r in settings.runs]
    else:
        runs = find_runs(settings.experiment_name, prefix)
    if not runs:
        raise ValueError("no evaluated runs to compare (train with evaluate_after_training=true "
                         "or run flavortag evaluate first)")
    evaluation = evaluation_settings(settings.evaluate)
    results: dict[str, Any] = {}
    by_name: dict[str, Any] = {}
    scored: dict[str, Scored] = {}
    for run in runs:
        name = run.data.tags.get(tracking.Tag.RUN_NAME, run.info.run_id)
        if name in results:
            name = f"{name} ({run.info.run_id[:8]})"
        by_name[name] = run
        try:
            scored[name] = load_scored(run.info.run_id)
            probs, labels, _, scheme = scored[name]
            results[name] = ftm.evaluate_predictions(probs, labels, efficiencies=evaluation["efficiencies"],
                                                     f_c=evaluation["f_c"], f_b=evaluation["f_b"],
                                                     scheme=scheme)
        except Exception as err:  # noqa: BLE001 - fall back to the logged numbers
            log.warning("run %s: no predictions artifact (%s); using logged metrics only", name, err)
            scored.pop(name, None)
            results[name] = dict(run.data.metrics)
    reference = _reference(settings.reference, by_name, list(scored))
    sample = _sample(by_name[reference], len(scored[reference][1])) if reference is not None else None
    out = settings.output_dir
    flat = write_comparison(results, scored, reference, sample, out, prefix, evaluation)
    with tracking.start_run(settings.tracking, run_name="compare",
                            tags={tracking.Tag.KIND: "comparison"}) as run:
        run.log_params({"runs": ",".join(r.info.run_id for r in runs), "reference": reference})
        run.log_artifacts(out, artifact_path="comparison")
    return flat
