"""The MLflow tag names flavortag sets and reads: the one place they are spelled."""

from __future__ import annotations


class Tag:
    """The MLflow tag names flavortag sets and reads (the one place they are spelled)."""

    KIND = "flavortag.kind"  # one of :class:`Kind` (runs from before it was set: a training when unset)
    MODEL = "flavortag.model"
    DATA = "flavortag.data"
    TEST_SAMPLE = "flavortag.test_sample"  # digest of the events a run was scored on (its test split)
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
    LOWER_LIMITS = "flavortag.lower_limits"  # the logged metrics that are 95% CL lower limits
    NOTE = "mlflow.note.content"  # the run's description in the MLflow UI
    PARENT_RUN = "mlflow.parentRunId"
    RUN_NAME = "mlflow.runName"


class Kind:
    """The values of :attr:`Tag.KIND`: what made a run. Only trainings are compared implicitly."""

    TRAINING = "training"
    STUDY = "study"  # a tune study's parent run
    TRIAL = "trial"  # a tune trial (a child of its study)
    ABLATION = "ablation"  # a tagger retrained without a feature group (robustness)
    EVALUATION = "evaluation"  # an evaluate-only run (a child of the training, or of a checkpoint)
    COMPARISON = "comparison"
    CALIBRATION = "calibration"
    ROBUSTNESS = "robustness"
    ROBUSTNESS_CHILD = "robustness-child"


#: Kinds whose runs go to their own experiment, ``<experiment>-analyses``, away from the trainings.
ANALYSIS_KINDS: frozenset[str] = frozenset({Kind.COMPARISON, Kind.CALIBRATION, Kind.ROBUSTNESS})
ANALYSES_SUFFIX = "-analyses"


def is_training(tags: dict[str, str]) -> bool:
    """True for the tags of a training run (not a trial, ablation, evaluation, ...; untagged old runs by their tags)."""
    kind = tags.get(Tag.KIND)
    if kind is not None:
        return kind == Kind.TRAINING and Tag.ABLATION_OF not in tags
    return not any(k in tags for k in (Tag.STUDY, Tag.TRIAL, Tag.ABLATION_OF, Tag.PARENT_RUN))
