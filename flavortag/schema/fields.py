"""The building blocks of the config schemas: value types, bounds, fields and hints."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Sequence
from dataclasses import field
from typing import Any, Literal

Activation = Literal["relu", "gelu", "silu", "elu", "tanh", "leaky_relu"]
OnError = Literal["raise", "skip"]
Flavour = Literal["uds", "cc", "bb", "gg", "ss", "ud"]  # gg, ss, ud: process=zh only (checked by the generator)
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


def schema_field(default: Any, **limits: float | None) -> Any:
    """A field with a default and bounds (``schema_field(20, ge=1)``); lists get copied defaults."""
    meta = bounds(**limits)
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def did_you_mean(name: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def divisor_near(n: int, k: int) -> int:
    return min((d for d in range(1, n + 1) if n % d == 0), key=lambda d: (abs(d - k), d))
