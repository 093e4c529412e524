"""Baseline shallow neural network on the hand-crafted event-level features.

``event_features [B, G]`` -> standardise -> 1 or 2 hidden layers -> logits ``[B, 3]``.
The tracks in the batch are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from torch import Tensor, nn

from flavortag.classes import CLASS_NAMES
from flavortag.models.base import TaggerModel
from flavortag.models.layers import dense_stack
from flavortag.schema.groups import MLPSchema


class MLPTagger(TaggerModel):
    """Shallow MLP on event features (the baseline).

    Hyperparameters: ``hidden_dims`` (1 or 2 widths), ``activation``,
    ``dropout``, ``batchnorm``.
    """

    name: ClassVar[str] = "mlp"
    input_kind: str = "event"
    SCHEMA: ClassVar[type] = MLPSchema

    def __init__(self, config: Mapping[str, Any], n_track_features: int, n_event_features: int,
                 class_names: Sequence[str] = CLASS_NAMES) -> None:
        super().__init__(config, n_track_features, n_event_features, class_names)
        cfg = self.config
        hidden = [int(w) for w in cfg["hidden_dims"]]  # 1 or 2 widths: checked by MLPSchema
        if self.n_event_features < 1:
            raise ValueError("the mlp model needs n_event_features >= 1")
        self.net = nn.Sequential(
            dense_stack(self.n_event_features, hidden, cfg["activation"], float(cfg["dropout"]),
                        bool(cfg["batchnorm"])),
            nn.Linear(hidden[-1], self.n_classes),
        )

    @property
    def export_inputs(self) -> tuple[str, ...]:
        """The MLP reads only ``event_features``."""
        return ("event_features",)

    def forward_padded(
        self,
        features: Tensor,
        valid: Tensor,
        event_features: Tensor | None = None,
        vectors: Tensor | None = None,
    ) -> Tensor:
        """Return logits ``[B, 3]`` from raw ``event_features [B, G]`` (tracks unused)."""
        return self._logits(event_features)

    def forward_ragged(
        self,
        values: Tensor,
        offsets: Tensor,
        event_features: Tensor | None = None,
        vectors: Tensor | None = None,
    ) -> Tensor:
        """Return logits ``[B, 3]`` from raw ``event_features [B, G]`` (tracks unused)."""
        return self._logits(event_features)

    def _logits(self, event_features: Tensor | None) -> Tensor:
        if event_features is None:
            raise ValueError("the mlp model needs event_features in the batch")
        return self.net(self.normalisation.events(event_features))
