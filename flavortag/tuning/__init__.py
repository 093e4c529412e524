"""Hyperparameter search: what ``flavortag tune`` runs (the app is :mod:`flavortag.apps.tune`).

:mod:`.space` (search spaces: parsed, checked, sampled), :mod:`.storage`
(optuna storages with heartbeats), :mod:`.study` (one worker of a shared
study, its trials and MLflow runs) and :mod:`.preset` (the best trial as an
experiment preset). Optuna is driven from here through Hydra's compose API,
not through Hydra's optuna sweeper plugin (which pins optuna 2).
"""

from flavortag.tuning.space import Param, SearchSpace, format_override
from flavortag.tuning.study import StudyResult, TuneSettings, run_worker, slots_used, trial_table

__all__ = ["Param", "SearchSpace", "StudyResult", "TuneSettings", "format_override", "run_worker",
           "slots_used", "trial_table"]
