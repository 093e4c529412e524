"""Deep Sets tagger: per-track network phi, masked permutation-invariant pooling, network rho.

``rho(concat(pool_1(phi(x)), pool_2(phi(x)), ... [, event features]))`` with
pooling operations chosen from ``sum`` (scaled by ``sum_scale`` to keep the
magnitude independent of typical multiplicities), ``mean``, ``max`` and
``attention`` (a learned query attending over the tracks, through the shared
masked-attention module).

Works on padded batches (explicit ``valid`` mask) and on ragged batches
(segment reductions over ``offsets`` with ``index_add_`` / ``scatter_reduce``);
the same weights give the same logits on both layouts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from flavortag.batching import segment_ids
from flavortag.classes import CLASS_NAMES
from flavortag.models.attention import AttentionPooling
from flavortag.models.base import (
    TaggerModel,
    pack_slots,
    ragged_to_padded_tensor,
    slot_index,
    unpack_slots,
)
from flavortag.models.layers import dense_stack
from flavortag.schema.groups import DeepSetsSchema


class DeepSetsTagger(TaggerModel):
    """Deep Sets over the track list.

    Hyperparameters: ``phi_dims``, ``rho_dims``, ``pooling`` (list from
    ``sum, mean, max, attention``), ``sum_scale``, ``attention_heads``,
    ``activation``, ``dropout``, ``use_event_features``.
    """

    name: ClassVar[str] = "deepsets"
    input_kind: str = "tracks"
    SCHEMA: ClassVar[type] = DeepSetsSchema

    def __init__(self, config: Mapping[str, Any], n_track_features: int, n_event_features: int,
                 class_names: Sequence[str] = CLASS_NAMES) -> None:
        super().__init__(config, n_track_features, n_event_features, class_names)
        cfg = self.config
        # pooling, phi_dims and attention_heads are checked by DeepSetsSchema (resolve_config)
        pooling = [cfg["pooling"]] if isinstance(cfg["pooling"], str) else list(cfg["pooling"])
        self.use_sum = "sum" in pooling
        self.use_mean = "mean" in pooling
        self.use_max = "max" in pooling
        self.use_attention = "attention" in pooling
        self.sum_scale = float(cfg["sum_scale"])
        self.use_event_features = bool(cfg["use_event_features"])
        if self.use_event_features and self.n_event_features < 1:
            raise ValueError("deepsets use_event_features=True needs n_event_features >= 1")
        phi_dims = [int(w) for w in cfg["phi_dims"]]
        activation, dropout = cfg["activation"], float(cfg["dropout"])
        self.phi = dense_stack(self.n_track_features, phi_dims, activation, dropout)
        width = phi_dims[-1]
        self.attention_pool = AttentionPooling(width, int(cfg["attention_heads"]), dropout) if self.use_attention else None
        n_pooled = width * (int(self.use_sum) + int(self.use_mean) + int(self.use_max) + int(self.use_attention))
        rho_in = n_pooled + (self.n_event_features if self.use_event_features else 0)
        rho_dims = [int(w) for w in cfg["rho_dims"]]
        self.rho = nn.Sequential(
            dense_stack(rho_in, rho_dims, activation, dropout),
            nn.Linear(rho_dims[-1] if rho_dims else rho_in, self.n_classes),
        )

    @property
    def export_inputs(self) -> tuple[str, ...]:
        """``features, valid`` and, when used, ``event_features``."""
        return ("features", "valid", "event_features") if self.use_event_features else ("features", "valid")

    def _head(self, pooled: list[Tensor], event_features: Tensor | None) -> Tensor:
        if self.use_event_features:
            if event_features is None:
                raise ValueError("deepsets with use_event_features=True needs event_features in the batch")
            pooled.append(self.normalisation.events(event_features))
        return self.rho(torch.cat(pooled, dim=-1))

    def forward_padded(
        self,
        features: Tensor,
        valid: Tensor,
        event_features: Tensor | None = None,
        vectors: Tensor | None = None,
    ) -> Tensor:
        """Return logits ``[B, 3]`` from raw padded ``features [B, N, F]`` and ``valid [B, N]``."""
        # phi runs on the valid tracks only (packed), then they go back into padded slots of zeros.
        index = slot_index(valid)
        h = unpack_slots(self.phi(pack_slots(self.normalisation.tracks(features, valid), index)), index, valid)
        counts = valid.sum(dim=1, keepdim=True).to(h.dtype)
        total = h.sum(dim=1)
        pooled: list[Tensor] = []
        if self.use_sum:
            pooled.append(total * self.sum_scale)
        if self.use_mean:
            pooled.append(total / counts.clamp(min=1.0))
        if self.use_max:
            if h.shape[1] == 0:
                pooled.append(total)
            else:
                largest = h.masked_fill(~valid.unsqueeze(-1), float("-inf")).amax(dim=1)
                pooled.append(largest.masked_fill(counts == 0, 0.0))
        if self.attention_pool is not None:
            pooled.append(self.attention_pool(h, valid))
        return self._head(pooled, event_features)

    def forward_ragged(
        self,
        values: Tensor,
        offsets: Tensor,
        event_features: Tensor | None = None,
        vectors: Tensor | None = None,
    ) -> Tensor:
        """Return logits ``[B, 3]`` from raw ragged ``values [T, F]`` and ``offsets [B+1]``."""
        n_events = offsets.numel() - 1
        all_valid = torch.ones(values.shape[0], dtype=torch.bool, device=values.device)
        h = self.phi(self.normalisation.tracks(values, all_valid))
        seg = segment_ids(offsets, values.shape[0])
        counts = (offsets[1:] - offsets[:-1]).unsqueeze(-1).to(h.dtype)
        total = h.new_zeros((n_events, h.shape[1])).index_add_(0, seg, h)
        pooled: list[Tensor] = []
        if self.use_sum:
            pooled.append(total * self.sum_scale)
        if self.use_mean:
            pooled.append(total / counts.clamp(min=1.0))
        if self.use_max:
            index = seg.unsqueeze(-1).expand_as(h)
            largest = h.new_zeros((n_events, h.shape[1])).scatter_reduce(
                0, index, h, reduce="amax", include_self=False
            )
            pooled.append(largest)
        if self.attention_pool is not None:
            padded, valid = ragged_to_padded_tensor(h, offsets)
            pooled.append(self.attention_pool(padded, valid))
        return self._head(pooled, event_features)
