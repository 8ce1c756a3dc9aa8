"""Ray helpers shared by the geometric sensors (:mod:`.lidar`, :mod:`.camera`) and the
scene sensors of the Sionna RT backend: the box slab test, the LiDAR scan pattern and
the validation of sensor poses."""

from __future__ import annotations

import functools
import math

import numpy as np

from v2xsim import checks as check

#: faces of an axis-aligned box, index = 2 * axis + (1 if the normal points to +axis)
FACE_NAMES: tuple[str, ...] = ("-x", "+x", "-y", "+y", "-z", "+z")
#: direction components smaller than this in magnitude are replaced by it (signed), so the
#: slab test never computes 0 * inf [1]
MIN_COMPONENT = 1e-12
#: hits closer to the ray origin than this are ignored [m]
MIN_HIT_M = 1e-6


def nonzero_components(directions: np.ndarray) -> np.ndarray:
    """``directions`` (..., 3) with components below :data:`MIN_COMPONENT` replaced by
    ``+-MIN_COMPONENT`` (sign kept, 0 counts as positive)."""
    return np.where(np.abs(directions) < MIN_COMPONENT,
                    np.where(directions < 0, -MIN_COMPONENT, MIN_COMPONENT), directions)


def first_hits(
    origin: np.ndarray,
    directions: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    t_max: float = math.inf,
    t_min: float = MIN_HIT_M,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest axis-aligned box hit of each ray from one origin (vectorised slab test).

    A box that contains the origin is not hit (rays leave it without entering).

    Args:
        origin: (3,) ray origin [m].
        directions: (R, 3) unit ray directions.
        lower, upper: (B, 3) box corners [m].
        t_max: ignore hits farther than this [m].
        t_min: ignore hits closer than this [m].

    Returns:
        ``(t, box, face)``: (R,) hit distance [m] (``inf`` = no hit), (R,) index of the
        box hit (-1 = none), (R,) entry face index into :data:`FACE_NAMES` (-1 = none).
    """
    directions = np.asarray(directions, dtype=float)
    num_rays = len(directions)
    t = np.full(num_rays, np.inf)
    box = np.full(num_rays, -1, dtype=np.int64)
    face = np.full(num_rays, -1, dtype=np.int64)
    if num_rays == 0 or len(lower) == 0:
        return t, box, face
    origin = np.asarray(origin, dtype=float)
    inv = 1.0 / nonzero_components(directions)
    inv_t = np.ascontiguousarray(inv.T, dtype=np.float32)  # (3, R): rays on the fast axis
    low = (np.asarray(lower, dtype=float) - origin).astype(np.float32)
    high = (np.asarray(upper, dtype=float) - origin).astype(np.float32)
    shape = (len(low), num_rays)
    enter, leave = np.empty(shape, np.float32), np.empty(shape, np.float32)
    t_a, t_b = np.empty(shape, np.float32), np.empty(shape, np.float32)
    for axis in range(3):
        np.multiply(low[:, axis, None], inv_t[axis][None, :], out=t_a)
        np.multiply(high[:, axis, None], inv_t[axis][None, :], out=t_b)
        if axis == 0:
            np.minimum(t_a, t_b, out=enter)
            np.maximum(t_a, t_b, out=leave)
        else:
            np.maximum(enter, np.minimum(t_a, t_b), out=enter)
            np.minimum(leave, np.maximum(t_a, t_b), out=leave)
    valid = (enter > t_min) & (enter < leave) & (enter <= t_max)
    np.copyto(enter, np.float32(np.inf), where=~valid)
    nearest = enter.argmin(axis=0)
    rows = np.arange(num_rays)
    t_near = enter[nearest, rows].astype(float)
    found = np.isfinite(t_near)
    if not np.any(found):
        return t, box, face
    # entry face of the chosen box: the slab whose near plane is crossed last
    # ((3, R) arrays and explicit comparisons: argmax over a short axis is slow in numpy)
    near_x, near_y, near_z = np.minimum(inv_t * low.T[:, nearest], inv_t * high.T[:, nearest])
    axis = np.where((near_x >= near_y) & (near_x >= near_z), 0, np.where(near_y >= near_z, 1, 2))
    # a ray travelling towards -axis enters through the upper face (normal +axis)
    going_down = inv_t[axis, rows] < 0
    t[found] = t_near[found]
    box[found] = nearest[found]
    face[found] = (2 * axis + going_down)[found]
    return t, box, face


@functools.lru_cache(maxsize=16)
def scan_pattern(num_azimuth: int, num_channels: int, elevation_min_deg: float, elevation_max_deg: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Rays of one LiDAR revolution: unit directions (A*C, 3), azimuth-major, and their
    float32 reciprocals (3, A, C); read-only (cached).

    Azimuth ``(a + 1/2) 2 pi / A`` [rad] from +x, elevations evenly spaced from
    ``elevation_min_deg`` to ``elevation_max_deg`` [deg].
    """
    azimuth = (np.arange(num_azimuth) + 0.5) * (2.0 * math.pi / num_azimuth)
    elevation = np.radians(np.linspace(elevation_min_deg, elevation_max_deg, num_channels))
    az, el = np.meshgrid(azimuth, elevation, indexing="ij")
    directions = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)
    inv = np.ascontiguousarray(np.moveaxis(1.0 / nonzero_components(directions), -1, 0), dtype=np.float32)
    directions = directions.reshape(-1, 3)
    directions.flags.writeable = False
    inv.flags.writeable = False
    return directions, inv


def as_point(name: str, value: np.ndarray) -> np.ndarray:
    """A finite (3,) float point [m] (a copy); ValueError naming ``name`` otherwise."""
    point = np.asarray(value, dtype=float)
    if point.shape != (3,):
        raise ValueError(f"{name} must have shape (3,), got {point.shape}")
    return check.finite_array(name, point.copy())


def as_vehicles(rx_positions: np.ndarray, rx_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated vehicle antenna positions (K, 3) float [m] and ids (K,) int64."""
    positions = np.asarray(rx_positions, dtype=float)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"rx_positions must have shape (K, 3), got {positions.shape}")
    check.finite_array("rx_positions", positions)
    ids = np.asarray(rx_ids).reshape(-1)
    if len(ids) != len(positions):
        raise ValueError(f"rx_ids must have length K = {len(positions)}, got {len(ids)}")
    return positions, ids.astype(np.int64)
