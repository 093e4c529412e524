"""Hyperparameter search: the library of the tune pipeline (:mod:`flavortag.pipelines.tune`).

:mod:`.space` (search spaces: parsed, checked, sampled), :mod:`.storage`
(optuna storages with heartbeats) and :mod:`.study` (a worker's settings,
the study's budget, optuna objects, the trial table). The app
(:mod:`flavortag.apps.tune`) composes the trials' train configs with Hydra's
compose API and writes the best trial as an experiment preset
(:mod:`flavortag.apps.tune_preset`); optuna is driven by the pipeline, not
through Hydra's optuna sweeper plugin (which pins optuna 2).
"""

from flavortag.tuning.space import Param, SearchSpace, format_override
from flavortag.tuning.study import StudyResult, TuneSettings, slots_used, trial_table

__all__ = ["Param", "SearchSpace", "StudyResult", "TuneSettings", "format_override", "slots_used", "trial_table"]
