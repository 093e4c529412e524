"""Dense building blocks shared by the tagger models: activations and MLP stacks.

Everything here acts on the last dimension only, so the same stack serves
event vectors ``[B, F]``, padded tracks ``[B, N, F]``, ragged tracks ``[T, F]``
and track pairs ``[B, N, N, F]``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
}


def make_activation(name: str) -> nn.Module:
    """Return a fresh activation module by name (relu, gelu, silu, elu, tanh, leaky_relu)."""
    key = name.strip().lower()
    if key not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; use one of {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[key]()


def dense_stack(
    in_dim: int,
    dims: Sequence[int],
    activation: str = "relu",
    dropout: float = 0.0,
    batchnorm: bool = False,
    activate_last: bool = True,
) -> nn.Sequential:
    """Return ``Linear -> [BatchNorm] -> activation -> [Dropout]`` layers ``in_dim -> dims[-1]``.

    With ``activate_last=False`` the last layer is a bare ``Linear`` (an output
    layer). ``batchnorm`` uses ``BatchNorm1d`` and is meant for ``[B, F]`` inputs
    only (it would mix padded slots into the statistics of per-track inputs).
    An empty ``dims`` gives an identity stack.
    """
    layers: list[nn.Module] = []
    previous = int(in_dim)
    for i, width in enumerate(dims):
        width = int(width)
        last = i == len(dims) - 1
        layers.append(nn.Linear(previous, width))
        if last and not activate_last:
            break
        if batchnorm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(make_activation(activation))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        previous = width
    return nn.Sequential(*layers)
