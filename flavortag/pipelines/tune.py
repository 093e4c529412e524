"""The tune pipeline: one ``flavortag tune`` worker, trials of a shared optuna study until its budget is spent.

Every worker of a study runs the same command against the same storage
(:mod:`.storage`); optuna hands each its trials. The budget ``n_trials`` is
the study's, not the worker's: a trial holds one of its slots from the moment
it is asked, and a retried trial (the copy of one whose worker died) takes the
slot of the trial it replaces, so a search resumed after a crash ends with
exactly ``n_trials`` COMPLETE + PRUNED trials (as long as no trial raised an
error: such a trial frees its slot, and the worker stops with the error).
Two workers that ask in the same instant for the last slot are told apart by
trial number; the later one's trial ends FAIL at once with the user attribute
``flavortag.surplus`` and no MLflow run. When the slots are spent but trials of
other workers still run, a worker waits for them (with heartbeats on), so that
it takes over the retry of a trial whose worker dies at the end.

A trial's train job is composed by the app (Hydra's compose API) from the
study's train overrides plus its sampled values (the ``compose`` callback:
overrides in, :class:`~flavortag.training.settings.TrainJob` out); the
worker runs it with :func:`flavortag.pipelines.train.train` in this process, reports the validation loss of every epoch to optuna (the
pruner may stop it: ``optuna.TrialPruned``) and returns the best one.

MLflow: one parent run per study (its id is the study's user attribute
``mlflow_parent_run_id``, set by the worker that created the study; the
others wait for it), each trial a child run (tags ``mlflow.parentRunId``,
``flavortag.study``, ``flavortag.trial``, ``flavortag.trial_state``), with the
train run's params and per-epoch metrics. A pruned trial's run ends KILLED, a
failed one FAILED, the run of a dead worker's trial is marked KILLED by the
worker that retries it. When the study is done, the worker that sees it done
logs the trial table, optuna's plots and the best trial to the parent, ends
it FINISHED and writes the best trial as an experiment preset (the app's
``write_preset`` callback, :mod:`flavortag.apps.tune_preset`). The parts of a
worker (settings, budget, optuna objects): :mod:`flavortag.tuning.study`.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from flavortag import tracking
from flavortag.errors import UsageError
from flavortag.pipelines.train import train
from flavortag.training.settings import TrainJob
from flavortag.tuning import study as study_lib
from flavortag.tuning.space import SearchSpace, format_override
from flavortag.tuning.storage import open_storage, storage_path
from flavortag.tuning.study import (
    DONE_ATTR,
    ERROR_ATTR,
    PARENT_ATTR,
    PARENT_WAIT_S,
    RUN_ATTR,
    SURPLUS_ATTR,
    WORKER_ATTR,
    BudgetSpent,
    StudyResult,
    TakenOver,
    TuneSettings,
    slots_used,
    trial_table,
)

log = logging.getLogger("flavortag.tune")

__all__ = ["Compose", "WritePreset", "config_value", "finish_study", "run_worker"]

#: The app's composer of a trial's train job: train overrides in, the parsed job out.
Compose = Callable[[list[str]], TrainJob]
#: The app's writer of the best trial's preset: (params, note) in, the preset file out.
WritePreset = Callable[[Mapping[str, Any], str], Path]


def config_value(config: Mapping[str, Any], key: str) -> Any:
    """The value at dotted ``key`` of a plain config (None where it has no such key)."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _parent_run(study: optuna.Study, created: bool, settings: TuneSettings, space: SearchSpace,
                base: TrainJob) -> str:
    """The study's MLflow parent run: made by the study's creator, found by the other workers."""
    run_id = study.user_attrs.get(PARENT_ATTR)
    if not created:
        deadline = time.monotonic() + PARENT_WAIT_S
        while run_id is None and time.monotonic() < deadline:
            time.sleep(0.5)
            run_id = study.user_attrs.get(PARENT_ATTR)
    tracking.configure(base.tracking)
    if run_id is not None and tracking.run_exists(str(run_id)):
        tracking.RunHandle(str(run_id)).set_status("RUNNING")
        return str(run_id)
    if run_id is not None:
        log.warning("study %s: its MLflow parent run %s is not in %s; starting a new parent run",
                    study.study_name, run_id, tracking.tracking_uri())
    elif not created:
        log.warning("study %s: no MLflow parent run recorded after %.0f s; starting one",
                    study.study_name, PARENT_WAIT_S)
    parent = tracking.create_run(base.tracking, run_name=f"tune-{study.study_name}",
                                 tags={tracking.Tag.KIND: tracking.Kind.STUDY,
                                       tracking.Tag.STUDY: study.study_name, tracking.Tag.ROLE: "study",
                                       tracking.Tag.MODEL: base.model_name})
    run_id = parent.run_id
    params: dict[str, Any] = {"n_trials": settings.n_trials, "storage": study_lib.public_storage(settings.storage),
                              "sampler": "TPE", "seed": settings.seed,
                              "n_startup_trials": settings.n_startup_trials,
                              "pruner": ",".join(f"{k}={v}" for k, v in settings.pruner.items()),
                              "overrides": " ".join(settings.overrides) or "-"}
    for p in space.params:
        params[f"space.{p.key}"] = (f"{p.type} {list(p.choices)}" if p.type == "categorical" else
                                    f"{p.type} [{p.low}, {p.high}]" + (" log" if p.log else "")
                                    + (f" step {p.step}" if p.step else ""))
    parent.log_params(params)
    parent.log_dict(dict(settings.config), "tune.yaml")
    study.set_user_attr(PARENT_ATTR, run_id)
    return run_id


# --------------------------------------------------------------------------- one trial


class _Objective:
    """The objective of a trial: compose the train config, train, report each epoch's validation loss."""

    def __init__(self, settings: TuneSettings, space: SearchSpace, compose: Compose, parent_run_id: str,
                 base_overrides: list[str]) -> None:
        self.settings, self.space, self.compose = settings, space, compose
        self.parent_run_id, self.base_overrides = parent_run_id, base_overrides
        self.n_run = 0
        #: set when the running trial was failed by another worker (heartbeat too late)
        self.taken_over = False

    def __call__(self, trial: optuna.Trial) -> float:
        try:
            return self._run(trial)
        except (optuna.TrialPruned, BudgetSpent):
            raise
        except optuna.exceptions.UpdateFinishedTrialError as exc:
            self.taken_over = True
            raise TakenOver(str(exc)) from exc
        except Exception as exc:
            # an error (not a dead worker): the trial frees its slot and the worker stops
            trial.set_user_attr(ERROR_ATTR, f"{type(exc).__name__}: {exc}"[:1000])
            raise

    def _run(self, trial: optuna.Trial) -> float:
        study = trial.study
        system_attrs = study_lib.frozen_trial(study, trial.number).system_attrs
        retried = system_attrs.get("failed_trial")
        if retried is None:
            earlier = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
            if slots_used(earlier) >= self.settings.n_trials:
                trial.set_user_attr(SURPLUS_ATTR, True)
                raise BudgetSpent(f"trial {trial.number}: the study's {self.settings.n_trials} trials "
                                  "are taken (asked by two workers at once)")
        else:
            study_lib.close_dead_runs(study, self.parent_run_id)
        trial.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
        # sampled from the trial number: workers started with the same seed do not repeat each other
        study.sampler = study_lib.make_sampler(self.settings.seed + trial.number, self.settings.n_startup_trials)
        values = {p.key: p.suggest(trial) for p in self.space.params}
        run_dir = self.settings.output_dir / f"trial_{trial.number:04d}"
        overrides = [*self.base_overrides, *(format_override(k, v) for k, v in values.items()),
                     f"output_dir={run_dir}", f"run_name={self.settings.study_name}-trial{trial.number}"]
        job = self.compose(overrides)
        for key, value in values.items():
            composed = config_value(job.config, key)
            if composed != value:
                raise UsageError(f"hparams_search.params.{key}: the trial sampled {value!r} but the train "
                                 f"config composed {composed!r} (an interpolation or a group override?)")
        run_ids: list[str] = []

        def report(epoch: int, metrics: dict[str, float]) -> None:
            if not run_ids:
                run_ids.append(tracking.active_run().run_id)
                trial.set_user_attr(RUN_ATTR, run_ids[0])
            value = self.settings.objective(metrics)
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {epoch}: objective {value:.4f}")

        tags = {tracking.Tag.KIND: tracking.Kind.TRIAL,
                tracking.Tag.PARENT_RUN: self.parent_run_id, tracking.Tag.STUDY: self.settings.study_name,
                tracking.Tag.TRIAL: str(trial.number), tracking.Tag.TRIAL_STATE: "RUNNING"}
        if retried is not None:
            tags[tracking.Tag.RETRY_OF] = str(system_attrs.get("retry_history", [retried])[-1])
        log.info("trial %d%s: %s", trial.number, f" (retry of trial {tags.get(tracking.Tag.RETRY_OF)})"
                 if retried is not None else "", " ".join(format_override(k, v) for k, v in values.items()))
        self.n_run += 1
        try:
            result = train(job, epoch_callback=report, run_tags=tags)
        except optuna.TrialPruned:
            self._end_run(run_ids, "KILLED", "PRUNED")
            raise
        except optuna.exceptions.UpdateFinishedTrialError:
            self._end_run(run_ids, "KILLED", "FAIL")
            raise
        except KeyboardInterrupt:
            self._end_run(run_ids, "KILLED", "FAIL")
            study_lib.retry_later(study, trial, self.settings.max_retry)  # interrupted, not wrong: run it again
            raise
        except Exception:
            self._end_run(run_ids, "FAILED", "FAIL")
            raise
        run_id = str(result["run_id"])
        trial.set_user_attr(RUN_ATTR, run_id)
        history = result["history"]
        per_epoch = [self.settings.objective({k: v[i] for k, v in history.items() if i < len(v)})
                     for i in range(len(history.get("val/loss") or []))]
        finite = [v for v in per_epoch if not math.isnan(v)]
        if not finite:
            raise RuntimeError(f"trial {trial.number}: training logged no validation loss")
        for key, value in (result.get("metrics") or {}).items():
            if isinstance(value, int | float) and math.isfinite(float(value)):
                trial.set_user_attr(str(key), float(value))
        tracking.RunHandle(run_id).set_tags({tracking.Tag.TRIAL_STATE: "COMPLETE"})
        return float(min(finite))

    @staticmethod
    def _end_run(run_ids: list[str], status: str, state: str) -> None:
        if run_ids:
            run = tracking.RunHandle(run_ids[0])
            run.set_tags({tracking.Tag.TRIAL_STATE: state})
            run.set_status(status)


def run_worker(settings: TuneSettings, space: SearchSpace, compose: Compose,
               write_preset: WritePreset) -> StudyResult:
    """Run trials of the study until its budget is spent; finish the study if it is done.

    ``compose`` makes a trial's train job from its overrides; ``write_preset``
    writes the best trial's preset when the study is done.
    """
    import flavortag.training  # noqa: F401 - imported before any trial's heartbeat (imports hold the GIL)

    robust = ["augment.shifted_validation=true"] if settings.robustness_weight > 0 else []
    base_overrides = [*space.base_overrides(), *settings.overrides, *robust]
    try:
        base = compose([*base_overrides, f"output_dir={settings.output_dir / 'base'}"])
    except ValueError as err:
        if robust and "shifted_validation" in str(err):
            raise UsageError(f"robustness_weight={settings.robustness_weight} scores a re-smeared copy of the "
                             "validation split: choose its augmentation in the train overrides "
                             "(-- augment=detector; add augment.fraction=0 to train on the events as "
                             "simulated)") from None
        raise
    space.check_keys(base.config)
    if base.trainer.distributed:
        raise UsageError("flavortag tune runs each trial in its own process: trainer=ddp is not for trials "
                         "(run more tune workers instead)")
    max_epochs = base.trainer.max_epochs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = open_storage(settings.storage, settings.heartbeat_interval_s, settings.heartbeat_grace_s,
                               settings.max_retry)
        study, created = study_lib.open_study(settings, storage, study_lib.make_pruner(settings.pruner, max_epochs))
    trials = study.get_trials(deepcopy=False)
    if (study.user_attrs.get(DONE_ATTR) == len(trials) and study_lib.finished(trials)
            and slots_used(trials) >= settings.n_trials):
        preset: Path | None = settings.preset_dir / f"{settings.study_name}_best.yaml"
        parent_id = str(study.user_attrs.get(PARENT_ATTR))
        log.info("study %s is done (%d trials); raise n_trials to go on", study.study_name, len(trials))
        if preset is not None and not preset.is_file():  # not written yet (e.g. to another preset_dir)
            tracking.configure(base.tracking)
            preset = finish_study(study, parent_id, settings, write_preset)
        return StudyResult(study=study, parent_run_id=parent_id, n_run_here=0, done=True, preset=preset)
    parent = _parent_run(study, created, settings, space, base)
    log.info("study %s in %s: %d trials, MLflow parent run %s (%s)", study.study_name,
             study_lib.public_storage(settings.storage), settings.n_trials, parent, tracking.tracking_uri())
    objective = _Objective(settings, space, compose, parent, base_overrides)
    heartbeat = settings.heartbeat_interval_s
    while True:
        trials = study.get_trials(deepcopy=False)
        waiting = any(t.state == TrialState.WAITING for t in trials)
        if waiting or slots_used(trials) < settings.n_trials:
            objective.taken_over = False
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    study.optimize(objective, n_trials=1, catch=(BudgetSpent,))
            except (TakenOver, ValueError):
                if not objective.taken_over:
                    raise
                # optuna cannot tell a trial that another worker failed: its retry runs (or ran) elsewhere
                log.warning("study %s: another worker failed this worker's trial as dead (no heartbeat for "
                            "%s s: a busy machine? raise heartbeat.grace_s); its retry runs in its place",
                            study.study_name, settings.heartbeat_grace_s)
            continue
        if study_lib.finished(trials) or not (heartbeat and settings.wait_for_others):
            break
        # the slots are taken but others' trials run: wait, and take over a dead worker's trial
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        time.sleep(min(float(heartbeat), 1.0))  # a cheap read; a worker waiting at the end exits soon
    trials = study.get_trials(deepcopy=False)
    done = study_lib.finished(trials) and slots_used(trials) >= settings.n_trials
    result = StudyResult(study=study, parent_run_id=parent, n_run_here=objective.n_run, done=done)
    if done:
        result.preset = finish_study(study, parent, settings, write_preset)
    else:
        log.info("study %s: this worker is done; other workers' trials still run", study.study_name)
    return result


# --------------------------------------------------------------------------- the end of a study


def finish_study(study: optuna.Study, parent_run_id: str, settings: TuneSettings,
                 write_preset: WritePreset) -> Path | None:
    """Log the done study to its parent run, end it FINISHED, write the best trial's preset."""
    parent = tracking.RunHandle(parent_run_id)
    study_lib.close_dead_runs(study, parent_run_id)
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials)
              for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    table = trial_table(study)
    log.info("study %s done: %s", study.study_name, ", ".join(f"{v} {k}" for k, v in counts.items()))
    metrics = {f"trials/{k}": float(v) for k, v in counts.items()}
    preset = None
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete:
        best = study.best_trial
        what = settings.objective_name
        metrics["best/val_loss" if not settings.robustness_weight else "best/objective"] = float(best.value or math.nan)
        metrics["best/trial"] = float(best.number)
        note = f"trial {best.number}, {what} {best.value:.4f}"
        try:
            preset = write_preset(best.params, note)
            parent.log_artifact(preset, artifact_path="preset")
        except OSError as exc:  # e.g. the config directory of an installed package is read-only
            log.error("cannot write the preset into %s (%s): run the same command with preset_dir=<a "
                      "writable folder> (or set FLAVORTAG_CONFIG_DIR) to write it", settings.preset_dir, exc)
        parent.log_dict({"number": best.number, "value": best.value,
                                              "params": best.params, "user_attrs": best.user_attrs},
                              "best_trial.json")
        parent.set_tags({tracking.Tag.BEST_TRIAL: str(best.number),
                         tracking.Tag.BEST_RUN_ID: str(best.user_attrs.get(RUN_ATTR, ""))})
        if preset is not None:
            log.info("best trial %d: %s %.4f; preset %s (flavortag train +experiment=%s_best)",
                     best.number, what, best.value, preset, settings.study_name)
        study_lib.log_plots(study, parent_run_id)
    else:
        log.warning("study %s: no trial completed; no preset written", study.study_name)
    parent.log_metrics(metrics)
    parent.log_dict({"table": table.splitlines()}, "trials.json")
    parent.set_status("FINISHED")
    study.set_user_attr(DONE_ATTR, len(trials))
    path = storage_path(settings.storage)
    if path is not None:
        log.info("storage: %s", path.resolve())
    return preset
