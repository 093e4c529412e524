"""The compare pipeline: several evaluated runs side by side, logged as a comparison run.

Which runs: ``runs=[...]`` (run ids or run names, the newest finished run of
a name), ``filter="<MLflow filter string>"`` (finished runs of the experiment
that match), or by default the trainings of one dataset: the newest finished
training run of each run name on the dataset (tag ``flavortag.data``) of the
most recent training. Tune trials, ablations, evaluate-only, analysis and
failed runs are never picked implicitly (:func:`flavortag.tracking.is_training`).

The runs must have been scored on the same events (the test sample's digest,
tag ``flavortag.test_sample``, and the number of events): mixed samples are
refused with one line (exit 2), or with ``mixed_samples=warn`` compared after
a one-line warning. Their curves are recomputed from their logged test
predictions (a run without them: its logged numbers); the table is ranked by
the headline figure (:data:`flavortag.metrics.HEADLINE_METRIC`) and written
with the overlays (:func:`flavortag.reporting.comparison.write_comparison`);
everything is logged as artifacts of a comparison run in ``<experiment>-analyses``.
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
from flavortag.errors import UsageError
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
    filter: str = ""
    mixed_samples: str = "refuse"
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
                   filter=str(config.get("filter") or ""),
                   mixed_samples=str(config.get("mixed_samples") or "refuse"),
                   experiment_name=str(config.get("experiment_name") or "flavortag"),
                   reference=str(reference) if reference else None, prefix=str(config.get("prefix", "test/")),
                   evaluate=config.get("evaluate"))


def find_runs(experiment_name: str, prefix: str = "test/") -> list[Any]:
    """The default runs: the newest finished training of each run name on the newest training's dataset.

    Only runs with ``<prefix>acc`` (evaluated) count; oldest first.
    """
    trainings = [r for r in tracking.finished_runs(experiment_name)
                 if tracking.is_training(r.data.tags) and f"{prefix}acc" in r.data.metrics]
    if not trainings:
        return []
    dataset = trainings[0].data.tags.get(tracking.Tag.DATA)
    chosen: dict[str, Any] = {}
    for run in trainings:
        if run.data.tags.get(tracking.Tag.DATA) == dataset:
            chosen.setdefault(run.data.tags.get(tracking.Tag.RUN_NAME, run.info.run_id), run)
    log.info("comparing the newest training of each run name on dataset %s (%d runs)", dataset, len(chosen))
    return list(reversed(list(chosen.values())))


def resolve_runs(given: tuple[str, ...], experiment_name: str) -> list[Any]:
    """Runs named by id (any experiment of the store) or by run name (newest finished run of the experiment)."""
    runs = []
    for key in given:
        if tracking.run_exists(key):
            runs.append(tracking.get_run(key))
            continue
        named = tracking.search_runs(experiment_name, f"tags.`{tracking.Tag.RUN_NAME}` = '{key}'")
        if not named:
            raise UsageError(f"runs=[...]: {key!r} is neither a run id nor the name of a finished run in "
                             f"experiment {experiment_name} of {tracking.tracking_uri()}")
        runs.append(named[0])
    return runs


def sample_of(run: Any, n_events: int | None) -> tuple[str | None, int | None]:
    """What a run was scored on: its test sample's digest tag (None: unknown) and number of events."""
    if n_events is None:
        value = run.data.params.get("n_test_events")
        n_events = int(value) if value is not None else None
    return run.data.tags.get(tracking.Tag.TEST_SAMPLE), n_events


def check_same_sample(samples: dict[str, tuple[str | None, int | None]], mixed: str) -> None:
    """Refuse (:class:`UsageError`, one line) or warn when the runs were scored on different events."""
    digests = {d for d, _ in samples.values() if d is not None}
    counts = {n for _, n in samples.values() if n is not None}
    if len(digests) <= 1 and len(counts) <= 1:
        return
    listed = ", ".join(f"{name}: {d or '?'} ({n if n is not None else '?'} events)"
                       for name, (d, n) in samples.items())
    message = f"the runs were scored on different test samples ({listed})"
    if mixed == "warn":
        log.warning("%s; their figures are not directly comparable", message)
        return
    raise UsageError(f"{message}; pick runs of one sample (runs=[...] or filter=...), or pass "
                     "mixed_samples=warn to compare them anyway")


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
    if settings.runs and settings.filter:
        raise UsageError("give runs=[...] or filter=..., not both")
    if settings.mixed_samples not in ("refuse", "warn"):
        raise UsageError(f"mixed_samples must be 'refuse' or 'warn', not {settings.mixed_samples!r}")
    if settings.runs:
        runs = resolve_runs(settings.runs, settings.experiment_name)
    elif settings.filter:
        runs = list(reversed(tracking.search_runs(settings.experiment_name, settings.filter)))
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
    check_same_sample({name: sample_of(by_name[name], len(scored[name][1]) if name in scored else None)
                       for name in results}, settings.mixed_samples)
    flat_all = {name: (r.flat_metrics(prefix, infinite_rejection="limit")
                       if isinstance(r, ftm.EvaluationResult) else r) for name, r in results.items()}
    headline, described = ftm.headline_metric(
        next(iter(scored.values()))[3].names if scored else ("uds",))
    results = {name: results[name] for name in ftm.rank_by(flat_all, prefix + headline)}
    reference = _reference(settings.reference, by_name, list(scored))
    sample = _sample(by_name[reference], len(scored[reference][1])) if reference is not None else None
    out = settings.output_dir
    print(f"ranked by {described} ({prefix}{headline}), best first; errors: binomial (1 sigma), "
          "'> x': 95% CL lower limit")
    flat = write_comparison(results, scored, reference, sample, out, prefix, evaluation)
    with tracking.start_run(settings.tracking, run_name="compare",
                            tags={tracking.Tag.KIND: tracking.Kind.COMPARISON}) as run:
        run.log_params({"runs": ",".join(r.info.run_id for r in runs), "reference": reference,
                        "ranked_by": prefix + headline})
        run.log_artifacts(out, artifact_path="comparison")
        print(tracking.where_written(out, run))
    return flat
