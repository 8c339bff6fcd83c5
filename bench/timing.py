"""Timing for the benches: the best of n calls (as timeit: other jobs on a shared machine only
ever add time, so the minimum is the estimate least disturbed by them)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(fn: Callable[[], object], n: int, *, warmup: int = 0) -> float:
    """Seconds of the fastest of ``n`` calls of ``fn``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
