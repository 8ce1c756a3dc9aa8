"""Roof-mounted LiDAR, quantised to FLASH's 20 x 20 x 20 occupancy grid.

A spinning multi-beam LiDAR (by default like a 16-channel VLP-16: elevations -15..+15
deg, 0.5 deg azimuth steps) sits ``mount_height_m`` above the vehicle antenna. Every
ray is cast against the obstacle boxes (the vehicle's own body excluded); the nearest
hit, perturbed by a Gaussian range error and kept with probability ``1 - dropout``,
becomes a point. Static background (ground plane, building walls, the RSU pole) is
filtered out as a LiDAR pipeline's ground / map removal would, so a ``1`` cell always
means a blocker.

Grid (see :func:`grid_bounds`): an axis-aligned box covering the RSU and the vehicle,
grown by ``margin_m`` in x and y (each horizontal span at least ``min_span_m``), and
from the ground ``z = 0`` up to ``headroom_m`` above the RSU. It is cut into
``grid`` equal cells per axis and indexed ``[ix, iy, iz]`` (x along the road, y
across, z up). Cell values follow FLASH: 0 empty, 1 obstacle point, -1 the RSU (base
station), -2 the ego vehicle's antenna (receiver).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from v2xsim import _validate as check
from v2xsim.formats import LIDAR_BASE_STATION, LIDAR_EMPTY, LIDAR_OBSTACLE, LIDAR_RECEIVER
from v2xsim.geometry import Boxes, RoadLayout

EMPTY, OBSTACLE, BASE_STATION, RECEIVER = LIDAR_EMPTY, LIDAR_OBSTACLE, LIDAR_BASE_STATION, LIDAR_RECEIVER

#: faces of an axis-aligned box, index = 2 * axis + (1 if the normal points to +axis)
FACE_NAMES: tuple[str, ...] = ("-x", "+x", "-y", "+y", "-z", "+z")


def first_hits(
    origin: np.ndarray,
    directions: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    t_max: float = math.inf,
    t_min: float = 1e-6,
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
    # replace zero components by a tiny signed value: no NaN from 0 * inf in the slabs
    safe = np.where(np.abs(directions) < 1e-12, np.where(directions < 0, -1e-12, 1e-12), directions)
    inv = 1.0 / safe
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


def grid_bounds(
    layout: RoadLayout,
    rx_position: np.ndarray,
    *,
    margin_m: float = 3.0,
    min_span_m: float = 10.0,
    headroom_m: float = 3.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper corner (3,) [m] of the LiDAR grid of a vehicle at ``rx_position``.

    x and y cover the RSU and the vehicle plus ``margin_m`` on each side, widened
    symmetrically to at least ``min_span_m``; z runs from 0 to ``headroom_m`` above the
    higher of RSU and vehicle.
    """
    rx = _point("rx_position", rx_position)
    margin_m = check.non_negative("margin_m", margin_m)
    min_span_m = check.non_negative("min_span_m", min_span_m)
    headroom_m = check.positive("headroom_m", headroom_m)
    rsu = layout.rsu_position
    lower = np.minimum(rsu, rx) - margin_m
    upper = np.maximum(rsu, rx) + margin_m
    for axis in (0, 1):
        missing = min_span_m - (upper[axis] - lower[axis])
        if missing > 0:
            lower[axis] -= missing / 2.0
            upper[axis] += missing / 2.0
    lower[2] = 0.0
    upper[2] = max(rsu[2], rx[2]) + headroom_m
    return lower, upper


@functools.lru_cache(maxsize=16)
def _scan_pattern(num_azimuth: int, num_channels: int, elevation_min: float, elevation_max: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Unit ray directions (A*C, 3), azimuth-major, and their float32 reciprocals (3, A, C)."""
    azimuth = (np.arange(num_azimuth) + 0.5) * (2.0 * math.pi / num_azimuth)
    elevation = np.radians(np.linspace(elevation_min, elevation_max, num_channels))
    az, el = np.meshgrid(azimuth, elevation, indexing="ij")
    directions = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)
    safe = np.where(np.abs(directions) < 1e-12, np.where(directions < 0, -1e-12, 1e-12), directions)
    inv = np.ascontiguousarray(np.moveaxis(1.0 / safe, -1, 0), dtype=np.float32)
    directions = directions.reshape(-1, 3)
    directions.flags.writeable = False
    inv.flags.writeable = False
    return directions, inv


def _scan_hits(origin: np.ndarray, lower: np.ndarray, upper: np.ndarray, inv: np.ndarray, *,
               t_max: float, t_min: float = 1e-6) -> np.ndarray:
    """Nearest hit distance [m] (A*C,) of a scan, inf for none.

    Same result as :func:`first_hits` on the scan rays, but each box is only tested on the
    azimuth columns its footprint can cover.
    """
    _, num_azimuth, num_channels = inv.shape
    t = np.full((num_azimuth, num_channels), np.inf, dtype=np.float32)
    step = 2.0 * math.pi / num_azimuth
    for low, high in zip(np.asarray(lower, dtype=float) - origin, np.asarray(upper, dtype=float) - origin):
        if low[0] <= 0.0 <= high[0] and low[1] <= 0.0 <= high[1]:
            columns = np.arange(num_azimuth)  # the sensor stands above or below the box
        else:
            # a footprint not containing the sensor spans the azimuths of its corners
            centre = math.atan2((low[1] + high[1]) / 2.0, (low[0] + high[0]) / 2.0)
            corners = np.arctan2([low[1], low[1], high[1], high[1]], [low[0], high[0], low[0], high[0]])
            spread = np.mod(corners - centre + math.pi, 2.0 * math.pi) - math.pi
            first = math.floor((centre + spread.min()) / step - 0.5)
            last = math.ceil((centre + spread.max()) / step - 0.5)
            columns = np.arange(first, last + 1) % num_azimuth
        inv_x, inv_y, inv_z = inv[:, columns]
        enter = np.full(inv_x.shape, -np.inf, dtype=np.float32)
        leave = np.full(inv_x.shape, np.inf, dtype=np.float32)
        for axis, inv_axis in enumerate((inv_x, inv_y, inv_z)):
            t_a, t_b = np.float32(low[axis]) * inv_axis, np.float32(high[axis]) * inv_axis
            np.maximum(enter, np.minimum(t_a, t_b), out=enter)
            np.minimum(leave, np.maximum(t_a, t_b), out=leave)
        current = t[columns]
        closer = (enter > t_min) & (enter < leave) & (enter <= t_max) & (enter < current)
        if closer.any():
            t[columns] = np.where(closer, enter, current)
    return t.reshape(-1).astype(float)


def lidar_grid(
    layout: RoadLayout,
    obstacles: Boxes,
    rx_position: np.ndarray,
    rx_id: int,
    rng: np.random.Generator,
    *,
    grid: int = 20,
    dropout: float = 0.0,
    margin_m: float = 3.0,
    min_span_m: float = 10.0,
    headroom_m: float = 3.0,
    mount_height_m: float = 0.2,
    num_azimuth: int = 720,
    num_channels: int = 16,
    elevation_deg: tuple[float, float] = (-15.0, 15.0),
    max_range_m: float = 100.0,
    range_noise_m: float = 0.02,
) -> np.ndarray:
    """FLASH-style LiDAR occupancy grid of one vehicle.

    Args:
        layout: road geometry (RSU position).
        obstacles: all boxes of the snapshot; the box owned by ``rx_id`` is ignored.
        rx_position: (3,) vehicle antenna position [m].
        rx_id: the vehicle's id (owner of its own body box).
        rng: draws the range error and the point dropout.
        grid: cells per axis.
        dropout: probability of losing each returned point, in [0, 1].
        margin_m, min_span_m, headroom_m: grid extent, see :func:`grid_bounds` [m].
        mount_height_m: sensor height above the antenna [m].
        num_azimuth: rays per revolution.
        num_channels: laser channels (elevation rows).
        elevation_deg: lowest and highest channel elevation [deg].
        max_range_m: LiDAR range [m].
        range_noise_m: standard deviation of the range error [m].

    Returns:
        (grid, grid, grid) int8 indexed ``[ix, iy, iz]``: 0 empty, 1 obstacle,
        -1 RSU, -2 ego receiver.
    """
    grid = check.positive_int("grid", grid)
    dropout = _probability("dropout", dropout)
    mount_height_m = check.non_negative("mount_height_m", mount_height_m)
    num_azimuth = check.positive_int("num_azimuth", num_azimuth)
    num_channels = check.positive_int("num_channels", num_channels)
    max_range_m = check.positive("max_range_m", max_range_m)
    range_noise_m = check.non_negative("range_noise_m", range_noise_m)
    el_low, el_high = _elevations(elevation_deg)
    rx = _point("rx_position", rx_position)
    lower, upper = grid_bounds(layout, rx, margin_m=margin_m, min_span_m=min_span_m, headroom_m=headroom_m)

    origin = rx + np.array([0.0, 0.0, mount_height_m])
    keep = obstacles.owner != int(rx_id)
    if np.all((origin >= lower) & (origin <= upper)):
        # only boxes reaching into the grid can return a point inside it, and with the
        # sensor in the (convex) grid, boxes outside cannot hide anything inside either
        keep &= np.all((obstacles.upper >= lower) & (obstacles.lower <= upper), axis=1)
    directions, inv = _scan_pattern(num_azimuth, num_channels, el_low, el_high)
    t = _scan_hits(origin, obstacles.lower[keep], obstacles.upper[keep], inv, t_max=max_range_m)

    # randomness is drawn for every ray, hit or not: consumption depends on the shapes only
    noise = rng.normal(0.0, 1.0, len(t)) * range_noise_m
    kept = rng.random(len(t)) >= dropout
    hit = np.isfinite(t) & kept
    points = origin + directions[hit] * np.maximum(t[hit] + noise[hit], 0.0)[:, None]

    out = np.zeros((grid, grid, grid), dtype=np.int8)
    cells = _cell_index(points, lower, upper, grid)
    inside = np.all((cells >= 0) & (cells < grid), axis=1)
    cells = cells[inside]
    out[cells[:, 0], cells[:, 1], cells[:, 2]] = OBSTACLE
    rsu_cell = np.clip(_cell_index(layout.rsu_position[None, :], lower, upper, grid)[0], 0, grid - 1)
    ego_cell = np.clip(_cell_index(rx[None, :], lower, upper, grid)[0], 0, grid - 1)
    out[tuple(rsu_cell)] = BASE_STATION
    out[tuple(ego_cell)] = RECEIVER
    return out


def lidar_grids(
    layout: RoadLayout,
    obstacles: Boxes,
    rx_positions: np.ndarray,
    rx_ids: np.ndarray,
    rng: np.random.Generator,
    **options,
) -> np.ndarray:
    """:func:`lidar_grid` of K vehicles, (K, grid, grid, grid) int8.

    Args:
        rx_positions: (K, 3) antenna positions [m].
        rx_ids: (K,) vehicle ids.
        options: keyword options of :func:`lidar_grid`.
    """
    positions, ids = _vehicles(rx_positions, rx_ids)
    grid = check.positive_int("grid", options.get("grid", 20))
    if len(positions) == 0:
        return np.zeros((0, grid, grid, grid), dtype=np.int8)
    return np.stack([
        lidar_grid(layout, obstacles, positions[k], int(ids[k]), rng, **options)
        for k in range(len(positions))
    ])


def _cell_index(points: np.ndarray, lower: np.ndarray, upper: np.ndarray, grid: int) -> np.ndarray:
    return np.floor((points - lower) / (upper - lower) * grid).astype(np.int64)


def _point(name: str, value: np.ndarray) -> np.ndarray:
    point = np.asarray(value, dtype=float)
    if point.shape != (3,):
        raise ValueError(f"{name} must have shape (3,), got {point.shape}")
    return check.finite_array(name, point.copy())


def _vehicles(rx_positions: np.ndarray, rx_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    positions = np.asarray(rx_positions, dtype=float)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"rx_positions must have shape (K, 3), got {positions.shape}")
    check.finite_array("rx_positions", positions)
    ids = np.asarray(rx_ids).reshape(-1)
    if len(ids) != len(positions):
        raise ValueError(f"rx_ids must have length K = {len(positions)}, got {len(ids)}")
    return positions, ids.astype(np.int64)


def _probability(name: str, value: float) -> float:
    value = check.finite(name, value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def _elevations(elevation_deg: tuple[float, float]) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in elevation_deg)
    except (TypeError, ValueError):
        raise ValueError(f"elevation_deg must be a pair (low, high) [deg], got {elevation_deg!r}") from None
    if not (-90.0 <= low <= high <= 90.0) or not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"elevation_deg must satisfy -90 <= low <= high <= 90, got {elevation_deg!r}")
    return low, high
