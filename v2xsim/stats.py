"""Statistics across seeds as pure functions: mean, standard error and confidence interval
(Student t), and paired differences of two schemes measured on the same worlds."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

#: two-sided confidence level of every interval v2xsim reports
CONFIDENCE = 0.95


@dataclass(frozen=True)
class MeanCI:
    """Mean of ``n`` values with its standard error and two-sided confidence interval;
    ``std_error``, ``ci_low`` and ``ci_high`` are None for fewer than two values."""

    n: int
    mean: float
    std_error: float | None
    ci_low: float | None
    ci_high: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def mean_ci(values: Sequence[float], *, confidence: float = CONFIDENCE) -> MeanCI:
    """Mean and Student-t confidence interval of independent samples (one per seed).

    Raises ValueError for no values, non-finite values or a confidence outside (0, 1).
    """
    from scipy.stats import t as student_t

    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or len(data) == 0:
        raise ValueError("values must be a non-empty 1-D sequence")
    if not np.all(np.isfinite(data)):
        raise ValueError("values must be finite")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    mean = float(data.mean())
    if len(data) < 2:
        return MeanCI(1, mean, None, None, None)
    error = float(data.std(ddof=1) / math.sqrt(len(data)))
    half = float(student_t.ppf(0.5 + confidence / 2, len(data) - 1)) * error
    return MeanCI(len(data), mean, error, mean - half, mean + half)


def paired_difference(first: Sequence[float], second: Sequence[float], *,
                      confidence: float = CONFIDENCE) -> MeanCI:
    """Mean and confidence interval of ``first[i] - second[i]`` (pairs measured on the
    same world, e.g. two schemes with the same seed)."""
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have the same length, got {a.shape} and {b.shape}")
    return mean_ci(a - b, confidence=confidence)
