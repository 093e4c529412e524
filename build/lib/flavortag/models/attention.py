"""The one masked multi-head attention module shared by the set models.

Masks are explicit: :class:`MaskedMultiheadAttention` takes ``key_valid [B, N]``
and turns it (``key_padding_bias``) into an additive float bias, 0 on real
tracks and -inf on padded ones, to which any other attention bias is added
(e.g. the pairwise-feature bias of the transformer) before
``torch.nn.functional.scaled_dot_product_attention``. Rows whose keys are all
padded (events without tracks) would give NaN after the softmax; the bias
unmasks such rows and the module then sets their output to zero.

Used by the transformer's self-attention and class-attention blocks and by the
deepsets model's optional attention pooling (:class:`AttentionPooling`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def key_padding_bias(valid: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Return an additive attention bias ``[B, 1, 1, N]``: 0 for valid keys, -inf for padded ones.

    Events with no valid key at all get 0 everywhere (guard against NaN rows).
    """
    any_valid = valid.any(dim=-1, keepdim=True)
    attend = valid | ~any_valid
    bias = torch.zeros(valid.shape, dtype=dtype, device=valid.device)
    bias = bias.masked_fill(~attend, float("-inf"))
    return bias[:, None, None, :]


class MaskedMultiheadAttention(nn.Module):
    """Multi-head attention of ``query [B, Q, D]`` over the valid rows of ``key_value [B, K, D]``.

    ``key_valid [B, K]`` (bool) is turned into the padding bias by
    :func:`key_padding_bias`; an optional extra ``attn_bias`` (broadcasting to
    ``[B, H, Q, K]``, e.g. pairwise-feature biases) is added to it. Queries of an
    event without any valid key attend to nothing: their attention output is 0
    (before the output projection), the same as for a batch with ``K = 0``.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"embedding dim {dim} is not divisible by num_heads={num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.dropout = float(dropout)
        self.q_proj = nn.Linear(dim, dim)
        self.kv_proj = nn.Linear(dim, 2 * dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, query: Tensor, key_value: Tensor, key_valid: Tensor,
                attn_bias: Tensor | None = None) -> Tensor:
        """Return the attended values ``[B, Q, D]``."""
        batch, n_query, _ = query.shape
        n_key = key_value.shape[1]
        if n_key == 0 or n_query == 0:  # nothing to attend (a batch without tracks)
            return self.out_proj(query.new_zeros((batch, n_query, self.dim)))
        q = self.q_proj(query).reshape(batch, n_query, self.num_heads, self.head_dim).transpose(1, 2)
        kv = self.kv_proj(key_value).reshape(batch, n_key, 2, self.num_heads, self.head_dim)
        k = kv[:, :, 0].transpose(1, 2)
        v = kv[:, :, 1].transpose(1, 2)
        mask = key_padding_bias(key_valid, q.dtype)
        if attn_bias is not None:
            mask = mask + attn_bias.to(q.dtype)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        has_keys = key_valid.any(dim=-1)
        out = out.masked_fill(~has_keys[:, None, None, None], 0.0)
        out = out.transpose(1, 2).reshape(batch, n_query, self.dim)
        return self.out_proj(out)


class AttentionPooling(nn.Module):
    """Pool a set ``x [B, N, D]`` into ``[B, D]`` with a learned query (pooling by attention).

    The query attends over the valid tracks only; events without tracks get the
    output projection of a zero vector (its bias).
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.query, std=0.02)
        self.norm = nn.LayerNorm(dim)
        self.attention = MaskedMultiheadAttention(dim, num_heads, dropout)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        """Return the pooled vector ``[B, D]``."""
        query = self.query.expand(x.shape[0], -1, -1)
        pooled = self.attention(query, self.norm(x), valid)
        return pooled[:, 0]
