"""The tagger-model interface and the input-normalisation layer every model carries.

``TaggerModel.forward(batch)`` takes a ``flavortag.batching.PaddedBatch`` or
``RaggedBatch`` and returns logits ``[B, 3]`` (0 uds, 1 cc, 2 bb). The
standardisation of the raw inputs lives inside the model as buffers
(``track_mean``, ``track_scale``, ``event_mean``, ``event_scale``), fitted once
on the training split with :meth:`TaggerModel.fit_normalisation`, in the spirit
of ATLAS salt's input-normalisation layer: a checkpoint, an MLflow model and an
ONNX file each score raw features with nothing else to carry along.

Padded track slots are zeroed right after normalisation and masks are passed
explicitly everywhere, so the values stored in padded slots never matter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np
import torch
from torch import Tensor, nn

from flavortag.batching.batch import pad_ragged_tensor
from flavortag.classes import CLASS_NAMES
from flavortag.schema.nodes import check_node, defaults, plain_data

if TYPE_CHECKING:  # pragma: no cover - typing only
    from flavortag.batching import PaddedBatch, RaggedBatch


class InputNormalisation(nn.Module):
    """Standardise raw inputs: ``(x - mean) / scale`` per feature, padded slots set to 0.

    Buffers ``track_mean, track_scale`` (``[F]``) and ``event_mean, event_scale``
    (``[G]``) start as the identity (0, 1) and are set by :meth:`fit`; the buffer
    ``fitted`` records whether that happened (it travels with the state dict).
    """

    if TYPE_CHECKING:  # buffer types for mypy; TorchScript cannot read string class annotations
        track_mean: Tensor
        track_scale: Tensor
        event_mean: Tensor
        event_scale: Tensor
        fitted: Tensor

    def __init__(self, n_track_features: int, n_event_features: int) -> None:
        super().__init__()
        self.register_buffer("track_mean", torch.zeros(n_track_features))
        self.register_buffer("track_scale", torch.ones(n_track_features))
        self.register_buffer("event_mean", torch.zeros(n_event_features))
        self.register_buffer("event_scale", torch.ones(n_event_features))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @staticmethod
    def _mean_scale(values: np.ndarray, n_features: int, what: str, min_scale: float) -> tuple[Tensor, Tensor]:
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != n_features:
            raise ValueError(f"{what} values must have shape [n, {n_features}], got {list(arr.shape)}")
        if arr.shape[0] == 0:
            raise ValueError(f"cannot fit the {what} normalisation on zero rows")
        bad = ~np.isfinite(arr).all(axis=0)
        if bad.any():
            raise ValueError(f"{what} features with non-finite values (columns {np.flatnonzero(bad).tolist()})")
        mean = arr.mean(axis=0)
        std = arr.std(axis=0)
        # A constant feature keeps scale 1: it is centred to 0 and carries nothing.
        scale = np.where(std > min_scale, std, 1.0)
        return torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(scale, dtype=torch.float32)

    @torch.no_grad()
    def fit(self, track_values: np.ndarray | None, event_values: np.ndarray | None = None,
            min_scale: float = 1e-6) -> None:
        """Set mean and standard deviation from training rows (tracks: valid tracks only)."""
        if track_values is not None and self.track_mean.numel() > 0:
            mean, scale = self._mean_scale(track_values, self.track_mean.numel(), "track", min_scale)
            self.track_mean.copy_(mean)
            self.track_scale.copy_(scale)
        if event_values is not None and self.event_mean.numel() > 0:
            mean, scale = self._mean_scale(event_values, self.event_mean.numel(), "event", min_scale)
            self.event_mean.copy_(mean)
            self.event_scale.copy_(scale)
        self.fitted.fill_(True)

    def tracks(self, features: Tensor, valid: Tensor) -> Tensor:
        """Standardise ``features [..., F]``; slots where ``valid [...]`` is False become exactly 0."""
        x = (features - self.track_mean) / self.track_scale
        return x.masked_fill(~valid.unsqueeze(-1), 0.0)

    def events(self, event_features: Tensor) -> Tensor:
        """Standardise ``event_features [B, G]``."""
        return (event_features - self.event_mean) / self.event_scale


def ragged_to_padded_tensor(values: Tensor, offsets: Tensor, max_tracks: int | None = None) -> tuple[Tensor, Tensor]:
    """Scatter ragged ``values [T, ...]`` into ``padded [B, N, ...]`` (zeros) and ``valid [B, N]``.

    ``N`` is the largest multiplicity, or ``max_tracks`` when given (it must not
    be smaller). Tensor-level helper for models; the scatter itself is
    :func:`flavortag.batching.pad_ragged_tensor`.
    """
    counts = offsets[1:] - offsets[:-1]
    longest = int(counts.max()) if counts.numel() > 0 else 0
    n_slots = longest if max_tracks is None else int(max_tracks)
    if n_slots < longest:
        raise ValueError(f"max_tracks={n_slots} is smaller than the longest event ({longest} tracks)")
    return pad_ragged_tensor(values, offsets, n_slots)


def slot_index(valid: Tensor) -> Tensor:
    """Flat indices ``[T]`` of the valid slots of ``valid [B, ...]`` in row-major order.

    Computed once per forward (one device sync) and reused by :func:`pack_slots`
    and :func:`unpack_slots`, which let token-wise layers skip the padding.
    """
    return valid.reshape(-1).nonzero().squeeze(-1)


def pack_slots(x: Tensor, index: Tensor) -> Tensor:
    """Rows of ``x [B, ..., D]`` at the flat slot ``index`` (see :func:`slot_index`): ``[T, D]``."""
    return x.reshape(-1, x.shape[-1]).index_select(0, index)


def unpack_slots(tokens: Tensor, index: Tensor, valid: Tensor) -> Tensor:
    """Inverse of :func:`pack_slots`: ``tokens [T, D]`` into zeros shaped ``[*valid.shape, D]``."""
    flat = tokens.new_zeros((valid.numel(), tokens.shape[-1])).index_copy(0, index, tokens)
    return flat.reshape(valid.shape + (tokens.shape[-1],))


class TaggerModel(nn.Module):
    """Base class of the flavour taggers: one interface, logits ``[B, 3]``.

    Subclasses set ``name``, ``input_kind`` ("event" or "tracks"), ``SCHEMA``
    (their config schema in :mod:`flavortag.schema.groups`, whose defaults are
    ``DEFAULTS``, their hyperparameters) and implement :meth:`forward_padded`; set models may
    override :meth:`forward_ragged` (the default pads the ragged batch).

    Attributes kept for rebuilding: ``config`` (plain dict, includes ``name``),
    ``n_track_features``, ``n_event_features``; ``feature_names`` (optional,
    anything JSON-friendly, e.g. ``{"track": [...], "event": [...]}``) is stored
    in checkpoints and ONNX metadata when set.
    """

    name: ClassVar[str] = "base"
    input_kind: str = "tracks"
    #: the model's config schema (:mod:`flavortag.schema.groups`): its keys, types, ranges, defaults
    SCHEMA: ClassVar[type]
    #: the hyperparameters' defaults: those of ``SCHEMA`` (set for each subclass that names one)
    DEFAULTS: ClassVar[dict[str, Any]] = {}
    __jit_unused_properties__: ClassVar[list[str]] = [
        "track_mean", "track_scale", "event_mean", "event_scale", "export_inputs",
    ]

    def __init__(self, config: Mapping[str, Any], n_track_features: int, n_event_features: int,
                 class_names: Sequence[str] = CLASS_NAMES) -> None:
        super().__init__()
        self.config: dict[str, Any] = self.resolve_config(config)
        self.n_track_features = int(n_track_features)
        self.n_event_features = int(n_event_features)
        #: output order of the logits (:class:`flavortag.classes.ClassScheme` names)
        self.class_names: tuple[str, ...] = tuple(str(c) for c in class_names)
        self.n_classes = len(self.class_names)
        self.feature_names: Any = None
        self.normalisation = InputNormalisation(self.n_track_features, self.n_event_features)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "SCHEMA" in cls.__dict__:
            cls.DEFAULTS = defaults(cls.SCHEMA, drop=("name",))

    @classmethod
    def resolve_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``DEFAULTS`` updated by ``config`` (plain types), checked against the model's ``SCHEMA``.

        The same check as the apps' (:func:`flavortag.schema.nodes.check_node`: unknown keys with
        "did you mean", types, ranges), so a model built in Python refuses what ``flavortag train``
        refuses, in the same words. A ``description`` key (free text) is accepted and dropped.
        """
        plain = plain_data(dict(config))
        plain.pop("description", None)  # free text some configs carry; not a hyperparameter
        name = plain.pop("name", cls.name)
        if name != cls.name:
            raise ValueError(f"config name {name!r} given to the {cls.name!r} model")
        resolved = {"name": cls.name, **plain_data(cls.DEFAULTS), **plain}
        check_node(resolved, cls.SCHEMA, "model")
        return resolved

    # -- normalisation -----------------------------------------------------------------
    def fit_normalisation(self, track_values: np.ndarray | None, event_values: np.ndarray | None = None) -> None:
        """Fit the input standardisation: ``track_values [n_tracks, F]`` (valid tracks only),
        ``event_values [n_events, G]`` or None. Sets mean and standard deviation buffers."""
        self.normalisation.fit(track_values, event_values)

    @property
    def track_mean(self) -> Tensor:
        """Per-track-feature mean ``[F]`` subtracted before the network."""
        return self.normalisation.track_mean

    @property
    def track_scale(self) -> Tensor:
        """Per-track-feature scale ``[F]`` (standard deviation) divided out before the network."""
        return self.normalisation.track_scale

    @property
    def event_mean(self) -> Tensor:
        """Per-event-feature mean ``[G]``."""
        return self.normalisation.event_mean

    @property
    def event_scale(self) -> Tensor:
        """Per-event-feature scale ``[G]``."""
        return self.normalisation.event_scale

    @property
    def export_inputs(self) -> tuple[str, ...]:
        """Names of the ``forward_padded`` inputs this model reads (the ONNX graph inputs, in order)."""
        return ("features", "valid")

    # -- forward -----------------------------------------------------------------------
    @torch.jit.unused
    def forward(self, batch: PaddedBatch | RaggedBatch) -> Tensor:
        """Return logits ``[B, 3]`` for a ``PaddedBatch`` or a ``RaggedBatch``."""
        if hasattr(batch, "offsets"):
            ragged = cast("RaggedBatch", batch)
            return self.forward_ragged(ragged.values, ragged.offsets, ragged.event_features, ragged.vectors)
        padded = cast("PaddedBatch", batch)
        return self.forward_padded(padded.features, padded.valid, padded.event_features, padded.vectors)

    def forward_padded(
        self,
        features: Tensor,
        valid: Tensor,
        event_features: Tensor | None = None,
        vectors: Tensor | None = None,
    ) -> Tensor:
        """Return logits ``[B, 3]`` from raw ``features [B, N, F]``, ``valid [B, N]`` (bool),
        optional raw ``event_features [B, G]`` and raw ``vectors [B, N, 7]``."""
        raise NotImplementedError

    def forward_ragged(
        self,
        values: Tensor,
        offsets: Tensor,
        event_features: Tensor | None = None,
        vectors: Tensor | None = None,
    ) -> Tensor:
        """Return logits ``[B, 3]`` from ragged raw ``values [T, F]`` with ``offsets [B+1]``.

        The default scatters into a padded layout and calls :meth:`forward_padded`.
        """
        features, valid = ragged_to_padded_tensor(values, offsets)
        padded_vectors = None
        if vectors is not None:
            padded_vectors, _ = ragged_to_padded_tensor(vectors, offsets)
        return self.forward_padded(features, valid, event_features, padded_vectors)

    def extra_repr(self) -> str:  # noqa: D102 - nn.Module hook
        return f"name={self.name!r}, n_track_features={self.n_track_features}, n_event_features={self.n_event_features}"
