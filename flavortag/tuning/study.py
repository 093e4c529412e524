"""One ``flavortag tune`` worker: trials of a shared optuna study until its budget is spent.

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

A trial composes the train config (Hydra's compose API) from the study's
train overrides plus its sampled values, runs :func:`flavortag.training.train`
in this process, reports the validation loss of every epoch to optuna (the
pruner may stop it: ``optuna.TrialPruned``) and returns the best one.

MLflow: one parent run per study (its id is the study's user attribute
``mlflow_parent_run_id``, set by the worker that created the study; the
others wait for it), each trial a child run (tags ``mlflow.parentRunId``,
``flavortag.study``, ``flavortag.trial``, ``flavortag.trial_state``), with the
train run's params and per-epoch metrics. A pruned trial's run ends KILLED, a
failed one FAILED, the run of a dead worker's trial is marked KILLED by the
worker that retries it. When the study is done, the worker that sees it done
logs the trial table, optuna's plots and the best trial to the parent, ends
it FINISHED and writes the best trial as an experiment preset (:mod:`.preset`).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState

from flavortag import tracking
from flavortag.errors import UsageError
from flavortag.tuning.preset import write_preset
from flavortag.tuning.space import SearchSpace, format_override
from flavortag.tuning.storage import open_storage, storage_path

log = logging.getLogger("flavortag.tune")

__all__ = ["StudyResult", "TuneSettings", "run_worker", "slots_used", "trial_table"]

PARENT_ATTR = "mlflow_parent_run_id"
RUN_ATTR = "mlflow_run_id"
ERROR_ATTR = "flavortag.error"
SURPLUS_ATTR = "flavortag.surplus"
WORKER_ATTR = "flavortag.worker"
#: Study user attribute: the number of trials the study had when a worker finished it.
DONE_ATTR = "flavortag.done"
#: Seconds a worker waits for the study's creator to record the MLflow parent run.
PARENT_WAIT_S = 60.0
Compose = Callable[[list[str]], DictConfig]


class BudgetSpent(Exception):
    """This trial came after the study's last slot was taken (by another worker, in the same instant)."""


class TakenOver(Exception):
    """Another worker found this trial's heartbeat too old, failed it and queued its retry."""


@dataclass(frozen=True)
class TuneSettings:
    """The ``tune`` config as typed values (see ``configs/tune.yaml``)."""

    study_name: str
    storage: str
    n_trials: int
    overrides: tuple[str, ...]
    seed: int
    n_startup_trials: int
    pruner: Mapping[str, Any]
    heartbeat_interval_s: int | None
    heartbeat_grace_s: int | None
    max_retry: int | None
    output_dir: Path
    preset_dir: Path
    config_dir: Path
    wait_for_others: bool

    @classmethod
    def from_config(cls, cfg: DictConfig, config_dir: str | Path) -> TuneSettings:
        """Parse and check a composed ``tune`` config."""
        n_trials = cfg.get("n_trials")
        if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
            raise UsageError(f"n_trials must be an integer >= 1 (the study's budget), not {n_trials!r}")
        name = str(cfg.get("study_name") or "")
        if not name or any(c in name for c in "/\\ "):
            raise UsageError(f"study_name must be a name without / or spaces, not {name!r}")
        overrides = cfg.get("overrides") or []
        if not OmegaConf.is_list(overrides) and not isinstance(overrides, list):
            raise UsageError(f"overrides must be a list of train overrides, not {overrides!r}")
        raw = OmegaConf.to_container(cfg.pruner, resolve=True) if cfg.get("pruner") else {"type": "none"}
        assert isinstance(raw, dict)
        pruner: dict[str, Any] = {str(k): v for k, v in raw.items()}
        if str(pruner.get("type")) not in ("median", "hyperband", "none"):
            raise UsageError(f"pruner.type must be median, hyperband or none, not {pruner.get('type')!r}")
        beat = cfg.get("heartbeat") or {}
        interval = beat.get("interval_s")
        grace, retries = beat.get("grace_s"), beat.get("max_retry")
        preset_dir = cfg.get("preset_dir")
        return cls(
            study_name=name, storage=str(cfg.storage), n_trials=n_trials,
            overrides=tuple(str(o) for o in overrides), seed=int(cfg.get("seed", 0)),
            n_startup_trials=int(cfg.sampler.get("n_startup_trials", 10)), pruner=pruner,
            heartbeat_interval_s=None if interval in (None, 0) else int(interval),
            heartbeat_grace_s=None if grace is None else int(grace),
            max_retry=None if retries is None else int(retries),
            output_dir=Path(str(cfg.output_dir)),
            preset_dir=Path(str(preset_dir)) if preset_dir else Path(config_dir) / "experiment",
            config_dir=Path(config_dir), wait_for_others=bool(cfg.get("wait_for_others", True)),
        )


@dataclass
class StudyResult:
    """What one worker leaves: the study, its parent MLflow run, the preset (when the study is done)."""

    study: optuna.Study
    parent_run_id: str
    n_run_here: int
    done: bool
    preset: Path | None = None


# --------------------------------------------------------------------------- budget


def _origin(trial: FrozenTrial) -> int:
    """The number of the trial this one retries (its own number when it is no retry)."""
    return int(trial.system_attrs.get("failed_trial", trial.number))


def _holds_slot(trial: FrozenTrial) -> bool:
    if trial.user_attrs.get(SURPLUS_ATTR):
        return False
    # FAIL without our error attribute: its worker died (heartbeat); it or its retry keeps the slot
    return trial.state != TrialState.FAIL or ERROR_ATTR not in trial.user_attrs


def slots_used(trials: Sequence[FrozenTrial]) -> int:
    """How many of the study's ``n_trials`` slots these trials take (a retry shares its original's)."""
    return len({_origin(t) for t in trials if _holds_slot(t)})


# --------------------------------------------------------------------------- optuna objects


def _sampler(seed: int, n_startup_trials: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials)


def _pruner(spec: Mapping[str, Any], max_epochs: int) -> optuna.pruners.BasePruner:
    kind = str(spec.get("type"))
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=int(spec.get("n_startup_trials", 5)),
                                           n_warmup_steps=int(spec.get("n_warmup_steps", 1)))
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=int(spec.get("min_resource", 1)),
                                              max_resource=max_epochs,
                                              reduction_factor=int(spec.get("reduction_factor", 3)))
    return optuna.pruners.NopPruner()


def _open_study(settings: TuneSettings, storage: Any, pruner: optuna.pruners.BasePruner) -> tuple[optuna.Study, bool]:
    """Create the study, or load it when it exists; True when this worker created it."""
    sampler = _sampler(settings.seed, settings.n_startup_trials)
    try:
        study = optuna.create_study(storage=storage, study_name=settings.study_name, direction="minimize",
                                    sampler=sampler, pruner=pruner)
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=settings.study_name, storage=storage, sampler=sampler,
                                  pruner=pruner)
        if study.direction != optuna.study.StudyDirection.MINIMIZE:
            raise UsageError(f"study {settings.study_name!r} in {settings.storage} maximises; "
                             "flavortag tune minimises the validation loss: give another study_name") from None
        return study, False


def _public_storage(url: str) -> str:
    """The storage URL without its password (for logs and MLflow)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
    return url


def _parent_run(study: optuna.Study, created: bool, settings: TuneSettings, space: SearchSpace,
                base_cfg: DictConfig, tune_cfg: DictConfig) -> str:
    """The study's MLflow parent run: made by the study's creator, found by the other workers."""
    run_id = study.user_attrs.get(PARENT_ATTR)
    if not created:
        deadline = time.monotonic() + PARENT_WAIT_S
        while run_id is None and time.monotonic() < deadline:
            time.sleep(0.5)
            run_id = study.user_attrs.get(PARENT_ATTR)
    tracking.configure(base_cfg.tracking)
    if run_id is not None and tracking.run_exists(str(run_id)):
        tracking.set_run_status(str(run_id), "RUNNING")
        return str(run_id)
    if run_id is not None:
        log.warning("study %s: its MLflow parent run %s is not in %s; starting a new parent run",
                    study.study_name, run_id, tracking.tracking_uri())
    elif not created:
        log.warning("study %s: no MLflow parent run recorded after %.0f s; starting one",
                    study.study_name, PARENT_WAIT_S)
    run_id = tracking.create_run(base_cfg.tracking, run_name=f"tune-{study.study_name}",
                                 tags={tracking.Tag.STUDY: study.study_name, tracking.Tag.ROLE: "study",
                                       tracking.Tag.MODEL: str(base_cfg.model.name)})
    params: dict[str, Any] = {"n_trials": settings.n_trials, "storage": _public_storage(settings.storage),
                              "sampler": "TPE", "seed": settings.seed,
                              "n_startup_trials": settings.n_startup_trials,
                              "pruner": ",".join(f"{k}={v}" for k, v in settings.pruner.items()),
                              "overrides": " ".join(settings.overrides) or "-"}
    for p in space.params:
        params[f"space.{p.key}"] = (f"{p.type} {list(p.choices)}" if p.type == "categorical" else
                                    f"{p.type} [{p.low}, {p.high}]" + (" log" if p.log else "")
                                    + (f" step {p.step}" if p.step else ""))
    tracking.log_run_params(run_id, params)
    tracking.log_run_dict(run_id, OmegaConf.to_container(tune_cfg, resolve=True), "tune.yaml")
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
        system_attrs = _frozen(study, trial.number).system_attrs
        retried = system_attrs.get("failed_trial")
        if retried is None:
            earlier = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
            if slots_used(earlier) >= self.settings.n_trials:
                trial.set_user_attr(SURPLUS_ATTR, True)
                raise BudgetSpent(f"trial {trial.number}: the study's {self.settings.n_trials} trials "
                                  "are taken (asked by two workers at once)")
        else:
            _close_dead_runs(study, self.parent_run_id)
        trial.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
        # sampled from the trial number: workers started with the same seed do not repeat each other
        study.sampler = _sampler(self.settings.seed + trial.number, self.settings.n_startup_trials)
        values = {p.key: p.suggest(trial) for p in self.space.params}
        run_dir = self.settings.output_dir / f"trial_{trial.number:04d}"
        overrides = [*self.base_overrides, *(format_override(k, v) for k, v in values.items()),
                     f"output_dir={run_dir}", f"run_name={self.settings.study_name}-trial{trial.number}"]
        cfg = self.compose(overrides)
        for key, value in values.items():
            composed = OmegaConf.select(cfg, key)
            if composed != value:
                raise UsageError(f"hparams_search.params.{key}: the trial sampled {value!r} but the train "
                                 f"config composed {composed!r} (an interpolation or a group override?)")
        run_ids: list[str] = []

        def report(epoch: int, metrics: dict[str, float]) -> None:
            if not run_ids:
                run_ids.append(tracking.active_run_id())
                trial.set_user_attr(RUN_ATTR, run_ids[0])
            val_loss = float(metrics["val/loss"])
            trial.report(val_loss, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {epoch}: validation loss {val_loss:.4f}")

        tags = {tracking.Tag.PARENT_RUN: self.parent_run_id, tracking.Tag.STUDY: self.settings.study_name,
                tracking.Tag.TRIAL: str(trial.number), tracking.Tag.TRIAL_STATE: "RUNNING"}
        if retried is not None:
            tags["flavortag.retry_of"] = str(system_attrs.get("retry_history", [retried])[-1])
        log.info("trial %d%s: %s", trial.number, f" (retry of trial {tags.get('flavortag.retry_of')})"
                 if retried is not None else "", " ".join(format_override(k, v) for k, v in values.items()))
        self.n_run += 1
        try:
            from flavortag.training import train

            result = train(cfg, epoch_callback=report, run_tags=tags)
        except optuna.TrialPruned:
            self._end_run(run_ids, "KILLED", "PRUNED")
            raise
        except optuna.exceptions.UpdateFinishedTrialError:
            self._end_run(run_ids, "KILLED", "FAIL")
            raise
        except KeyboardInterrupt:
            self._end_run(run_ids, "KILLED", "FAIL")
            _retry_later(study, trial, self.settings.max_retry)  # interrupted, not wrong: run it again
            raise
        except Exception:
            self._end_run(run_ids, "FAILED", "FAIL")
            raise
        run_id = str(result["run_id"])
        trial.set_user_attr(RUN_ATTR, run_id)
        history = result["history"].get("val/loss") or []
        finite = [v for v in history if not math.isnan(v)]
        if not finite:
            raise RuntimeError(f"trial {trial.number}: training logged no validation loss")
        for key, value in (result.get("metrics") or {}).items():
            if isinstance(value, int | float) and math.isfinite(float(value)):
                trial.set_user_attr(str(key), float(value))
        tracking.set_run_tags(run_id, {tracking.Tag.TRIAL_STATE: "COMPLETE"})
        return float(min(finite))

    @staticmethod
    def _end_run(run_ids: list[str], status: str, state: str) -> None:
        if run_ids:
            tracking.set_run_tags(run_ids[0], {tracking.Tag.TRIAL_STATE: state})
            tracking.set_run_status(run_ids[0], status)


def _frozen(study: optuna.Study, number: int) -> FrozenTrial:
    """The stored state of trial ``number`` (its system attributes, which a live Trial does not show)."""
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


def _retry_later(study: optuna.Study, trial: optuna.Trial, max_retry: int | None) -> None:
    frozen = _frozen(study, trial.number)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)(study, frozen)


def _close_dead_runs(study: optuna.Study, parent_run_id: str) -> None:
    """Mark KILLED the MLflow runs left RUNNING by trials that failed by heartbeat (dead workers)."""
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    for run in tracking.child_runs(parent_run_id):
        number = run.data.tags.get(tracking.Tag.TRIAL)
        if run.info.status == "RUNNING" and number is not None and states.get(int(number)) == TrialState.FAIL:
            tracking.set_run_tags(run.info.run_id, {tracking.Tag.TRIAL_STATE: "FAIL"})
            tracking.end_orphaned_run(run.info.run_id, f"the worker of trial {number} of study "
                                      f"{study.study_name} died (no heartbeat); the trial was retried")


# --------------------------------------------------------------------------- the worker loop


def _finished(trials: Sequence[FrozenTrial]) -> bool:
    return not any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)


def run_worker(tune_cfg: DictConfig, space: SearchSpace, compose: Compose, config_dir: str | Path) -> StudyResult:
    """Run trials of the study until its budget is spent; finish the study if it is done."""
    settings = TuneSettings.from_config(tune_cfg, config_dir)
    import flavortag.training  # noqa: F401 - imported before any trial's heartbeat (imports hold the GIL)

    base_overrides = [*space.base_overrides(), *settings.overrides]
    base_cfg = compose([*base_overrides, f"output_dir={settings.output_dir / 'base'}"])
    space.check_keys(base_cfg)
    if bool(base_cfg.trainer.get("distributed", False)):
        raise UsageError("flavortag tune runs each trial in its own process: trainer=ddp is not for trials "
                         "(run more tune workers instead)")
    max_epochs = int(base_cfg.trainer.max_epochs) if "trainer" in base_cfg else 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = open_storage(settings.storage, settings.heartbeat_interval_s, settings.heartbeat_grace_s,
                               settings.max_retry)
        study, created = _open_study(settings, storage, _pruner(settings.pruner, max_epochs))
    trials = study.get_trials(deepcopy=False)
    if (study.user_attrs.get(DONE_ATTR) == len(trials) and _finished(trials)
            and slots_used(trials) >= settings.n_trials):
        preset: Path | None = settings.preset_dir / f"{settings.study_name}_best.yaml"
        parent_id = str(study.user_attrs.get(PARENT_ATTR))
        log.info("study %s is done (%d trials); raise n_trials to go on", study.study_name, len(trials))
        if preset is not None and not preset.is_file():  # not written yet (e.g. to another preset_dir)
            tracking.configure(base_cfg.tracking)
            preset = finish_study(study, parent_id, settings, base_overrides)
        return StudyResult(study=study, parent_run_id=parent_id, n_run_here=0, done=True, preset=preset)
    parent = _parent_run(study, created, settings, space, base_cfg, tune_cfg)
    log.info("study %s in %s: %d trials, MLflow parent run %s (%s)", study.study_name,
             _public_storage(settings.storage), settings.n_trials, parent, tracking.tracking_uri())
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
        if _finished(trials) or not (heartbeat and settings.wait_for_others):
            break
        # the slots are taken but others' trials run: wait, and take over a dead worker's trial
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        time.sleep(min(float(heartbeat), 1.0))  # a cheap read; a worker waiting at the end exits soon
    trials = study.get_trials(deepcopy=False)
    done = _finished(trials) and slots_used(trials) >= settings.n_trials
    result = StudyResult(study=study, parent_run_id=parent, n_run_here=objective.n_run, done=done)
    if done:
        result.preset = finish_study(study, parent, settings, base_overrides)
    else:
        log.info("study %s: this worker is done; other workers' trials still run", study.study_name)
    return result


# --------------------------------------------------------------------------- the end of a study


def trial_table(study: optuna.Study) -> str:
    """The study's trials as a text table: number, state, value, epochs, retry of, parameters."""
    trials = study.get_trials(deepcopy=False)
    keys = sorted({k for t in trials for k in t.params})
    header = ["trial", "state", "val_loss", "epochs", "retry_of", *keys]
    rows = [header]
    for t in trials:
        state = "SURPLUS" if t.user_attrs.get(SURPLUS_ATTR) else t.state.name
        value = f"{t.value:.4f}" if t.value is not None else "-"
        retry = t.system_attrs.get("retry_history", [])
        rows.append([str(t.number), state, value, str(len(t.intermediate_values)),
                     str(retry[-1]) if retry else "-",
                     *[f"{t.params[k]:.3g}" if isinstance(t.params.get(k), float) else str(t.params.get(k, "-"))
                       for k in keys]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def _log_plots(study: optuna.Study, parent_run_id: str) -> list[str]:
    """optuna's optimisation history, parameter importances and parallel coordinates, as parent images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    plots: dict[str, Callable[[optuna.Study], Any]] = {
             "optimization_history": ovm.plot_optimization_history,
             "param_importances": ovm.plot_param_importances,
             "parallel_coordinate": ovm.plot_parallel_coordinate}
    logged = []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, plot in plots.items():
            try:
                axes = plot(study)
            except (ValueError, RuntimeError) as exc:  # e.g. importances of a single parameter value
                log.warning("optuna plot %s skipped: %s", name, exc)
                continue
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            figure.set_size_inches(9, 5.5)
            path = Path(tmp) / f"{name}.png"
            figure.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(figure)
            tracking.log_run_artifact(parent_run_id, path, artifact_path="optuna")
            logged.append(name)
    return logged


def finish_study(study: optuna.Study, parent_run_id: str, settings: TuneSettings,
                 base_overrides: list[str]) -> Path | None:
    """Log the done study to its parent run, end it FINISHED, write the best trial's preset."""
    _close_dead_runs(study, parent_run_id)
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
        metrics["best/val_loss"] = float(best.value or math.nan)
        metrics["best/trial"] = float(best.number)
        note = f"trial {best.number}, validation loss {best.value:.4f}"
        try:
            preset = write_preset(settings.preset_dir, settings.study_name, base_overrides, best.params, note,
                                  settings.config_dir)
            tracking.log_run_artifact(parent_run_id, preset, artifact_path="preset")
        except OSError as exc:  # e.g. the config directory of an installed package is read-only
            log.error("cannot write the preset into %s (%s): run the same command with preset_dir=<a "
                      "writable configs/experiment directory> to write it", settings.preset_dir, exc)
        tracking.log_run_dict(parent_run_id, {"number": best.number, "value": best.value,
                                              "params": best.params, "user_attrs": best.user_attrs},
                              "best_trial.json")
        tracking.set_run_tags(parent_run_id, {"flavortag.best_trial": str(best.number),
                                              "flavortag.best_run_id": str(best.user_attrs.get(RUN_ATTR, ""))})
        if preset is not None:
            log.info("best trial %d: validation loss %.4f; preset %s (flavortag train +experiment=%s_best)",
                     best.number, best.value, preset, settings.study_name)
        _log_plots(study, parent_run_id)
    else:
        log.warning("study %s: no trial completed; no preset written", study.study_name)
    tracking.log_run_metrics(parent_run_id, metrics)
    tracking.log_run_dict(parent_run_id, {"table": table.splitlines()}, "trials.json")
    tracking.set_run_status(parent_run_id, "FINISHED")
    study.set_user_attr(DONE_ATTR, len(trials))
    path = storage_path(settings.storage)
    if path is not None:
        log.info("storage: %s", path.resolve())
    return preset
