"""The MLflow tag names flavortag sets and reads: the one place they are spelled."""

from __future__ import annotations


class Tag:
    """The MLflow tag names flavortag sets and reads (the one place they are spelled)."""

    KIND = "flavortag.kind"  # evaluation, comparison, calibration, robustness[-child]; unset: training
    MODEL = "flavortag.model"
    DATA = "flavortag.data"
    GIT_COMMIT = "flavortag.git_commit"
    ORPHANED = "flavortag.orphaned"
    RESUME_CHANGES = "flavortag.resume_changes"  # + ".<n>", one per resume with changed settings
    STUDY = "flavortag.study"
    ROLE = "flavortag.role"
    TRIAL = "flavortag.trial"
    TRIAL_STATE = "flavortag.trial_state"
    STOPPED = "flavortag.stopped"  # a job stopped by a signal (SIGTERM / SIGUSR1)
    ABLATION_OF = "flavortag.ablation_of"  # a tagger retrained without a feature group: the run it came from
    RETRY_OF = "flavortag.retry_of"  # a trial retried after its worker died: the trial it retries
    BEST_TRIAL = "flavortag.best_trial"
    BEST_RUN_ID = "flavortag.best_run_id"
    PARENT_RUN = "mlflow.parentRunId"
    RUN_NAME = "mlflow.runName"
