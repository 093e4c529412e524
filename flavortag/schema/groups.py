"""The schemas of the config groups shared by the apps, and one per model (``model=``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

from flavortag.schema.fields import (
    Activation,
    OnError,
    PairFeature,
    Paths,
    Pooling,
    did_you_mean,
    divisor_near,
    schema_field,
)

#: Where runs are recorded unless told otherwise: an SQLite store in the working directory.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
#: The model name of the gradient-boosted trees (scikit-learn, not a torch model).
BDT: Final = "bdt"


def is_bdt(model_name: object) -> bool:
    """True for the BDT's model name (``model=bdt``): the one model that is not a torch network."""
    return str(model_name) == BDT


# ------------------------------------------------------------------ shared groups
@dataclass(frozen=True)
class TrackingSchema:
    """``tracking/``: where runs are recorded (also the typed settings, :data:`TrackingSettings`)."""

    tracking_uri: str | None = DEFAULT_TRACKING_URI
    experiment_name: str = "flavortag"
    artifact_location: str | None = None

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | TrackingSchema | None) -> TrackingSchema:
        """A ``tracking`` node as settings (missing keys: the defaults; null URI: the environment's)."""
        if isinstance(node, TrackingSchema):
            return node
        given = dict(node or {})
        return cls(tracking_uri=given.get("tracking_uri", DEFAULT_TRACKING_URI),
                   experiment_name=str(given.get("experiment_name") or "flavortag"),
                   artifact_location=given.get("artifact_location"))


#: The typed ``tracking`` settings: the schema's dataclass itself (three plain fields).
TrackingSettings = TrackingSchema


@dataclass
class PathsSchema:
    """``paths/``: output directories."""

    outputs: str = "outputs"
    multirun: str = "multirun"


@dataclass
class EvaluateSchema:
    """``evaluate/``: what an evaluation reports."""

    f_c: float | None = schema_field(None, ge=0.0, le=1.0)
    f_b: float | None = schema_field(None, ge=0.0, le=1.0)
    efficiencies: list[float] = schema_field([0.5, 0.6, 0.7, 0.8, 0.9], gt=0.0, lt=1.0)
    write_predictions: bool = True
    vs_variables_b_efficiency: float = schema_field(0.7, gt=0.0, lt=1.0)
    vs_variables_c_efficiency: float = schema_field(0.5, gt=0.0, lt=1.0)
    plot_formats: list[Literal["png", "pdf", "svg"]] = schema_field(["png", "pdf"])


#: Bounds of the detector settings the schema checks by type (DetectorModel checks the rest itself).
_DETECTOR_BOUNDS: dict[str, dict[str, float]] = {
    name: {"ge": 0.0} for name in ("pt_min_gev", "inv_pt_a_per_gev", "inv_pt_b", "d0_a_mm", "d0_b_mm_gev",
                                   "z0_a_mm", "z0_b_mm_gev", "beam_spot_mm")
}


def _check_detector(values: dict[str, Any], key: str) -> None:
    """The detector model's own range checks; a beam spot of three widths."""
    from flavortag.detector import DetectorModel

    if "beam_spot_mm" in values and len(values["beam_spot_mm"]) != 3:
        raise ValueError(f"{key}.beam_spot_mm must list three widths [x, y, z] in mm, "
                         f"not {values['beam_spot_mm']!r}")
    DetectorModel.from_config(values)


def _detector_schema() -> type:
    """``detector/``: the fields of :class:`flavortag.detector.DetectorModel`, made from it (no copy).

    Its defaults and types are the model's (the beam spot a list in YAML), with
    the free-text ``description`` and ``source`` beside them and the bounds of
    :data:`_DETECTOR_BOUNDS`.
    """
    import dataclasses
    import typing

    from flavortag.detector import DetectorModel

    hints = typing.get_type_hints(DetectorModel)
    specs: list[tuple[str, Any, Any]] = []
    for f in dataclasses.fields(DetectorModel):
        listed = f.name == "beam_spot_mm"
        default = list(f.default) if listed else f.default  # type: ignore[arg-type]
        specs.append((f.name, list[float] if listed else hints[f.name],
                      schema_field(default, **_DETECTOR_BOUNDS.get(f.name, {}))))
        if f.name == "name":
            specs += [("description", str | None, schema_field(None)), ("source", str | None, schema_field(None))]
    return dataclasses.make_dataclass("DetectorSchema", specs,
                                      namespace={"check": staticmethod(_check_detector),
                                                 "__doc__": _detector_schema.__doc__})


if TYPE_CHECKING:  # a class made at run time: mypy sees it as Any
    DetectorSchema: TypeAlias = Any
else:
    DetectorSchema = _detector_schema()


@dataclass
class SplitSchema:
    """``data.split``: fractions of the events for training, validation and test (random, per class;
    jet records are split event by event: both jets of an event land in the same split)."""

    train: float = schema_field(0.7, gt=0.0, lt=1.0)
    val: float = schema_field(0.15, gt=0.0, lt=1.0)
    test: float = schema_field(0.15, ge=0.0, lt=1.0)

    @staticmethod
    def check(values: dict[str, Any], key: str) -> None:
        """The fractions sum to 1 (:func:`flavortag.dataset.split_fractions`, the one check)."""
        from flavortag.dataset import split_fractions

        split_fractions(values)


@dataclass
class EDM4hepSchema:
    """``data.edm4hep``: how EDM4hep files are read (:class:`flavortag.io.edm4hep.EDM4hepOptions`)."""

    bz_tesla: float | None = None  # the field of files without magFieldBz
    neutrals_in_axis: bool = False  # thrust axis of tracks and neutral particles
    neutrals: bool = False  # per-record sums of the neutral particles (n_neutrals, neutral_E, ...)
    track_truth: bool = False  # per-track pdg and origin from the MC record (slower)


@dataclass
class DataSchema:
    """``data/``: which events, how they are read and split (``configs/data/zpole_embedded.yaml``)."""

    name: str | None = None
    paths: Paths = None
    recipe: str | None = None  # the command that makes the sample of `paths` (said when it is missing)
    label: str | int | None = None
    label_rules: dict[str, str] | None = None
    on_error: OnError = "raise"
    max_events_per_class: int | None = schema_field(None, ge=1)
    split: SplitSchema = field(default_factory=SplitSchema)
    split_seed: int = schema_field(12345, ge=0)
    max_tracks: int = schema_field(48, ge=1)
    sort_by: str | None = "E"
    streaming: bool = False
    step_size: str | int = "16 MB"
    shuffle_buffer: int = schema_field(50000, ge=1)
    val_paths: Paths = None
    test_paths: Paths = None
    normalisation_events: int = schema_field(20000, ge=1)
    level: Literal["event", "jet"] = "event"  # what a record is: an event or a Durham jet
    classes: list[str] | None = None  # null: event uds, cc, bb; jet light, c, b (or [light, c, b, g])
    edm4hep: EDM4hepSchema = field(default_factory=EDM4hepSchema)  # EDM4hep inputs only

    @staticmethod
    def check(values: dict[str, Any], key: str) -> None:
        """``classes`` is a class scheme of ``level`` (events: uds, cc, bb; jets: light, c, b[, g])."""
        from flavortag.dataset import data_scheme

        data_scheme(values)


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
                                     f"{did_you_mean(str(name), [*groups, *specs])}")


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
    seed: int = schema_field(0, ge=0)
    shape_spread: float = schema_field(0.0, ge=0.0)
    tail_fraction_max: float = schema_field(0.0, ge=0.0, lt=1.0)
    tail_scale: float = schema_field(4.0, ge=1.0)
    bias_um_max: float = schema_field(0.0, ge=0.0)
    drop_max: float = schema_field(0.0, ge=0.0, lt=1.0)
    fakes_per_event_max: float = schema_field(0.0, ge=0.0)
    shifted_validation: bool = False

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
    max_epochs: int = schema_field(20, ge=1)
    batch_size: int = schema_field(256, ge=1)
    eval_batch_size: int = schema_field(1024, ge=1)
    lr: float = schema_field(1e-3, gt=0.0)
    weight_decay: float = schema_field(1e-2, ge=0.0)
    warmup_fraction: float = schema_field(0.05, ge=0.0, lt=1.0)
    min_lr_ratio: float = schema_field(0.02, ge=0.0, le=1.0)
    grad_clip_norm: float | None = schema_field(1.0, ge=0.0)
    class_weights: bool = False
    early_stopping_patience: int = schema_field(5, ge=1)
    layout: Literal["padded", "ragged"] = "padded"
    num_workers: int | None = schema_field(0, ge=0)
    pin_memory: bool | Literal["auto"] = "auto"
    checkpoint_every_steps: int | None = schema_field(200, ge=0)
    resume: str | bool | None = None
    resume_allow_changes: bool = False
    progress: bool = True
    distributed: bool = False
    backend: Literal["auto", "nccl", "gloo"] = "auto"
    save_rank_weights: bool = False
    max_steps_per_epoch: int | None = schema_field(None, ge=0)

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
    hidden_dims: list[int] = schema_field([64, 64], ge=1)
    activation: Activation = "relu"
    dropout: float = schema_field(0.1, ge=0.0, lt=1.0)
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
    phi_dims: list[int] = schema_field([64, 64, 64], ge=1)
    rho_dims: list[int] = schema_field([64, 64], ge=1)
    pooling: Pooling | list[Pooling] = schema_field(["sum", "mean"])
    sum_scale: float = schema_field(0.05, gt=0.0)
    attention_heads: int = schema_field(4, ge=1)
    activation: Activation = "relu"
    dropout: float = schema_field(0.0, ge=0.0, lt=1.0)
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
    embed_dim: int = schema_field(64, ge=1)
    num_heads: int = schema_field(4, ge=1)
    depth: int = schema_field(3, ge=0)
    class_depth: int = schema_field(2, ge=1)
    ffn_ratio: float = schema_field(4.0, gt=0.0)
    dropout: float = schema_field(0.1, ge=0.0, lt=1.0)
    attention_dropout: float = schema_field(0.0, ge=0.0, lt=1.0)
    activation: Activation = "gelu"
    embed_hidden: list[int] = schema_field([64], ge=1)
    use_pair_features: bool = True
    pair_features: list[PairFeature] = schema_field(["ln_kt", "ln_z", "ln_delta", "ln_m2", "ln_dca"])
    pair_hidden: list[int] = schema_field([32, 32], ge=1)
    use_event_features: bool = False

    @staticmethod
    def check(values: dict[str, Any], key: str) -> None:
        """``num_heads`` divides ``embed_dim``; pair features when they are used."""
        dim, heads = int(values.get("embed_dim", 64)), int(values.get("num_heads", 4))
        if dim % heads:
            raise ValueError(f"{key}.num_heads={heads} must divide {key}.embed_dim={dim} "
                             f"(e.g. num_heads={divisor_near(dim, heads)})")
        if values.get("use_pair_features", True) and not values.get("pair_features", [None]):
            raise ValueError(f"{key}.pair_features must not be empty with {key}.use_pair_features=true")


@dataclass
class BDTSchema:
    """``model=bdt``: keyword arguments of scikit-learn's ``HistGradientBoostingClassifier``."""

    name: Literal["bdt"] = BDT
    description: str | None = None
    loss: Literal["log_loss"] = "log_loss"
    learning_rate: float = schema_field(0.1, gt=0.0)
    max_iter: int = schema_field(300, ge=1)
    max_leaf_nodes: int | None = schema_field(31, ge=2)
    max_depth: int | None = schema_field(None, ge=1)
    min_samples_leaf: int = schema_field(20, ge=1)
    l2_regularization: float = schema_field(0.0, ge=0.0)
    max_features: float = schema_field(1.0, gt=0.0, le=1.0)
    max_bins: int = schema_field(255, ge=2, le=255)
    categorical_features: Any = None
    monotonic_cst: Any = None
    interaction_cst: Any = None
    warm_start: bool = False
    early_stopping: bool | Literal["auto"] = True
    scoring: str | None = "loss"
    validation_fraction: float | None = schema_field(0.1, gt=0.0, lt=1.0)
    n_iter_no_change: int = schema_field(10, ge=1)
    tol: float = schema_field(1e-7, ge=0.0)
    verbose: int = 0
    random_state: int | None = None
    class_weight: Any = None


#: ``model``: the schema is chosen by the node's ``name``.
ModelSchema = MLPSchema | DeepSetsSchema | TransformerSchema | BDTSchema
