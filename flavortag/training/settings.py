"""Typed training settings, parsed once from the resolved train config.

Every knob of the torch loop becomes a typed field of :class:`TrainerSettings`.
Its defaults, types and ranges are those of the ``trainer`` schema
(:class:`flavortag.schema.groups.TrainerSchema`, the single source; the YAML
``configs/trainer/default.yaml`` chooses the same values, held equal by a
test): bad values fail here, before any data is read or MLflow run opened,
with the config key and its valid range in the message.
:class:`TrainJob` is one whole training job's settings (data, trainer, model,
detector, features, augmentation, tracking), built once by the app (or by
tune and robustness for the jobs they start) from a plain mapping.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flavortag.augment import ResolutionAugmentation
from flavortag.dataset import DataSettings
from flavortag.detector import DetectorModel
from flavortag.schema import check_node, defaults
from flavortag.schema.groups import TrackingSettings, TrainerSchema, is_bdt

if TYPE_CHECKING:  # (batching imports torch; a config is checked without it)
    from flavortag.batching import Layout

__all__ = ["TrainJob", "TrainerSettings"]

def _typed(node: Mapping[str, Any]) -> dict[str, Any]:
    """A checked ``trainer`` node as :class:`TrainerSettings` values: off switches (null) as 0, ``auto`` as None."""
    def zero_if_null(key: str, kind: type) -> Any:
        value = node.get(key)
        return kind(0) if value in (None, "") else kind(value)

    resume = node.get("resume")
    pin = node.get("pin_memory")
    return {
        **{k: node[k] for k in ("device", "precision", "layout", "backend")},
        **{k: bool(node[k]) for k in ("compile", "class_weights", "progress", "distributed",
                                       "save_rank_weights", "bucketing", "resume_allow_changes")},
        **{k: int(node[k]) for k in ("max_epochs", "batch_size", "eval_batch_size",
                                      "early_stopping_patience")},
        **{k: float(node[k]) for k in ("lr", "weight_decay", "warmup_fraction", "min_lr_ratio")},
        "grad_clip_norm": zero_if_null("grad_clip_norm", float),
        "num_workers": zero_if_null("num_workers", int),
        "checkpoint_every_steps": zero_if_null("checkpoint_every_steps", int),
        "max_steps_per_epoch": zero_if_null("max_steps_per_epoch", int),
        "pin_memory": None if str(pin) == "auto" else bool(pin),
        "resume": None if resume in (None, "", False) else str(resume),
    }


#: The schema's defaults, as typed values.
_D = _typed(defaults(TrainerSchema))


@dataclass(frozen=True)
class TrainerSettings:
    """The ``trainer`` node as typed values (see ``configs/trainer/default.yaml`` for their meaning).

    ``max_steps_per_epoch``, ``checkpoint_every_steps``, ``grad_clip_norm`` and
    ``num_workers`` are 0 when off (null); ``pin_memory`` is None for ``auto``
    (pin on CUDA); ``resume`` is None, ``"auto"`` or a checkpoint path.
    Defaults: the schema's.
    """

    device: str = _D["device"]
    precision: str = _D["precision"]
    compile: bool = _D["compile"]
    max_epochs: int = _D["max_epochs"]
    batch_size: int = _D["batch_size"]
    eval_batch_size: int = _D["eval_batch_size"]
    lr: float = _D["lr"]
    weight_decay: float = _D["weight_decay"]
    warmup_fraction: float = _D["warmup_fraction"]
    min_lr_ratio: float = _D["min_lr_ratio"]
    grad_clip_norm: float = _D["grad_clip_norm"]
    class_weights: bool = _D["class_weights"]
    early_stopping_patience: int = _D["early_stopping_patience"]
    layout: Layout = _D["layout"]
    num_workers: int = _D["num_workers"]
    pin_memory: bool | None = _D["pin_memory"]
    checkpoint_every_steps: int = _D["checkpoint_every_steps"]
    resume: str | None = _D["resume"]
    resume_allow_changes: bool = _D["resume_allow_changes"]
    progress: bool = _D["progress"]
    distributed: bool = _D["distributed"]
    backend: str = _D["backend"]
    save_rank_weights: bool = _D["save_rank_weights"]
    max_steps_per_epoch: int = _D["max_steps_per_epoch"]
    bucketing: bool = _D["bucketing"]

    @classmethod
    def from_config(cls, trainer: Mapping[str, Any]) -> TrainerSettings:
        """Parse a ``trainer`` config node, checked against the schema (missing keys: its defaults)."""
        values = {**defaults(TrainerSchema), **{str(k): v for k, v in dict(trainer).items()}}
        check_node(values, TrainerSchema, "trainer")
        return cls(**_typed(values))


def feature_names(features: Mapping[str, Any] | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Track and event feature names of a ``features`` node, groups expanded (None: the library defaults)."""
    from flavortag.features import expand_feature_names

    node = features or {}
    return (tuple(expand_feature_names("track", node.get("track"))),
            tuple(expand_feature_names("event", node.get("event"))))


@dataclass(frozen=True)
class TrainJob:
    """One training job's settings, built once from the resolved train config (a plain mapping).

    ``config`` is that mapping as plain data: logged with the run (params and
    ``config.yaml``) and kept in every checkpoint (what a resume compares and
    what scoring reads). ``model`` is the model node (checked against its
    schema by :func:`flavortag.models.build_model`; the BDT's by scikit-learn).
    """

    config: Mapping[str, Any]
    run_name: str
    seed: int
    output_dir: Path
    data: DataSettings
    trainer: TrainerSettings
    model: Mapping[str, Any]
    detector: DetectorModel
    track_features: tuple[str, ...]
    event_features: tuple[str, ...]
    augment: ResolutionAugmentation
    tracking: TrackingSettings
    evaluate: Mapping[str, Any]
    evaluate_after_training: bool
    #: the model's name (``mlp``, ``bdt``, ``deepsets``, ``transformer``)
    model_name: str = field(init=False)
    #: False for the BDT (scikit-learn), True for the torch models
    is_torch: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_name", str(self.model.get("name", "")))
        object.__setattr__(self, "is_torch", not is_bdt(self.model_name))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TrainJob:
        """Parse a resolved train config; bad settings fail here, before anything is read."""
        plain = copy.deepcopy(dict(config))
        trainer = TrainerSettings.from_config(plain.get("trainer") or {})
        seed = int(plain.get("seed") or 0)
        track, event = feature_names(plain.get("features"))
        return cls(
            config=plain, run_name=str(plain.get("run_name") or "run"), seed=seed,
            output_dir=Path(str(plain.get("output_dir") or "outputs/train")).resolve(),
            data=DataSettings.from_config(plain.get("data") or {}, split_seed=seed),
            trainer=trainer, model=dict(plain.get("model") or {}),
            detector=DetectorModel.from_config(plain.get("detector")),
            track_features=track, event_features=event,
            augment=ResolutionAugmentation.from_config(plain.get("augment") or None),
            tracking=TrackingSettings.from_config(plain.get("tracking")),
            evaluate=dict(plain.get("evaluate") or {}),
            evaluate_after_training=bool(plain.get("evaluate_after_training", False)),
        )

    def with_resume(self, resume: str) -> TrainJob:
        """The same job resuming ``resume`` (``auto`` or a checkpoint), its config saying so."""
        config = copy.deepcopy(dict(self.config))
        config.setdefault("trainer", {})["resume"] = resume
        return replace(self, config=config, trainer=replace(self.trainer, resume=resume))
