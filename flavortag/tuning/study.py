"""The parts of a ``flavortag tune`` worker: settings, the study's budget, optuna objects, the trial table.

The worker itself (trials until the budget is spent, the MLflow runs, the
end of the study) is the tune pipeline, :mod:`flavortag.pipelines.tune`.
The budget ``n_trials`` is the study's, not the worker's: a trial holds one
of its slots from the moment it is asked, and a retried trial (the copy of
one whose worker died) takes the slot of the trial it replaces
(:func:`slots_used`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from flavortag import tracking
from flavortag.errors import UsageError

log = logging.getLogger("flavortag.tune")

__all__ = ["StudyResult", "TuneSettings", "slots_used", "trial_table"]

PARENT_ATTR = "mlflow_parent_run_id"
RUN_ATTR = "mlflow_run_id"
ERROR_ATTR = "flavortag.error"
SURPLUS_ATTR = "flavortag.surplus"
WORKER_ATTR = "flavortag.worker"
#: Study user attribute: the number of trials the study had when a worker finished it.
DONE_ATTR = "flavortag.done"
#: Seconds a worker waits for the study's creator to record the MLflow parent run.
PARENT_WAIT_S = 60.0
#: The environment variable naming the user's config folder (``configs/train.yaml``'s Hydra searchpath).
USER_CONFIG_ENV = "FLAVORTAG_CONFIG_DIR"


def user_config_dir() -> Path:
    """The user's config folder that ``flavortag train +experiment=`` searches besides the package's:
    ``$FLAVORTAG_CONFIG_DIR``, else ``~/.config/flavortag``; tune writes its presets under ``experiment/``."""
    given = os.environ.get(USER_CONFIG_ENV)
    return Path(given).expanduser() if given else Path.home() / ".config" / "flavortag"


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
    #: the resolved ``tune`` config, logged with the study's parent run
    config: Mapping[str, Any]
    #: > 0: the objective adds this times the loss on the re-smeared validation copy (val_shifted/loss)
    robustness_weight: float = 0.0

    @property
    def objective_name(self) -> str:
        """What a trial's value is, in words (the preset's note, the logs)."""
        if not self.robustness_weight:
            return "validation loss"
        return f"val/loss + {self.robustness_weight:g} x val_shifted/loss"

    def objective(self, metrics: Mapping[str, float]) -> float:
        """A trial's value at one epoch: ``val/loss`` (+ ``robustness_weight`` x ``val_shifted/loss``)."""
        value = float(metrics["val/loss"])
        if self.robustness_weight > 0:
            value += self.robustness_weight * float(metrics["val_shifted/loss"])
        return value

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], config_dir: str | Path) -> TuneSettings:
        """Parse and check a resolved ``tune`` config (a plain mapping)."""
        n_trials = cfg.get("n_trials")
        if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
            raise UsageError(f"n_trials must be an integer >= 1 (the study's budget), not {n_trials!r}")
        name = str(cfg.get("study_name") or "")
        if not name or any(c in name for c in "/\\ "):
            raise UsageError(f"study_name must be a name without / or spaces, not {name!r}")
        overrides = cfg.get("overrides") or []
        if not isinstance(overrides, list | tuple):
            raise UsageError(f"overrides must be a list of train overrides, not {overrides!r}")
        pruner: dict[str, Any] = {str(k): v for k, v in dict(cfg.get("pruner") or {"type": "none"}).items()}
        if str(pruner.get("type")) not in ("median", "hyperband", "none"):
            raise UsageError(f"pruner.type must be median, hyperband or none, not {pruner.get('type')!r}")
        beat = cfg.get("heartbeat") or {}
        interval = beat.get("interval_s")
        grace, retries = beat.get("grace_s"), beat.get("max_retry")
        preset_dir = cfg.get("preset_dir")
        return cls(
            study_name=name, storage=str(cfg["storage"]), n_trials=n_trials,
            overrides=tuple(str(o) for o in overrides), seed=int(cfg.get("seed", 0)),
            n_startup_trials=int((cfg.get("sampler") or {}).get("n_startup_trials", 10)), pruner=pruner,
            heartbeat_interval_s=None if interval in (None, 0) else int(interval),
            heartbeat_grace_s=None if grace is None else int(grace),
            max_retry=None if retries is None else int(retries),
            output_dir=Path(str(cfg["output_dir"])), config=dict(cfg),
            preset_dir=Path(str(preset_dir)) if preset_dir else user_config_dir() / "experiment",
            config_dir=Path(config_dir), wait_for_others=bool(cfg.get("wait_for_others", True)),
            robustness_weight=float(cfg.get("robustness_weight") or 0.0),
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


def make_sampler(seed: int, n_startup_trials: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials)


def make_pruner(spec: Mapping[str, Any], max_epochs: int) -> optuna.pruners.BasePruner:
    kind = str(spec.get("type"))
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=int(spec.get("n_startup_trials", 5)),
                                           n_warmup_steps=int(spec.get("n_warmup_steps", 1)))
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=int(spec.get("min_resource", 1)),
                                              max_resource=max_epochs,
                                              reduction_factor=int(spec.get("reduction_factor", 3)))
    return optuna.pruners.NopPruner()


def open_study(settings: TuneSettings, storage: Any, pruner: optuna.pruners.BasePruner) -> tuple[optuna.Study, bool]:
    """Create the study, or load it when it exists; True when this worker created it."""
    sampler = make_sampler(settings.seed, settings.n_startup_trials)
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


def public_storage(url: str) -> str:
    """The storage URL without its password (for logs and MLflow)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
    return url


def frozen_trial(study: optuna.Study, number: int) -> FrozenTrial:
    """The stored state of trial ``number`` (its system attributes, which a live Trial does not show)."""
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


def retry_later(study: optuna.Study, trial: optuna.Trial, max_retry: int | None) -> None:
    frozen = frozen_trial(study, trial.number)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)(study, frozen)


def close_dead_runs(study: optuna.Study, parent_run_id: str) -> None:
    """Mark KILLED the MLflow runs left RUNNING by trials that failed by heartbeat (dead workers)."""
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    for run in tracking.child_runs(parent_run_id):
        number = run.data.tags.get(tracking.Tag.TRIAL)
        if run.info.status == "RUNNING" and number is not None and states.get(int(number)) == TrialState.FAIL:
            handle = tracking.RunHandle(run.info.run_id)
            handle.set_tags({tracking.Tag.TRIAL_STATE: "FAIL"})
            handle.end_orphaned(f"the worker of trial {number} of study "
                                      f"{study.study_name} died (no heartbeat); the trial was retried")


# --------------------------------------------------------------------------- the worker loop


def finished(trials: Sequence[FrozenTrial]) -> bool:
    return not any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)


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


def log_plots(study: optuna.Study, parent_run_id: str) -> list[str]:
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
            tracking.RunHandle(parent_run_id).log_artifact(path, artifact_path="optuna")
            logged.append(name)
    return logged
