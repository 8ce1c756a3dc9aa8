"""Shared timing helper of the benchmark scripts."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np


def median_time(function: Callable[[], object], repeats: int) -> float:
    """Median wall time [s] of ``repeats`` calls after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))
