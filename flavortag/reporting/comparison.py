"""Several evaluated runs side by side: what ``flavortag compare`` runs.

Collects runs (an explicit list, or the latest evaluated run of each run name
in an experiment), recomputes their curves from the logged test predictions
and writes one table (text + CSV) and overlays of the b- and c-tagging
rejection curves with ratio panels to a reference model. Everything is logged
as artifacts (and the table values as metrics) of a comparison run. Event
taggers (uds, cc, bb) and jet taggers (light, c, b[, g]) are each compared
with their own classes' columns; the two kinds are not mixed in one table.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
from omegaconf import DictConfig

from flavortag import metrics as ftm
from flavortag import tracking
from flavortag.classes import EVENT_SCHEME, ClassScheme, class_scheme
from flavortag.metrics.tables import JET_TABLE_METRICS
from flavortag.reporting import plots
from flavortag.reporting.binned import binned_plots, event_variables
from flavortag.reporting.report import evaluation_settings
from flavortag.reporting.sample import SampleInfo, sample_info
from flavortag.schema.groups import is_bdt

log = logging.getLogger("flavortag.compare")

PREDICTIONS_ARTIFACT = "predictions/predictions.parquet"


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
        name = tags.get("mlflow.runName", run.info.run_id)
        chosen.setdefault(name, run)
    return list(reversed(list(chosen.values())))


def load_predictions(run_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities [n, n_classes] and labels [n] from a run's logged test predictions."""
    probs, labels, _, _ = load_scored(run_id)
    return probs, labels


def load_scored(run_id: str) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray] | None, ClassScheme]:
    """Probabilities, labels, the event variables of :func:`flavortag.reporting.binned.event_variables`
    where the predictions carry their events (else None), and the classes of the probabilities
    (read from the ``prob_<class>`` columns: uds, cc, bb for events; light, c, b[, g] for jets)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = tracking.download_artifact(run_id, PREDICTIONS_ARTIFACT, tmp)
        fields = ak.metadata_from_parquet(path)["form"].fields
        scheme = class_scheme([f.removeprefix("prob_") for f in fields if f.startswith("prob_")] or None)
        prob_columns = [f"prob_{name}" for name in scheme.names]
        with_events = "axis" in fields and "tracks" in fields
        columns = [*prob_columns, "label", *(["axis", "tracks"] if with_events else [])]
        table = ak.from_parquet(path, columns=columns)
    probs = np.stack([ak.to_numpy(table[f]) for f in prob_columns], axis=1)
    variables = event_variables(table) if with_events and scheme.is_event_scheme else None
    return probs.astype(np.float64), ak.to_numpy(table["label"]).astype(np.int64), variables, scheme


def _table_metrics(event_taggers: bool, prefix: str,
                   results: dict[str, Any]) -> tuple[str, ...]:
    """The table's columns: the event figures, or the jet figures of the classes the runs have."""
    if event_taggers:
        return ftm.DEFAULT_TABLE_METRICS
    flat = [r.flat_metrics(prefix) if isinstance(r, ftm.EvaluationResult) else r for r in results.values()]
    return tuple(m for m in JET_TABLE_METRICS if any(prefix + m in f for f in flat))


def _run_scheme(run: Any, prefix: str) -> ClassScheme:
    """The classes of a run without predictions, from its logged metric names (``auc_<flavour>``)."""
    names = [k.removeprefix(f"{prefix}auc_") for k in run.data.metrics
             if k.startswith(f"{prefix}auc_") and not k.endswith("_err")]
    try:
        return class_scheme(names) if names else EVENT_SCHEME
    except ValueError:
        return EVENT_SCHEME


def _reference(cfg: DictConfig, runs: dict[str, Any], names: list[str]) -> str | None:
    """The ratio reference: ``reference=`` (a run name or a model), else the BDT, else the first run."""
    if not names:
        return None
    given = cfg.get("reference")
    if given:
        for name in names:
            if name == str(given) or runs[name].data.tags.get(tracking.Tag.MODEL) == str(given):
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


def compare(cfg: DictConfig) -> dict[str, dict[str, float]]:
    """Build the comparison of the configured runs; returns ``{run name: flat metrics}``."""
    tracking.configure(cfg.tracking)
    prefix = str(cfg.prefix)
    if cfg.get("runs"):
        runs = [tracking.get_run(str(r)) for r in cfg.runs]
    else:
        runs = find_runs(str(cfg.experiment_name), prefix)
    if not runs:
        raise ValueError("no evaluated runs to compare (train with evaluate_after_training=true "
                         "or run flavortag evaluate first)")
    settings = evaluation_settings(cfg.get("evaluate"))
    results: dict[str, Any] = {}
    by_name: dict[str, Any] = {}
    scored: dict[str, tuple[np.ndarray, np.ndarray, dict[str, np.ndarray] | None]] = {}
    schemes: dict[str, ClassScheme] = {}
    for run in runs:
        name = run.data.tags.get("mlflow.runName", run.info.run_id)
        if name in results:
            name = f"{name} ({run.info.run_id[:8]})"
        by_name[name] = run
        try:
            probs, labels, variables, schemes[name] = load_scored(run.info.run_id)
            scored[name] = (probs, labels, variables)
            results[name] = ftm.evaluate_predictions(probs, labels, efficiencies=settings["efficiencies"],
                                                     f_c=settings["f_c"], f_b=settings["f_b"],
                                                     scheme=schemes[name])
        except Exception as err:  # noqa: BLE001 - fall back to the logged numbers
            log.warning("run %s: no predictions artifact (%s); using logged metrics only", name, err)
            results[name] = dict(run.data.metrics)
            schemes[name] = _run_scheme(run, prefix)
    kinds = {s.is_event_scheme for s in schemes.values()}
    if len(kinds) > 1:
        raise ValueError("the runs mix event taggers (uds, cc, bb) and jet taggers: "
                         + ", ".join(f"{n} ({'/'.join(s.names)})" for n, s in schemes.items())
                         + "; compare each kind on its own (runs=[...] or another experiment_name)")
    out = Path(str(cfg.output_dir))
    out.mkdir(parents=True, exist_ok=True)
    table = ftm.format_comparison_table(results, prefix=prefix,
                                        metrics=_table_metrics(kinds != {False}, prefix, results))
    (out / "comparison.txt").write_text(table)
    ftm.write_comparison_csv(results, out / "comparison.csv", prefix=prefix)
    curves = {k: v for k, v in results.items() if isinstance(v, ftm.EvaluationResult)}
    reference = _reference(cfg, by_name, list(curves))
    if curves and reference is not None:
        sample = _sample(by_name[reference], len(scored[reference][1]))
        for tagger in ("b", "c"):
            plots.plot_rejection(curves, out / f"rejection_{tagger}", tagger=tagger,
                                 reference=reference, sample=sample)
        plots.plot_roc(curves, out / "roc", sample=sample)
        binned = {name: s for name, s in scored.items() if s[2] is not None}
        if binned:  # the models' own test events: the bins are the reference's (or the first's)
            order = sorted(binned, key=lambda n: n != reference)
            binned_plots({n: binned[n][0] for n in order}, {n: binned[n][1] for n in order},
                         {n: binned[n][2] for n in order if binned[n][2] is not None}, out,  # type: ignore[misc]
                         f_c=settings["f_c"], f_b=settings["f_b"],
                         working_points=settings["vs_variables_efficiency"], sample=sample)
    print(table)
    flat = {name: (r.flat_metrics(prefix) if isinstance(r, ftm.EvaluationResult) else r)
            for name, r in results.items()}
    with tracking.start_run(cfg.tracking, run_name="compare",
                            tags={tracking.Tag.KIND: "comparison"}):
        tracking.log_params({"runs": ",".join(r.info.run_id for r in runs)[:6000],
                             "reference": reference})
        tracking.log_artifacts(out, artifact_path="comparison")
    return flat
