"""Flavour-tagging models: ``mlp`` (baseline), ``deepsets`` and ``transformer`` (ParT-style).

All share one interface (:class:`TaggerModel`): ``forward(batch) -> logits [B, 3]``
for a ``PaddedBatch`` or ``RaggedBatch``, input standardisation carried inside
the model, and a plain ``config`` dict so checkpoints rebuild them::

    model = build_model({"name": "transformer", "depth": 2}, n_track_features=16, n_event_features=8)
    model.fit_normalisation(train_track_values, train_event_values)
    state = checkpoint_state(model)            # torch.save(state, path)
    same = model_from_checkpoint(state)

The ``bdt`` config (scikit-learn gradient boosting) is not a torch model; the
trainer handles it and :func:`build_model` says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from flavortag.classes import CLASS_NAMES, class_scheme
from flavortag.models.base import InputNormalisation, TaggerModel
from flavortag.models.deepsets import DeepSetsTagger
from flavortag.models.mlp import MLPTagger
from flavortag.models.pair import PAIR_FEATURES, pair_features
from flavortag.models.transformer import TransformerTagger
from flavortag.ragged import DEFAULT_SORT_BY
from flavortag.schema.groups import is_bdt

MODELS: dict[str, type[TaggerModel]] = {
    MLPTagger.name: MLPTagger,
    DeepSetsTagger.name: DeepSetsTagger,
    TransformerTagger.name: TransformerTagger,
}

CHECKPOINT_FORMAT: int = 1


def build_model(cfg: Mapping[str, Any], n_track_features: int, n_event_features: int,
                class_names: Sequence[str] = CLASS_NAMES) -> TaggerModel:
    """Build the model named by ``cfg["name"]`` (mlp | deepsets | transformer).

    ``class_names``: the classes of its outputs (default the event classes uds, cc, bb).

    The other keys of ``cfg`` (a dict or an OmegaConf ``DictConfig``) override the
    model's defaults (``MODELS[name].DEFAULTS``); unknown keys raise ``ValueError``.
    """
    if "name" not in cfg:
        raise ValueError(f"model config needs a 'name' (one of {sorted(MODELS)})")
    name = str(cfg["name"])
    if is_bdt(name):
        raise ValueError("'bdt' is a scikit-learn model handled by the trainer, not a torch TaggerModel")
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; use one of {sorted(MODELS)}")
    return MODELS[name](cfg, n_track_features, n_event_features, class_names)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Return the number of (trainable, by default) parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def checkpoint_state(model: TaggerModel) -> dict[str, Any]:
    """Return everything needed to rebuild ``model``: config, sizes, weights and buffers, names.

    Keys: ``format``, ``config`` (incl. ``name``), ``n_track_features``,
    ``n_event_features``, ``class_names``, ``feature_names`` and ``detector``
    ``max_tracks``, ``sort_by`` and ``training_resolution`` (the attributes of those names, None when
    unset; the last the resolution functions fitted on the training sample), ``state_dict`` (weights plus normalisation buffers). Plain types and tensors
    only, so ``torch.load(..., weights_only=True)`` reads it.
    """
    return {
        "format": CHECKPOINT_FORMAT,
        "config": dict(model.config),
        "n_track_features": model.n_track_features,
        "n_event_features": model.n_event_features,
        "class_names": list(getattr(model, "class_names", CLASS_NAMES)),
        "feature_names": getattr(model, "feature_names", None),
        "detector": getattr(model, "detector", None),
        "max_tracks": getattr(model, "max_tracks", None),
        "sort_by": getattr(model, "sort_by", DEFAULT_SORT_BY),
        "training_resolution": getattr(model, "training_resolution", None),
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
    }


def model_from_checkpoint(state: Mapping[str, Any]) -> TaggerModel:
    """Rebuild a model from :func:`checkpoint_state` output (strict state-dict load)."""
    missing = [k for k in ("config", "n_track_features", "n_event_features", "state_dict") if k not in state]
    if missing:
        raise ValueError(f"not a flavortag model checkpoint: missing keys {missing}")
    stored = state.get("class_names")  # a checkpoint without names predates jets: the event classes
    try:
        class_names = class_scheme(stored).names
    except ValueError as err:
        raise ValueError(f"checkpoint class names {stored}: {err}") from None
    if stored is not None and tuple(stored) != class_names:
        raise ValueError(f"checkpoint class order {list(stored)} differs from {list(class_names)}")
    model = build_model(state["config"], int(state["n_track_features"]), int(state["n_event_features"]),
                        class_names)
    model.load_state_dict(state["state_dict"])
    model.feature_names = state.get("feature_names")
    if state.get("detector") is not None:
        model.detector = state["detector"]
    if state.get("max_tracks") is not None:
        model.max_tracks = int(state["max_tracks"])  # type: ignore[assignment]
    model.sort_by = state.get("sort_by", DEFAULT_SORT_BY)  # type: ignore[assignment]
    model.training_resolution = state.get("training_resolution")  # type: ignore[assignment]
    return model


__all__ = [
    "MODELS",
    "PAIR_FEATURES",
    "DeepSetsTagger",
    "InputNormalisation",
    "MLPTagger",
    "TaggerModel",
    "TransformerTagger",
    "build_model",
    "checkpoint_state",
    "count_parameters",
    "model_from_checkpoint",
    "pair_features",
]
