"""GPS receiver: 2-D position with Gaussian error.

FLASH stores GPS as two numbers per sample; v2xsim reports the local road frame
instead of latitude / longitude: ``(x, y)`` [m], x along the road, y across it
(see :mod:`v2xsim.geometry`).
"""

from __future__ import annotations

import numpy as np

from v2xsim import checks as check

#: default per-axis position error (standard deviation) [m]
DEFAULT_GPS_NOISE_M: float = 1.0


def gps_reading(
    positions: np.ndarray,
    rng: np.random.Generator,
    *,
    noise_std_m: float = DEFAULT_GPS_NOISE_M,
) -> np.ndarray:
    """Noisy 2-D GPS fixes of K vehicles.

    Args:
        positions: (K, 3) (or (K, 2)) antenna positions [m]; only x and y are used.
        rng: source of the position error.
        noise_std_m: per-axis standard deviation of the independent Gaussian error [m];
            0 returns the exact positions.

    Returns:
        (K, 2) float32 ``(x, y)`` fixes [m] in the road frame.
    """
    noise_std_m = check.non_negative("noise_std_m", noise_std_m)
    xy = _positions_xy(positions)
    error = rng.normal(0.0, 1.0, size=xy.shape) * noise_std_m
    return (xy + error).astype(np.float32)


def _positions_xy(positions: np.ndarray) -> np.ndarray:
    array = np.asarray(positions, dtype=float)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] not in (2, 3):
        raise ValueError(f"positions must have shape (K, 3) or (K, 2), got {np.shape(positions)}")
    check.finite_array("positions", array)
    return array[:, :2]
