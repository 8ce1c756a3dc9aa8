"""Argument checks shared by the pure functions: each error names its parameter."""

from __future__ import annotations

import math

import numpy as np


def finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def positive(name: str, value: float) -> float:
    value = finite(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def non_negative(name: str, value: float) -> float:
    value = finite(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def non_negative_int(name: str, value: int) -> int:
    """``value`` as an int >= 0 (bools and fractions refused), else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def angle_in_open_interval(name: str, value: float, upper: float) -> float:
    value = finite(name, value)
    if not 0 < value < upper:
        raise ValueError(f"{name} must be in (0, {upper:g}) rad, got {value}")
    return value


def finite_array(name: str, array: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array
