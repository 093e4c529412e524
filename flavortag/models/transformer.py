"""Transformer tagger in the spirit of the Particle Transformer (ParT, arXiv:2202.03772).

tracks ``[B, N, F]`` -> standardise -> per-track embedding MLP -> ``depth``
pre-norm residual self-attention blocks (key-padding mask plus, optionally,
one bias per head computed from pairwise track features, see
:mod:`flavortag.models.pair`) -> ``class_depth`` class-attention blocks in
which a learned class token attends over the tracks (CaiT / ParT readout) ->
LayerNorm -> [concat standardised event features] -> head -> logits ``[B, 3]``.

Ragged batches are scattered into the padded layout first (attention needs it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from flavortag.classes import CLASS_NAMES
from flavortag.models.attention import MaskedMultiheadAttention
from flavortag.models.base import TaggerModel, pack_slots, slot_index, unpack_slots
from flavortag.models.layers import dense_stack, make_activation
from flavortag.models.pair import PairEmbedding
from flavortag.schema.groups import TransformerSchema


class FeedForward(nn.Module):
    """Position-wise ``Linear -> activation -> Dropout -> Linear``."""

    def __init__(self, dim: int, hidden: int, activation: str, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), make_activation(activation), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        """Return ``[..., dim]``."""
        return self.net(x)


class SelfAttentionBlock(nn.Module):
    """Pre-norm block ``x + Attn(LN(x))``, ``x + FFN(LN(x))`` on the packed valid tracks.

    The residual stream holds only the ``T`` valid tracks (``[T, D]``); it is
    scattered into the padded layout just for the attention, so the
    token-wise layers never spend time on padding.
    """

    def __init__(self, dim: int, num_heads: int, ffn_ratio: float, activation: str, dropout: float,
                 attention_dropout: float = 0.0) -> None:
        super().__init__()
        self.norm_attention = nn.LayerNorm(dim)
        self.attention = MaskedMultiheadAttention(dim, num_heads, attention_dropout)
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, int(round(dim * ffn_ratio)), activation, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: Tensor, index: Tensor, valid: Tensor, attn_bias: Tensor | None) -> Tensor:
        """Return updated ``tokens [T, D]`` (the slots ``index`` of ``valid``, see
        :func:`~flavortag.models.base.slot_index`); ``attn_bias`` (pairwise biases or None)
        broadcasts to ``[B, H, N, N]``."""
        h = unpack_slots(self.norm_attention(tokens), index, valid)
        tokens = tokens + self.dropout(pack_slots(self.attention(h, h, valid, attn_bias), index))
        return tokens + self.dropout(self.ffn(self.norm_ffn(tokens)))


class ClassAttentionBlock(nn.Module):
    """Class-attention block: the class token attends over ``[class token, tracks]``."""

    def __init__(self, dim: int, num_heads: int, ffn_ratio: float, activation: str, dropout: float,
                 attention_dropout: float = 0.0) -> None:
        super().__init__()
        self.norm_attention = nn.LayerNorm(dim)
        self.attention = MaskedMultiheadAttention(dim, num_heads, attention_dropout)
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, int(round(dim * ffn_ratio)), activation, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, cls_token: Tensor, tracks: Tensor, key_valid: Tensor) -> Tensor:
        """Return the updated class token ``[B, 1, D]``; ``key_valid [B, 1 + N]`` covers the class token and the tracks."""
        keys = self.norm_attention(torch.cat((cls_token, tracks), dim=1))
        cls_token = cls_token + self.dropout(self.attention(keys[:, :1], keys, key_valid))
        return cls_token + self.dropout(self.ffn(self.norm_ffn(cls_token)))


class TransformerTagger(TaggerModel):
    """ParT-style transformer over the track list with optional pairwise attention biases.

    Hyperparameters: ``embed_dim``, ``num_heads``, ``depth`` (self-attention
    blocks), ``class_depth`` (class-attention blocks), ``ffn_ratio``,
    ``dropout`` (residual branches and feed-forward), ``attention_dropout`` (on
    the attention weights; off by default, it is costly on CPU), ``activation``, ``embed_hidden`` (hidden widths of the
    per-track embedding MLP), ``use_pair_features``, ``pair_features`` (subset
    of ``ln_kt, ln_z, ln_delta, ln_m2, ln_dca``), ``pair_hidden``,
    ``use_event_features``.
    """

    name: ClassVar[str] = "transformer"
    input_kind: str = "tracks"
    SCHEMA: ClassVar[type] = TransformerSchema

    def __init__(self, config: Mapping[str, Any], n_track_features: int, n_event_features: int,
                 class_names: Sequence[str] = CLASS_NAMES) -> None:
        super().__init__(config, n_track_features, n_event_features, class_names)
        cfg = self.config
        dim, heads = int(cfg["embed_dim"]), int(cfg["num_heads"])
        ffn_ratio, dropout, activation = float(cfg["ffn_ratio"]), float(cfg["dropout"]), str(cfg["activation"])
        attention_dropout = float(cfg["attention_dropout"])
        # num_heads divides embed_dim, class_depth >= 1: checked by TransformerSchema (resolve_config)
        self.use_pair_features = bool(cfg["use_pair_features"])
        self.use_event_features = bool(cfg["use_event_features"])
        if self.use_event_features and self.n_event_features < 1:
            raise ValueError("transformer use_event_features=True needs n_event_features >= 1")

        self.embed = dense_stack(self.n_track_features, [*map(int, cfg["embed_hidden"]), dim], activation)
        self.pair_embed = (
            PairEmbedding(cfg["pair_features"], heads, [int(w) for w in cfg["pair_hidden"]], activation)
            if self.use_pair_features else None
        )
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(dim, heads, ffn_ratio, activation, dropout, attention_dropout) for _ in range(int(cfg["depth"]))
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.class_blocks = nn.ModuleList(
            ClassAttentionBlock(dim, heads, ffn_ratio, activation, dropout, attention_dropout) for _ in range(int(cfg["class_depth"]))
        )
        self.norm = nn.LayerNorm(dim)
        head_in = dim + (self.n_event_features if self.use_event_features else 0)
        self.head = nn.Sequential(
            nn.Linear(head_in, dim), make_activation(activation), nn.Dropout(dropout), nn.Linear(dim, self.n_classes)
        )

    @property
    def export_inputs(self) -> tuple[str, ...]:
        """``features, valid`` plus ``event_features`` and ``vectors`` when used."""
        names = ["features", "valid"]
        if self.use_event_features:
            names.append("event_features")
        if self.use_pair_features:
            names.append("vectors")
        return tuple(names)

    def forward_padded(
        self,
        features: Tensor,
        valid: Tensor,
        event_features: Tensor | None = None,
        vectors: Tensor | None = None,
    ) -> Tensor:
        """Return logits ``[B, 3]`` from raw ``features [B, N, F]``, ``valid [B, N]``,
        raw ``vectors [B, N, 7]`` (needed with pair features) and ``event_features``."""
        index = slot_index(valid)
        tokens = self.embed(pack_slots(self.normalisation.tracks(features, valid), index))

        pair_bias: Tensor | None = None
        if self.pair_embed is not None:
            if vectors is None:
                raise ValueError("the transformer with use_pair_features=True needs vectors in the batch")
            pair_bias = self.pair_embed(vectors, valid).to(tokens.dtype)
        for block in self.blocks:
            tokens = block(tokens, index, valid, pair_bias)
        x = unpack_slots(tokens, index, valid)

        # The class token is always a valid key, so no event is left without one.
        with_cls = torch.cat((valid.new_ones((valid.shape[0], 1)), valid), dim=1)
        cls_token = self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype)
        for block in self.class_blocks:
            cls_token = block(cls_token, x, with_cls)

        out = self.norm(cls_token[:, 0])
        if self.use_event_features:
            if event_features is None:
                raise ValueError("the transformer with use_event_features=True needs event_features in the batch")
            out = torch.cat((out, self.normalisation.events(event_features).to(out.dtype)), dim=-1)
        return self.head(out)
