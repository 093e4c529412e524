"""The config schema of every Hydra app, checked before any data is read or any run is opened.

One dataclass per config group (``trainer``, ``data``, ``model`` per model, ...)
and one per app (:data:`APPS`). :func:`check_config` walks the composed config
of an app against its schema: an unknown key (typed wrongly, or appended with
``+``) is an error naming the closest valid key, a value of the wrong type, out
of its range or not among its choices is an error naming the key and what it
accepts, and each group's cross-field rules run (``embed_dim`` divisible by
``num_heads``, split fractions summing to 1). All raise
:class:`flavortag.errors.UsageError` (one line, exit status 2).
:func:`unknown_override` words Hydra's own refusal of a mistyped override
(``trainer.max_epoch=1``) the same way.

How to add a config key: give the dataclass of its group a field with the
YAML's default, typed with what the key accepts (``int``, ``float``, ``bool``,
``str``, ``Literal[...]`` for choices, ``X | None`` when null is allowed,
``list[X]``, another schema dataclass for a nested node); bounds go in
``field(default=..., metadata=bounds(ge=1))`` and apply to each number of a
list too; rules between fields go in the dataclass's ``check(values, key)``
(``values`` the node as a dict; raise ``ValueError`` with the message). A new
group: a new dataclass and a field of that type in each app that has the
group. A new model: a dataclass with ``name: Literal["<model>"]`` added to
:data:`ModelSchema`. A new app: its schema in :data:`APPS` and
``check_config(cfg, "<app>")`` first thing in its task function.
``tests/apps/test_config_schema.py`` composes every config option and checks it.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from flavortag.errors import UsageError

__all__ = ["APPS", "bounds", "check_config", "check_values", "unknown_override"]

Activation = Literal["relu", "gelu", "silu", "elu", "tanh", "leaky_relu"]
OnError = Literal["raise", "skip"]
Flavour = Literal["uds", "cc", "bb", "gg"]  # gg: process=zh only (checked by the generator)
PairFeature = Literal["ln_kt", "ln_z", "ln_delta", "ln_m2", "ln_dca"]
Pooling = Literal["sum", "mean", "max", "attention"]
#: A file name or glob pattern (a string, never a number).
FileName = typing.NewType("FileName", str)
#: Lists of files: one name or pattern, or a list of them (globs allowed everywhere).
Paths = FileName | list[FileName] | None


def bounds(ge: float | None = None, gt: float | None = None, le: float | None = None,
           lt: float | None = None) -> dict[str, float]:
    """Field metadata: the range of a number (or of each number of a list)."""
    return {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}


def _f(default: Any, **limits: float | None) -> Any:
    """A field with a default and bounds (``_f(20, ge=1)``); lists get copied defaults."""
    meta = bounds(**limits)
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


# ------------------------------------------------------------------ shared groups
@dataclass
class TrackingSchema:
    """``tracking/``: where runs are recorded."""

    tracking_uri: str = "sqlite:///mlflow.db"
    experiment_name: str = "flavortag"
    artifact_location: str | None = None


@dataclass
class PathsSchema:
    """``paths/``: output directories."""

    outputs: str = "outputs"
    multirun: str = "multirun"


@dataclass
class EvaluateSchema:
    """``evaluate/``: what an evaluation reports."""

    f_c: float | None = _f(None, ge=0.0, le=1.0)
    f_b: float | None = _f(None, ge=0.0, le=1.0)
    efficiencies: list[float] = _f([0.5, 0.6, 0.7, 0.8, 0.9], gt=0.0, lt=1.0)
    write_predictions: bool = True
    vs_variables_b_efficiency: float = _f(0.7, gt=0.0, lt=1.0)
    vs_variables_c_efficiency: float = _f(0.5, gt=0.0, lt=1.0)


@dataclass
class DetectorSchema:
    """``detector/``: the fields of :class:`flavortag.detector.DetectorModel` (its own checks apply)."""

    name: str = "ild"
    description: str | None = None
    source: str | None = None
    smear: bool = True
    cos_theta_max: float = 0.98
    pt_min_gev: float = _f(0.1, ge=0.0)
    track_efficiency: float = 0.99
    inv_pt_a_per_gev: float = _f(2.0e-5, ge=0.0)
    inv_pt_b: float = _f(1.0e-3, ge=0.0)
    d0_a_mm: float = _f(0.005, ge=0.0)
    d0_b_mm_gev: float = _f(0.010, ge=0.0)
    z0_a_mm: float = _f(0.005, ge=0.0)
    z0_b_mm_gev: float = _f(0.010, ge=0.0)
    beam_spot_mm: list[float] = _f([0.0, 0.0, 0.0], ge=0.0)
    ip_resolution_scale: float = 1.0
    momentum_resolution_scale: float = 1.0
    d0_bias_um: float = 0.0
    z0_bias_um: float = 0.0
    fake_tracks_per_event: float = 0.0
    fake_track_pt_gev: float = 0.5
    fake_track_ip_mm: float = 0.5

    @staticmethod
    def check(values: dict[str, Any], key: str) -> None:
        """The detector model's own range checks; a beam spot of three widths."""
        from flavortag.detector import DetectorModel

        if "beam_spot_mm" in values and len(values["beam_spot_mm"]) != 3:
            raise ValueError(f"{key}.beam_spot_mm must list three widths [x, y, z] in mm, "
                             f"not {values['beam_spot_mm']!r}")
        DetectorModel.from_config(values)


@dataclass
class SplitSchema:
    """``data.split``: fractions of the events for training, validation and test."""

    train: float = _f(0.7, gt=0.0, lt=1.0)
    val: float = _f(0.15, gt=0.0, lt=1.0)
    test: float = _f(0.15, ge=0.0, lt=1.0)

    @staticmethod
    def check(values: dict[str, Any], key: str) -> None:
        """The fractions sum to 1."""
        total = sum(float(values.get(name) or 0.0) for name in ("train", "val", "test"))
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"{key} fractions must sum to 1, not {total:g} ({values})")


@dataclass
class DataSchema:
    """``data/``: which events, how they are read and split (``configs/data/zpole_embedded.yaml``)."""

    name: str | None = None
    paths: Paths = None
    label: str | int | None = None
    label_rules: dict[str, str] | None = None
    on_error: OnError = "raise"
    max_events_per_class: int | None = _f(None, ge=1)
    split: SplitSchema = field(default_factory=SplitSchema)
    split_seed: int = _f(12345, ge=0)
    max_tracks: int = _f(48, ge=1)
    sort_by: str | None = "E"
    streaming: bool = False
    step_size: str | int = "16 MB"
    shuffle_buffer: int = _f(50000, ge=1)
    val_paths: Paths = None
    test_paths: Paths = None
    normalisation_events: int = _f(20000, ge=1)
    classes: list[str] | None = None  # null: uds, cc, bb; jets: [light, c, b] or [light, c, b, g]

    @staticmethod
    def check(values: dict[str, Any], key: str) -> None:
        """``classes`` is a known class scheme (events: uds, cc, bb; jets: light, c, b[, g])."""
        if values.get("classes") is not None:
            from flavortag.classes import class_scheme

            class_scheme(list(values["classes"]))


@dataclass
class FeaturesSchema:
    """``features/``: the input features (names or groups of :mod:`flavortag.features`; null: default)."""

    track: list[str] | None = None
    event: list[str] | None = None

    @staticmethod
    def check(values: dict[str, Any], key: str) -> None:
        """Every name is a feature or a group of its kind; a typo gets the closest name."""
        from flavortag import features

        tables = {"track": (features.TRACK_FEATURE_GROUPS, features.TRACK_FEATURE_SPECS),
                  "event": (features.EVENT_FEATURE_GROUPS, features.EVENT_FEATURE_SPECS)}
        for kind, (groups, specs) in tables.items():
            for i, name in enumerate(values.get(kind) or []):
                if name not in groups and name not in specs:
                    raise ValueError(f"unknown {kind} feature {key}.{kind}[{i}]={name!r}"
                                     f"{_did_you_mean(str(name), [*groups, *specs])}")


@dataclass
class AugmentSchema:
    """``augment/``: resolution augmentation (:class:`flavortag.augment.ResolutionAugmentation`)."""

    name: str = "none"
    description: str | None = None
    enabled: bool = False
    scale_min: float = 1.0
    scale_max: float = 2.0
    fraction: float = 1.0
    known_scale: bool = False
    seed: int = _f(0, ge=0)

    @staticmethod
    def check(values: dict[str, Any], key: str) -> None:
        """The augmentation's own checks (1 <= scale_min <= scale_max, fraction in [0, 1])."""
        from flavortag.augment import ResolutionAugmentation

        ResolutionAugmentation.from_config(values)


@dataclass
class TrainerSchema:
    """``trainer/``: the torch loop (ranges from :class:`flavortag.training.settings.TrainerSettings`)."""

    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "32"] = "auto"
    compile: bool = False
    bucketing: bool = True
    max_epochs: int = _f(20, ge=1)
    batch_size: int = _f(256, ge=1)
    eval_batch_size: int = _f(1024, ge=1)
    lr: float = _f(1e-3, gt=0.0)
    weight_decay: float = _f(1e-2, ge=0.0)
    warmup_fraction: float = _f(0.05, ge=0.0, lt=1.0)
    min_lr_ratio: float = _f(0.02, ge=0.0, le=1.0)
    grad_clip_norm: float | None = _f(1.0, ge=0.0)
    class_weights: bool = False
    early_stopping_patience: int = _f(5, ge=1)
    layout: Literal["padded", "ragged"] = "padded"
    num_workers: int | None = _f(0, ge=0)
    pin_memory: bool | Literal["auto"] = "auto"
    checkpoint_every_steps: int | None = _f(200, ge=0)
    resume: str | bool | None = None
    progress: bool = True
    distributed: bool = False
    backend: Literal["auto", "nccl", "gloo"] = "auto"
    save_rank_weights: bool = False
    max_steps_per_epoch: int | None = _f(None, ge=0)

    @staticmethod
    def check(values: dict[str, Any], key: str) -> None:
        """``device`` is auto, cpu, mps, cuda or cuda:<index>."""
        device = str(values.get("device", "auto"))
        if device not in ("auto", "cpu", "mps", "cuda") and not (
                device.startswith("cuda:") and device[5:].isdigit()):
            raise ValueError(f"{key}.device must be auto, cpu, cuda, cuda:<index> or mps, not {device!r}")


# ------------------------------------------------------------------ models (one per model=)
@dataclass
class MLPSchema:
    """``model=mlp``: the shallow network on the event features."""

    name: Literal["mlp"] = "mlp"
    hidden_dims: list[int] = _f([64, 64], ge=1)
    activation: Activation = "relu"
    dropout: float = _f(0.1, ge=0.0, lt=1.0)
    batchnorm: bool = False

    @staticmethod
    def check(values: dict[str, Any], key: str) -> None:
        """One or two hidden layers (a shallow baseline)."""
        if not 1 <= len(values.get("hidden_dims", [64])) <= 2:
            raise ValueError(f"{key}.hidden_dims must list 1 or 2 widths (a shallow baseline), "
                             f"not {values['hidden_dims']!r}")


@dataclass
class DeepSetsSchema:
    """``model=deepsets``."""

    name: Literal["deepsets"] = "deepsets"
    phi_dims: list[int] = _f([64, 64, 64], ge=1)
    rho_dims: list[int] = _f([64, 64], ge=1)
    pooling: Pooling | list[Pooling] = "sum"
    sum_scale: float = _f(0.05, gt=0.0)
    attention_heads: int = _f(4, ge=1)
    activation: Activation = "relu"
    dropout: float = _f(0.0, ge=0.0, lt=1.0)
    use_event_features: bool = False

    @staticmethod
    def check(values: dict[str, Any], key: str) -> None:
        """A phi network; attention pooling heads divide its last width."""
        phi = values.get("phi_dims", [64])
        if not phi:
            raise ValueError(f"{key}.phi_dims must list at least one width")
        pooling = values.get("pooling", [])
        pooling = [pooling] if isinstance(pooling, str) else pooling
        if not pooling:
            raise ValueError(f"{key}.pooling must list at least one of sum, mean, max, attention")
        heads = int(values.get("attention_heads", 4))
        if "attention" in pooling and phi[-1] % heads:
            raise ValueError(f"{key}.attention_heads={heads} must divide {key}.phi_dims[-1]={phi[-1]}")


@dataclass
class TransformerSchema:
    """``model=transformer``."""

    name: Literal["transformer"] = "transformer"
    embed_dim: int = _f(64, ge=1)
    num_heads: int = _f(4, ge=1)
    depth: int = _f(3, ge=0)
    class_depth: int = _f(2, ge=1)
    ffn_ratio: float = _f(4.0, gt=0.0)
    dropout: float = _f(0.1, ge=0.0, lt=1.0)
    attention_dropout: float = _f(0.0, ge=0.0, lt=1.0)
    activation: Activation = "gelu"
    embed_hidden: list[int] = _f([64], ge=1)
    use_pair_features: bool = True
    pair_features: list[PairFeature] = _f(["ln_kt", "ln_z", "ln_delta", "ln_m2", "ln_dca"])
    pair_hidden: list[int] = _f([32, 32], ge=1)
    use_event_features: bool = False

    @staticmethod
    def check(values: dict[str, Any], key: str) -> None:
        """``num_heads`` divides ``embed_dim``; pair features when they are used."""
        dim, heads = int(values.get("embed_dim", 64)), int(values.get("num_heads", 4))
        if dim % heads:
            raise ValueError(f"{key}.num_heads={heads} must divide {key}.embed_dim={dim} "
                             f"(e.g. num_heads={_divisor_near(dim, heads)})")
        if values.get("use_pair_features", True) and not values.get("pair_features", [None]):
            raise ValueError(f"{key}.pair_features must not be empty with {key}.use_pair_features=true")


@dataclass
class BDTSchema:
    """``model=bdt``: keyword arguments of scikit-learn's ``HistGradientBoostingClassifier``."""

    name: Literal["bdt"] = "bdt"
    description: str | None = None
    loss: Literal["log_loss"] = "log_loss"
    learning_rate: float = _f(0.1, gt=0.0)
    max_iter: int = _f(300, ge=1)
    max_leaf_nodes: int | None = _f(31, ge=2)
    max_depth: int | None = _f(None, ge=1)
    min_samples_leaf: int = _f(20, ge=1)
    l2_regularization: float = _f(0.0, ge=0.0)
    max_features: float = _f(1.0, gt=0.0, le=1.0)
    max_bins: int = _f(255, ge=2, le=255)
    categorical_features: Any = None
    monotonic_cst: Any = None
    interaction_cst: Any = None
    warm_start: bool = False
    early_stopping: bool | Literal["auto"] = True
    scoring: str | None = "loss"
    validation_fraction: float | None = _f(0.1, gt=0.0, lt=1.0)
    n_iter_no_change: int = _f(10, ge=1)
    tol: float = _f(1e-7, ge=0.0)
    verbose: int = 0
    random_state: int | None = None
    class_weight: Any = None


#: ``model``: the schema is chosen by the node's ``name``.
ModelSchema = MLPSchema | DeepSetsSchema | TransformerSchema | BDTSchema


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
    seed: int = _f(42, ge=0)
    run_name: str = "mlp"
    evaluate_after_training: bool = True
    output_dir: str | None = None


Calibration = str | None  # null | auto | a calibration file


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
    formats: list[Literal["parquet", "root"]] = _f(["parquet", "root"])
    batch_size: int = _f(2048, ge=1)
    calibration: Calibration = None
    calibration_events: int = _f(2_000_000, ge=1)
    step_size: int = _f(50_000, ge=1)


@dataclass
class CompareApp:
    """``flavortag compare`` (``configs/compare.yaml``)."""

    tracking: TrackingSchema = field(default_factory=TrackingSchema)
    evaluate: EvaluateSchema = field(default_factory=EvaluateSchema)
    paths: PathsSchema = field(default_factory=PathsSchema)
    runs: list[str] | None = None
    experiment_name: str = "flavortag"
    reference: str | None = None
    prefix: str = "test/"
    output_dir: str | None = None


@dataclass
class GenerateApp:
    """``flavortag generate`` (``configs/generate.yaml``)."""

    detector: DetectorSchema = field(default_factory=DetectorSchema)
    paths: PathsSchema = field(default_factory=PathsSchema)
    n_events: int = _f(1000, ge=1)
    flavours: str | list[Flavour] = _f(["uds", "cc", "bb"])  # a list, or one string "uds,cc"
    sqrt_s: float = _f(91.188, gt=0.0)
    seed: int = _f(1, ge=0)
    format: Literal["parquet", "root", "text"] = "parquet"
    out: str = "samples/generated"
    workers: int | None = _f(None, ge=1)
    chunk_size: int = _f(500, ge=1)
    isr: bool = False
    pythia: list[str] = _f([])
    progress: bool = True
    start_method: Literal["spawn", "forkserver", "fork"] = "spawn"
    process: Literal["qq", "zh"] = "qq"
    level: Literal["event", "jet"] = "event"
    n_jets: int = _f(2, ge=1)
    shard: int = _f(0, ge=0)     # 0 <= shard < n_shards (checked by the app with its hint)
    n_shards: int = _f(1, ge=1)

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
    inputs: Paths = _f([])
    out: str = "calibration.json"
    on_error: OnError = "raise"
    log_to_mlflow: bool = True


@dataclass
class RobustnessApp:
    """``flavortag robustness`` (``configs/robustness.yaml``)."""

    tracking: TrackingSchema = field(default_factory=TrackingSchema)
    runs: list[str] = _f([])
    samples: list[Any] = _f([])
    calibration: Literal["none", "auto", "both"] = "none"
    calibration_min_tracks: int = _f(2000, ge=1)
    ablations: list[Literal["impact_parameters", "kinematics", "angles"]] = _f([])
    ablation_epochs: int | None = _f(None, ge=1)
    max_events_per_class: int | None = _f(None, ge=1)
    run_name: str = "robustness"
    output_dir: str | None = None


#: The schema of each Hydra app, by command name.
@dataclass
class TuneSamplerSchema:
    """``tune.yaml`` ``sampler``: optuna's TPE sampler."""

    n_startup_trials: int = _f(10, ge=0)


@dataclass
class TunePrunerSchema:
    """``tune.yaml`` ``pruner``: which trials stop early."""

    type: Literal["median", "hyperband", "none"] = "median"
    n_startup_trials: int = _f(5, ge=0)
    n_warmup_steps: int = _f(1, ge=0)
    min_resource: int = _f(1, ge=1)
    reduction_factor: int = _f(3, ge=2)


@dataclass
class TuneHeartbeatSchema:
    """``tune.yaml`` ``heartbeat``: how dead workers' trials are found."""

    interval_s: float | None = _f(60, gt=0.0)
    grace_s: float = _f(180, gt=0.0)
    max_retry: int = _f(3, ge=0)


@dataclass
class TuneApp:
    """``flavortag tune`` (``configs/tune.yaml``); the search space is checked by :mod:`flavortag.tuning`."""

    hparams_search: dict[str, Any] = _f({})
    paths: PathsSchema = field(default_factory=PathsSchema)
    study_name: str = "transformer"
    storage: str = "sqlite:///optuna.db"
    n_trials: int = _f(20, ge=1)
    overrides: list[str] = _f([])
    seed: int = _f(42, ge=0)
    sampler: TuneSamplerSchema = field(default_factory=TuneSamplerSchema)
    pruner: TunePrunerSchema = field(default_factory=TunePrunerSchema)
    heartbeat: TuneHeartbeatSchema = field(default_factory=TuneHeartbeatSchema)
    wait_for_others: bool = True
    output_dir: str = "outputs/tune"
    preset_dir: str | None = None
    worker: int | None = None  # `-m +worker='range(8)'`: N workers of one study through a launcher


APPS: dict[str, type] = {
    "train": TrainApp, "evaluate": EvaluateApp, "predict": PredictApp, "compare": CompareApp,
    "generate": GenerateApp, "calibrate": CalibrateApp, "robustness": RobustnessApp, "tune": TuneApp,
}


# ------------------------------------------------------------------ the checker
class _Mismatch(Exception):
    """A value that does not fit a type (the words say what would)."""


def _did_you_mean(name: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _divisor_near(n: int, k: int) -> int:
    return min((d for d in range(1, n + 1) if n % d == 0), key=lambda d: (abs(d - k), d))


def _hints(tp: Any) -> dict[str, Any]:
    return typing.get_type_hints(tp)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _words(tp: Any, meta: Mapping[str, float] | None = None) -> str:
    """What a type accepts, in words (``"an integer >= 1"``, ``"one of a, b"``)."""
    meta = meta or {}
    low = ("gt", "(") if "gt" in meta else ("ge", "[") if "ge" in meta else None
    high = ("lt", ")") if "lt" in meta else ("le", "]") if "le" in meta else None
    if low and high:  # an interval, as the trainer's own messages write it: "in [0, 1)"
        limits = f"in {low[1]}{meta[low[0]]:g}, {meta[high[0]]:g}{high[1]}"
    else:
        limits = " and ".join(f"{op} {meta[k]:g}" for k, op in (("gt", ">"), ("ge", ">="), ("lt", "<"),
                                                                 ("le", "<=")) if k in meta)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return "anything"
    if _is_union(tp):
        parts = [_words(a, meta) for a in args if a is not type(None)]
        text = " or ".join(parts)
        return f"{text} or null" if type(None) in args else text
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is list:
        return f"a list, each {_words(args[0], meta)}" if args else "a list"
    if origin is dict:
        return "a mapping"
    if tp is bool:
        return "true or false"
    if tp is int:
        return f"an integer {limits}".rstrip()
    if tp is float:
        return f"a number {limits}".rstrip()
    if tp is str:
        return "a string"
    if tp is FileName:
        return "a file name or pattern"
    if dataclasses.is_dataclass(tp):
        return "a config node (key: value, ...)"
    return getattr(tp, "__name__", str(tp))


def _in_bounds(number: float, meta: Mapping[str, float]) -> bool:
    if number != number:  # NaN
        return False
    return not (("ge" in meta and number < meta["ge"]) or ("gt" in meta and number <= meta["gt"])
                or ("le" in meta and number > meta["le"]) or ("lt" in meta and number >= meta["lt"]))


def _fits(value: Any, tp: Any, key: str, meta: Mapping[str, float]) -> None:
    """Raise :class:`_Mismatch` unless ``value`` fits ``tp`` (and ``meta``'s bounds); recurse into nodes."""
    if tp is Any:
        return
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if _is_union(tp):
        if value is None:
            if type(None) in args:
                return
            raise _Mismatch
        nodes = [a for a in args if dataclasses.is_dataclass(a)]
        if nodes and isinstance(value, dict):
            _check_node(value, _choose(nodes, value, key), key)
            return
        for option in args:
            if option is type(None):
                continue
            try:
                _fits(value, option, key, meta)
                return
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        if isinstance(value, bool) and not any(isinstance(a, bool) for a in args):
            raise _Mismatch
        if value in args or (not isinstance(value, bool) and str(value) in [str(a) for a in args]):
            return
        raise _Mismatch
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _Mismatch
        _check_node(value, tp, key)  # type: ignore[arg-type]
        return
    if origin is list:
        if not isinstance(value, list):
            raise _Mismatch
        for i, item in enumerate(value):
            try:
                _fits(item, args[0] if args else Any, f"{key}[{i}]", meta)
            except _Mismatch:
                raise UsageError(f"{key}[{i}] must be {_words(args[0], meta)}, not {item!r}") from None
        return
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        return
    if value is None:
        raise _Mismatch
    if tp is bool:
        if not isinstance(value, bool):
            raise _Mismatch
        return
    if tp is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise _Mismatch
        return
    if tp is FileName:
        if not isinstance(value, str):
            raise _Mismatch
        return
    if tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Mismatch
        if tp is int and not float(value).is_integer():
            raise _Mismatch
        if not _in_bounds(float(value), meta):
            raise _Mismatch
        return
    raise TypeError(f"schema type {tp!r} of {key} is not supported")  # a schema bug, not the user's


def _choose(nodes: list[Any], value: dict[str, Any], key: str) -> Any:
    """The dataclass among ``nodes`` whose ``name`` literal is ``value["name"]``."""
    names = {typing.get_args(_hints(n)["name"])[0]: n for n in nodes}
    name = value.get("name")
    if name not in names:
        raise UsageError(f"{key}.name must be one of {', '.join(names)}, not {name!r} "
                         f"(choose the group, e.g. {key}={next(iter(names))})")
    return names[name]


def _check_node(values: dict[str, Any], schema: Any, key: str) -> None:
    """Check a config node (a dict) against a schema dataclass; ``key`` is its dotted name ('' at the top)."""
    hints = _hints(schema)
    known = [f.name for f in dataclasses.fields(schema)]
    prefix = f"{key}." if key else ""
    for name in values:
        if name not in hints:
            close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
            if close:
                raise UsageError(f"unknown key {prefix}{name}; did you mean {prefix}{close[0]}?")
            where = f" (model={values.get('name')})" if key == "model" else ""
            raise UsageError(f"unknown key {prefix}{name}; the keys of {key or 'the config'}{where} "
                             f"are {', '.join(known)}")
    for f in dataclasses.fields(schema):
        if f.name not in values:
            continue
        value, tp = values[f.name], hints[f.name]
        if isinstance(value, str) and value == "???":  # a mandatory value not given: the app says so
            continue
        try:
            _fits(value, tp, f"{prefix}{f.name}", f.metadata)
        except _Mismatch:
            raise UsageError(f"{prefix}{f.name} must be {_words(tp, f.metadata)}, not {value!r}") from None
    check = getattr(schema, "check", None)
    if check is not None:
        try:
            check(values, key)
        except UsageError:
            raise
        except (ValueError, TypeError) as err:
            raise UsageError(str(err)) from None


def check_values(values: Mapping[str, Any], app: str) -> None:
    """Check a plain config dict (resolved) against the schema of ``app``; :class:`UsageError` if bad."""
    _check_node(dict(values), APPS[app], "")


def check_config(cfg: Any, app: str) -> None:
    """Check an app's composed config (a ``DictConfig``) before it runs; :class:`UsageError` if bad.

    Interpolations are resolved first (an unresolvable one is OmegaConf's
    error, also a usage error); a mandatory value not given (``???``) is left
    for the app to ask for.
    """
    from omegaconf import OmegaConf

    values = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert isinstance(values, dict)
    check_values({str(k): v for k, v in values.items()}, app)


# ------------------------------------------------------------------ Hydra's refusal of an override
def _flat_keys(node: Any, prefix: str = "") -> list[str]:
    keys: list[str] = []
    if isinstance(node, Mapping):
        for k, v in node.items():
            keys.append(f"{prefix}{k}")
            keys += _flat_keys(v, f"{prefix}{k}.")
    return keys


def _schema_keys(schema: Any, prefix: str = "") -> list[str]:
    keys: list[str] = []
    hints = _hints(schema)
    for f in dataclasses.fields(schema):
        keys.append(f"{prefix}{f.name}")
        tp = hints[f.name]
        nodes = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)] if _is_union(tp) else (
            [tp] if dataclasses.is_dataclass(tp) else [])
        for node in nodes:
            keys += [k for k in _schema_keys(node, f"{prefix}{f.name}.") if k not in keys]
    return keys


def _composed_keys(app: str, overrides: list[str]) -> list[str] | None:
    """The keys of ``app``'s config composed with ``overrides`` (None if it does not compose)."""
    try:
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra
        from omegaconf import OmegaConf

        from flavortag.apps import CONFIG_DIR

        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name=app, overrides=overrides)
        return _flat_keys(OmegaConf.to_container(cfg, resolve=False))
    except Exception:  # noqa: BLE001 - a sweep or another bad override: fall back to the schema
        return None


def unknown_override(app: str, full_key: str, overrides: Sequence[str]) -> str:
    """The message for an override of a key the config lacks: ``unknown key K; did you mean K2?``.

    The candidates are the keys of the config composed with the other
    overrides (so ``model.`` keys are those of the chosen model), else every
    key of the app's schema.
    """
    others = [o for o in overrides if "=" in o and not o.startswith("-")
              and o.split("=", 1)[0].lstrip("+~") != full_key]
    keys = _composed_keys(app, others) if app in APPS else None
    if keys is None:
        keys = _schema_keys(APPS[app]) if app in APPS else []
    parent, _, leaf = full_key.rpartition(".")
    siblings = [k.rpartition(".")[2] for k in keys if k.rpartition(".")[0] == parent]
    close = difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.6)
    if close:
        return f"unknown key {full_key}; did you mean {parent + '.' if parent else ''}{close[0]}?"
    close = difflib.get_close_matches(full_key, keys, n=1, cutoff=0.6)
    if close:
        return f"unknown key {full_key}; did you mean {close[0]}?"
    listed = ", ".join(sorted(siblings)) if siblings else "none"
    return f"unknown key {full_key}; the keys of {parent or 'the config'} are {listed}"
