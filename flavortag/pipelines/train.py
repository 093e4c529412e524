"""The train pipeline: one training job from its settings: data, fit, checkpoints and the MLflow record.

The job's settings (:class:`~flavortag.training.settings.TrainJob`) are
parsed once by the app; :mod:`flavortag.training` is this pipeline's library.

Before any data is read or MLflow run opened, the job checks its settings
(:mod:`.settings`), claims its run directory (:mod:`.owner`: no other live job
may use it) and decides which run it continues: ``trainer.resume`` refuses a
checkpoint of another run or model, and a run of this directory whose job died
before its first checkpoint is marked KILLED in MLflow (with a message) instead
of being left RUNNING. With ``data.on_error=skip`` the events the readers
dropped are logged with the run: metric ``data/skipped/<reason>`` per reason,
``data/skipped_events`` in total and the param ``n_skipped_events``.

Clusters: SIGTERM / SIGUSR1 while the torch loop runs stop the training at the next step with a
checkpoint (:mod:`.preempt`; exit status 75, the MLflow run marked KILLED with
tag ``flavortag.stopped``). Inside a SLURM job (``SLURM_JOB_ID`` set) the run
directory is keyed by the job id (``hydra.run.dir``), and a job that finds its
directory's ``last.pt`` with ``trainer.resume`` unset resumes it by itself:
a requeued job goes on where the stopped one ended, in the same MLflow run.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from flavortag import tracking
from flavortag.evaluation import evaluate_split
from flavortag.io.atomic import atomic_output
from flavortag.io.errors import ReadReport
from flavortag.models import count_parameters
from flavortag.safe_load import BDT_SUFFIX, MODEL_SUFFIXES, load_torch_file, save_bdt
from flavortag.slurm import job_key
from flavortag.training import preempt
from flavortag.training.bdt import fit_bdt
from flavortag.training.checkpoint import changed_settings, find_resume_checkpoint
from flavortag.training.data import SPLIT_CONTEXT, PreparedData, prepare_data
from flavortag.training.loop import EpochCallback, fit_torch
from flavortag.training.owner import OWNER_FILE, RunDirectory, RunDirectoryError
from flavortag.training.runtime import Distributed, check_device
from flavortag.training.settings import TrainerSettings, TrainJob

log = logging.getLogger("flavortag.train")


def log_samples(run: tracking.RunHandle, job: TrainJob, data: PreparedData) -> None:
    """Log each split of the training sample as an MLflow dataset input (name, digest, class counts)."""
    name = job.data.name or "data"
    for split, (digest, counts, source) in data.records.items():
        run.log_dataset_input(f"{name}/{split}", digest, counts, source, context=SPLIT_CONTEXT[split])
        if split == "test":  # what compare checks: runs scored on the same events
            run.set_tags({tracking.Tag.TEST_SAMPLE: f"{name}/test@{digest}"})


def skip_metrics(report: ReadReport | None) -> dict[str, float]:
    """The MLflow metrics of what the readers dropped: ``data/skipped/<reason>`` and totals (empty: none)."""
    if report is None or report.ok:
        return {}
    metrics = {f"data/skipped/{re.sub(r'[^0-9a-z]+', '_', str(kind).lower()).strip('_') or 'other'}":
               float(n) for kind, n in report.reasons.items()}
    metrics["data/skipped_events"] = float(report.n_dropped_events)
    metrics["data/skipped_lines"] = float(report.n_dropped_lines)
    return metrics


def _checkpoints(run_dir: Path) -> list[Path]:
    directory = run_dir / "checkpoints"
    return sorted(p for p in directory.glob("*") if p.suffix in MODEL_SUFFIXES) if directory.is_dir() else []


def _resume_point(job: TrainJob, run_dir: Path,
                  directory: RunDirectory | None) -> tuple[str | None, dict[str, tuple[Any, Any]]]:
    """The MLflow run id this job continues (None: a new run), after checking the checkpoint is ours.

    Also returns the settings that changed since the checkpoint (``{key: (old,
    new)}``, only with ``trainer.resume_allow_changes=true``). Refuses
    (:class:`RunDirectoryError`) a checkpoint of another run than the one the
    directory belongs to, a checkpoint outside this run's directory (a run is
    resumed only from its own directory, by its owner), a checkpoint of another
    model, a config that differs from the checkpoint's in anything but
    :data:`~flavortag.training.checkpoint.RESUME_FREE_KEYS` (unless allowed),
    and a new run in a directory that holds another run's checkpoints.
    """
    settings = job.trainer
    resume_path = find_resume_checkpoint(settings.resume, run_dir / "checkpoints") if job.is_torch else None
    owner = directory.previous if directory is not None else None
    if resume_path is None:
        if settings.resume == "auto":
            log.warning("trainer.resume=auto: no checkpoint in %s; starting a new run",
                        run_dir / "checkpoints")
        held = _checkpoints(run_dir)
        if owner is not None and held:
            raise RunDirectoryError(
                f"{run_dir} holds the checkpoints ({', '.join(p.name for p in held)}) of "
                f"{owner.describe()}; a new run here would overwrite them. Continue that run "
                "with trainer.resume=auto, or give the new run its own directory "
                "(hydra.run.dir=... or output_dir=...)")
        return None, {}
    blob = load_torch_file(resume_path)
    run_id = blob["train_state"].get("run_id")
    saved = blob.get("config") or {}
    home = resume_path.resolve().parent
    if run_id is not None and home != (run_dir / "checkpoints").resolve():
        raise RunDirectoryError(
            f"trainer.resume={settings.resume}: {resume_path} is a checkpoint of MLflow run {run_id} "
            f"({saved.get('run_name', '?')}), kept in {home.parent}; a run is resumed only from its "
            f"own directory: run with output_dir={home.parent} trainer.resume=auto, or start a new run")
    saved_model = str((saved.get("model") or {}).get("name", ""))
    if saved_model and saved_model != job.model_name:
        raise RunDirectoryError(
            f"trainer.resume={settings.resume}: {resume_path} is a checkpoint of a {saved_model} "
            f"model (run {saved.get('run_name', '?')}, MLflow run {run_id}), but this job trains "
            f"model={job.model_name}; resume with model={saved_model}, or start a new run in "
            "another directory")
    if owner is not None and run_id is not None and owner.run_id != run_id:
        raise RunDirectoryError(
            f"trainer.resume={settings.resume}: {resume_path} belongs to MLflow run {run_id}, but "
            f"{run_dir} belongs to {owner.describe()} (its {OWNER_FILE}); resuming would mix the "
            "two runs. Resume each run from its own directory, or start a new run in another one")
    changes = changed_settings(saved, dict(job.config))
    if changes and not settings.resume_allow_changes:
        listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items())
        raise RunDirectoryError(
            f"trainer.resume={settings.resume}: this job's config differs from the checkpoint's "
            f"{resume_path} in {len(changes)} key(s) ({listed}); resuming would train another model "
            "than the run records. Resume with the checkpoint's values, start a new run, or pass "
            "trainer.resume_allow_changes=true to resume with the new values (logged to the run)")
    return (None if run_id is None else str(run_id)), changes


def _log_resume_changes(run: tracking.RunHandle, changes: dict[str, tuple[Any, Any]]) -> None:
    """Record settings changed at a resume (``trainer.resume_allow_changes``): params are immutable."""
    log.warning("resuming with changed settings (trainer.resume_allow_changes=true): %s",
                "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items()))
    n = len([k for k in run.tags() if k.startswith(tracking.Tag.RESUME_CHANGES + ".")])
    run.log_dict({k: {"before": old, "after": new} for k, (old, new) in changes.items()},
                      f"resume_changes/{n}.json")
    run.set_tags({f"{tracking.Tag.RESUME_CHANGES}.{n}": ", ".join(changes)})


def _end_orphan(job: TrainJob, directory: RunDirectory | None, resume_run_id: str | None) -> None:
    """Mark the run of a job that died in this directory before its first checkpoint KILLED (not RUNNING)."""
    owner = directory.previous if directory is not None else None
    if owner is None or owner.run_id == resume_run_id:
        return
    assert directory is not None
    tracking.configure(job.tracking)
    note = (f"its job (pid {owner.pid} on {owner.host}) died without ending the run; "
            f"found by a later job in {directory.path}")
    if tracking.RunHandle(owner.run_id).end_orphaned(note) == "RUNNING":
        log.warning("MLflow run %s (%s) of %s was left RUNNING by a job that died before its "
                    "first checkpoint: marked KILLED; nothing to resume, starting a new run",
                    owner.run_id, owner.run_name, directory.path)


def _requeued_resume(job: TrainJob, run_dir: Path) -> TrainJob:
    """Inside a SLURM job with ``trainer.resume`` unset: ``resume=auto`` when the run directory has ``last.pt``."""
    key = job_key()
    if key is None or job.trainer.resume is not None or not job.is_torch:
        return job
    last = run_dir / "checkpoints" / "last.pt"
    if not last.exists():
        return job
    log.info("SLURM job %s: %s holds this job's checkpoint (requeued): resuming it", key, last)
    return job.with_resume("auto")


def _stopped(stopped: preempt.TrainingStopped, run_dir: Path) -> preempt.TrainingStopped:
    """The same stop, naming the checkpoint's full path."""
    return preempt.TrainingStopped(stopped.signum, stopped.epoch, stopped.step_in_epoch,
                                   str(run_dir / "checkpoints" / stopped.checkpoint))


def train(job: TrainJob, epoch_callback: EpochCallback | None = None,
          run_tags: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one training job; returns run id, history and test metrics.

    ``epoch_callback`` (torch models) gets each epoch's metrics (see
    :func:`~flavortag.training.loop.fit_torch`); ``run_tags`` are added to the
    MLflow run's tags (``mlflow.parentRunId`` makes it a child run).
    SIGTERM / SIGUSR1 while the torch loop runs: checkpoint at the next step and
    :class:`~flavortag.training.preempt.TrainingStopped` (see the module doc).
    """
    settings: TrainerSettings = job.trainer  # checked when the job was parsed: nothing read yet
    if not settings.distributed:
        check_device(settings.device)  # under DDP each rank picks its own device
    run_dir = job.output_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    is_torch = job.is_torch
    job = _requeued_resume(job, run_dir)
    settings = job.trainer
    if not is_torch and job.data.streaming:
        raise ValueError("model=bdt trains on the whole sample in memory: data.streaming=true "
                         "is for the torch models")
    dist = Distributed(settings.distributed, settings.backend)
    directory = RunDirectory.claim(run_dir) if dist.is_main else None
    try:
        # The run to log into: a fresh one, or the run of the checkpoint being resumed.
        resume_run_id, changes = (_resume_point(job, run_dir, directory) if dist.is_main else (None, {}))
        data = prepare_data(job, keep_events=job.evaluate_after_training)
        if is_torch and data.stream is None:
            # in memory the last incomplete batch is dropped: fewer events than a batch train nothing
            n_train = len(data.tensors["train"].labels) // dist.world_size
            if n_train < settings.batch_size:
                raise ValueError(
                    f"trainer.batch_size={settings.batch_size} is more than the {n_train} training "
                    f"events{' per rank' if dist.enabled else ''}: not one step would be taken; "
                    f"set trainer.batch_size to at most {n_train} (or train on more events)")
        if not dist.is_main:
            try:
                with preempt.handling():
                    model, state = fit_torch(job, data, run_dir, dist)
            except preempt.TrainingStopped as stopped:
                raise _stopped(stopped, run_dir) from None
            return {"run_id": None, "history": state.history, "metrics": {}}
        _end_orphan(job, directory, resume_run_id)
        with tracking.start_run(job.tracking, run_name=job.run_name, run_id=resume_run_id,
                                tags={tracking.Tag.KIND: tracking.Kind.TRAINING,
                                      tracking.Tag.MODEL: job.model_name,
                                      tracking.Tag.DATA: str(job.data.name or ""),
                                      **(run_tags or {})}) as run:
            if directory is not None:
                directory.record(run.run_id, job.run_name, job.model_name)
            if changes:
                _log_resume_changes(run, changes)
            if resume_run_id is None:
                run.log_config(job.config)
                log_samples(run, job, data)
                run.log_dict({"track": data.track_names, "event": data.event_names}, "features.json")
                run.log_dict(data.detector.to_dict(), "detector.json")
                run.log_params({f"n_{k}_events": n for k, n in data.n_events().items()})
                report = data.read_report
                run.log_params({"n_skipped_events": 0 if report is None else report.n_dropped_events})
                skipped = skip_metrics(report)
                if skipped:
                    run.log_metrics(skipped)
                    if report is not None:
                        run.log_dict({"reasons": dict(report.reasons), "examples": report.examples,
                                           "summary": report.summary()}, "data/skipped.json")
            if is_torch:
                try:
                    with preempt.handling():
                        model, state = fit_torch(job, data, run_dir, dist, run=run,
                                                 epoch_callback=epoch_callback)
                except preempt.TrainingStopped as stopped:
                    error = _stopped(stopped, run_dir)
                    run.end_stopped(str(error))
                    log.warning("%s", error)
                    raise error from None
                if resume_run_id is None:
                    run.log_params({"n_parameters": count_parameters(model)})
                for name in ("best.pt", "last.pt"):
                    path = run_dir / "checkpoints" / name
                    if path.exists():
                        run.log_artifact(path, artifact_path="checkpoints")
            else:
                model, state = fit_bdt(job, data, run)
                ckpt = run_dir / "checkpoints" / f"bdt{BDT_SUFFIX}"
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                with atomic_output(ckpt) as tmp:
                    save_bdt(model, tmp)
                run.log_artifact(ckpt, artifact_path="checkpoints")
            run.log_metrics({"best/val_loss": state.best_val_loss, "best/epoch": state.best_epoch})
            run.log_dict(state.history, "history.json")
            run.log_model(model, is_torch)
            metrics: dict[str, float] = {}
            if job.evaluate_after_training and "test" in data.tensors:
                metrics = evaluate_split(run, model, data, "test", job, run_dir, history=state.history)
            log.info("MLflow run %s (%s) in %s; the trainings with their key figures: %s", run.run_id,
                     job.run_name, tracking.tracking_uri(), tracking.trainings_view_url(run.experiment_id))
            return {"run_id": run.run_id, "history": state.history, "metrics": metrics}
    finally:
        if directory is not None:
            directory.release()
        dist.close()
