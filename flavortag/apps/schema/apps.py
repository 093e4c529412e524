"""The schema of each Hydra app (:data:`APPS`), built from the group schemas."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from flavortag.schema.fields import (
    Flavour,
    OnError,
    Paths,
    schema_field,
)
from flavortag.schema.groups import (
    AugmentSchema,
    DataSchema,
    DetectorSchema,
    EvaluateSchema,
    FeaturesSchema,
    MLPSchema,
    ModelSchema,
    PathsSchema,
    TrackingSchema,
    TrainerSchema,
)


# ------------------------------------------------------------------ apps
@dataclass
class TrainApp:
    """``flavortag train`` (``configs/train.yaml``)."""

    data: DataSchema = field(default_factory=DataSchema)
    features: FeaturesSchema = field(default_factory=FeaturesSchema)
    detector: DetectorSchema = field(default_factory=DetectorSchema)
    augment: AugmentSchema = field(default_factory=AugmentSchema)
    model: ModelSchema = field(default_factory=MLPSchema)
    trainer: TrainerSchema = field(default_factory=TrainerSchema)
    tracking: TrackingSchema = field(default_factory=TrackingSchema)
    evaluate: EvaluateSchema = field(default_factory=EvaluateSchema)
    paths: PathsSchema = field(default_factory=PathsSchema)
    seed: int = schema_field(42, ge=0)
    run_name: str = "mlp"
    evaluate_after_training: bool = True
    output_dir: str | None = None


Calibration = str | None  # null | one of calibration.CALIBRATION_SPECS (auto, function, core, scale) | a file


@dataclass
class EvaluateApp:
    """``flavortag evaluate`` (``configs/evaluate.yaml``)."""

    tracking: TrackingSchema = field(default_factory=TrackingSchema)
    evaluate: EvaluateSchema = field(default_factory=EvaluateSchema)
    paths: PathsSchema = field(default_factory=PathsSchema)
    data: DataSchema = field(default_factory=DataSchema)
    run_id: str | None = None
    checkpoint: str | None = None
    calibration: Calibration = None
    split: Literal["test", "all"] = "test"
    output_dir: str | None = None
    combine_jets: bool = False


@dataclass
class PredictApp:
    """``flavortag predict`` (``configs/predict.yaml``)."""

    tracking: TrackingSchema = field(default_factory=TrackingSchema)
    evaluate: EvaluateSchema = field(default_factory=EvaluateSchema)
    paths: PathsSchema = field(default_factory=PathsSchema)
    run_id: str | None = None
    checkpoint: str | None = None
    inputs: Paths = None
    out_dir: str | None = None
    formats: list[Literal["parquet", "root"]] = schema_field(["parquet", "root"])
    batch_size: int = schema_field(2048, ge=1)
    calibration: Calibration = None
    calibration_events: int = schema_field(2_000_000, ge=1)
    step_size: int = schema_field(50_000, ge=1)


@dataclass
class CompareApp:
    """``flavortag compare`` (``configs/compare.yaml``)."""

    tracking: TrackingSchema = field(default_factory=TrackingSchema)
    evaluate: EvaluateSchema = field(default_factory=EvaluateSchema)
    paths: PathsSchema = field(default_factory=PathsSchema)
    runs: list[str] | None = None
    filter: str | None = None
    mixed_samples: Literal["refuse", "warn"] = "refuse"
    experiment_name: str = "flavortag"
    reference: str | None = None
    prefix: str = "test/"
    output_dir: str | None = None


@dataclass
class GenerateApp:
    """``flavortag generate`` (``configs/generate.yaml``)."""

    detector: DetectorSchema = field(default_factory=DetectorSchema)
    paths: PathsSchema = field(default_factory=PathsSchema)
    n_events: int = schema_field(1000, ge=1)
    flavours: str | list[Flavour] = schema_field(["uds", "cc", "bb"])  # a list, or one string "uds,cc"
    sqrt_s: float = schema_field(91.188, gt=0.0)
    seed: int = schema_field(1, ge=0)
    format: Literal["parquet", "root", "text"] = "parquet"
    out: str = "samples/generated"
    workers: int | None = schema_field(None, ge=1)
    chunk_size: int = schema_field(500, ge=1)
    isr: bool = False
    pythia: list[str] = schema_field([])
    progress: bool = True
    start_method: Literal["spawn", "forkserver", "fork"] = "spawn"
    process: Literal["qq", "zh"] = "qq"
    level: Literal["event", "jet"] = "event"
    n_jets: int = schema_field(2, ge=1)
    particle_flow: bool | None = None  # null: on for level=jet; the tracks' PID and the neutrals
    shard: int = schema_field(0, ge=0)     # 0 <= shard < n_shards (checked by the app with its hint)
    n_shards: int = schema_field(1, ge=1)

    @staticmethod
    def check(values: dict[str, Any], key: str) -> None:
        """At least one flavour; a string of comma-separated flavours (``flavours='uds,cc'``) is fine."""
        flavours = values.get("flavours")
        names = [f.strip() for f in flavours.split(",") if f.strip()] if isinstance(flavours, str) else flavours
        if isinstance(names, list) and not names:
            raise ValueError("flavours must list at least one of uds, cc, bb")
        for name in names or []:
            if name not in ("uds", "cc", "bb", "gg"):
                raise ValueError(f"flavours must be uds, cc, bb (or gg with process=zh), not {name!r}")


@dataclass
class CalibrateApp:
    """``flavortag calibrate`` (``configs/calibrate.yaml``)."""

    detector: DetectorSchema = field(default_factory=DetectorSchema)
    tracking: TrackingSchema = field(default_factory=TrackingSchema)
    inputs: Paths = schema_field([])
    out: str = "calibration.json"
    mode: Literal["function", "scale"] = "function"
    on_error: OnError = "raise"
    log_to_mlflow: bool = True


@dataclass
class RobustnessApp:
    """``flavortag robustness`` (``configs/robustness.yaml``)."""

    tracking: TrackingSchema = field(default_factory=TrackingSchema)
    runs: list[str] = schema_field([])
    samples: list[Any] = schema_field([])
    calibration: Literal["none", "scale", "function", "auto", "both", "all"] = "none"  # = robustness.CALIBRATION_MODES + _GROUPS
    calibration_min_tracks: int = schema_field(2000, ge=1)
    ceilings: list[str] = schema_field([])  # <sample>:<run id>
    ablations: list[Literal["impact_parameters", "kinematics", "angles"]] = schema_field([])
    ablation_epochs: int | None = schema_field(None, ge=1)
    max_events_per_class: int | None = schema_field(None, ge=1)
    run_name: str = "robustness"
    output_dir: str | None = None


#: The schema of each Hydra app, by command name.
@dataclass
class TuneSamplerSchema:
    """``tune.yaml`` ``sampler``: optuna's TPE sampler."""

    n_startup_trials: int = schema_field(10, ge=0)


@dataclass
class TunePrunerSchema:
    """``tune.yaml`` ``pruner``: which trials stop early."""

    type: Literal["median", "hyperband", "none"] = "median"
    n_startup_trials: int = schema_field(5, ge=0)
    n_warmup_steps: int = schema_field(1, ge=0)
    min_resource: int = schema_field(1, ge=1)
    reduction_factor: int = schema_field(3, ge=2)


@dataclass
class TuneHeartbeatSchema:
    """``tune.yaml`` ``heartbeat``: how dead workers' trials are found."""

    interval_s: float | None = schema_field(60, gt=0.0)
    grace_s: float = schema_field(180, gt=0.0)
    max_retry: int = schema_field(3, ge=0)


@dataclass
class TuneApp:
    """``flavortag tune`` (``configs/tune.yaml``); the search space is checked by :mod:`flavortag.tuning`."""

    hparams_search: dict[str, Any] = schema_field({})
    paths: PathsSchema = field(default_factory=PathsSchema)
    study_name: str = "transformer"
    storage: str = "sqlite:///optuna.db"
    n_trials: int = schema_field(20, ge=1)
    overrides: list[str] = schema_field([])
    seed: int = schema_field(42, ge=0)
    sampler: TuneSamplerSchema = field(default_factory=TuneSamplerSchema)
    pruner: TunePrunerSchema = field(default_factory=TunePrunerSchema)
    heartbeat: TuneHeartbeatSchema = field(default_factory=TuneHeartbeatSchema)
    wait_for_others: bool = True
    robustness_weight: float = schema_field(0.0, ge=0.0)
    output_dir: str = "outputs/tune"
    preset_dir: str | None = None
    worker: int | None = None  # `-m +worker='range(8)'`: N workers of one study through a launcher


APPS: dict[str, type] = {
    "train": TrainApp, "evaluate": EvaluateApp, "predict": PredictApp, "compare": CompareApp,
    "generate": GenerateApp, "calibrate": CalibrateApp, "robustness": RobustnessApp, "tune": TuneApp,
}
