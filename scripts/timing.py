"""The benchmarks' one timer: the best wall (or CPU) time of a few calls (imported by the bench_*.py scripts)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_time(fn: Callable[[], Any], repeat: int,
              clock: Callable[[], float] = time.perf_counter) -> tuple[float, Any]:
    """Smallest time of ``repeat`` calls (seconds; wall time, or ``clock``), and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = clock()
        out = fn()
        best = min(best, clock() - t0)
    return best, out
