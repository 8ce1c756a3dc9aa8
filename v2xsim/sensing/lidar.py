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

import math

import numpy as np

from v2xsim import checks as check
from v2xsim.formats import LIDAR_BASE_STATION, LIDAR_EMPTY, LIDAR_OBSTACLE, LIDAR_RECEIVER
from v2xsim.geometry import Boxes, RoadLayout
from v2xsim.sensing.rays import MIN_HIT_M, as_point, as_vehicles, scan_pattern

EMPTY, OBSTACLE, BASE_STATION, RECEIVER = LIDAR_EMPTY, LIDAR_OBSTACLE, LIDAR_BASE_STATION, LIDAR_RECEIVER

#: LiDAR defaults (a VLP-16): laser channels, lowest and highest channel elevation [deg],
#: range [m]
LIDAR_CHANNELS = 16
LIDAR_ELEVATION_DEG: tuple[float, float] = (-15.0, 15.0)
LIDAR_RANGE_M = 100.0
#: grid defaults: margin around RSU and vehicle in x and y [m], minimum horizontal span
#: [m], headroom above the higher of RSU and vehicle [m]
GRID_MARGIN_M = 3.0
GRID_MIN_SPAN_M = 10.0
GRID_HEADROOM_M = 3.0


def grid_bounds(
    layout: RoadLayout,
    rx_position: np.ndarray,
    *,
    margin_m: float = GRID_MARGIN_M,
    min_span_m: float = GRID_MIN_SPAN_M,
    headroom_m: float = GRID_HEADROOM_M,
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper corner (3,) [m] of the LiDAR grid of a vehicle at ``rx_position``.

    x and y cover the RSU and the vehicle plus ``margin_m`` on each side, widened
    symmetrically to at least ``min_span_m``; z runs from 0 to ``headroom_m`` above the
    higher of RSU and vehicle.
    """
    rx = as_point("rx_position", rx_position)
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


def _scan_hits(origin: np.ndarray, lower: np.ndarray, upper: np.ndarray, inv: np.ndarray, *,
               t_max: float, t_min: float = MIN_HIT_M) -> np.ndarray:
    """Nearest hit distance [m] (A*C,) of a scan, inf for none.

    Same result as :func:`~v2xsim.sensing.rays.first_hits` on the scan rays, but each box
    is only tested on the azimuth columns its footprint can cover.
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
    margin_m: float = GRID_MARGIN_M,
    min_span_m: float = GRID_MIN_SPAN_M,
    headroom_m: float = GRID_HEADROOM_M,
    mount_height_m: float = 0.2,
    num_azimuth: int = 720,
    num_channels: int = LIDAR_CHANNELS,
    elevation_deg: tuple[float, float] = LIDAR_ELEVATION_DEG,
    max_range_m: float = LIDAR_RANGE_M,
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
    rx = as_point("rx_position", rx_position)
    lower, upper = grid_bounds(layout, rx, margin_m=margin_m, min_span_m=min_span_m, headroom_m=headroom_m)

    origin = rx + np.array([0.0, 0.0, mount_height_m])
    keep = obstacles.owner != int(rx_id)
    if np.all((origin >= lower) & (origin <= upper)):
        # only boxes reaching into the grid can return a point inside it, and with the
        # sensor in the (convex) grid, boxes outside cannot hide anything inside either
        keep &= np.all((obstacles.upper >= lower) & (obstacles.lower <= upper), axis=1)
    directions, inv = scan_pattern(num_azimuth, num_channels, el_low, el_high)
    t = _scan_hits(origin, obstacles.lower[keep], obstacles.upper[keep], inv, t_max=max_range_m)

    # randomness is drawn for every ray, hit or not: consumption depends on the shapes only
    noise = rng.normal(0.0, 1.0, len(t)) * range_noise_m
    kept = rng.random(len(t)) >= dropout
    hit = np.isfinite(t) & kept
    points = origin + directions[hit] * np.maximum(t[hit] + noise[hit], 0.0)[:, None]

    out = np.zeros((grid, grid, grid), dtype=np.int8)
    cells = cell_index(points, lower, upper, grid)
    inside = np.all((cells >= 0) & (cells < grid), axis=1)
    cells = cells[inside]
    out[cells[:, 0], cells[:, 1], cells[:, 2]] = OBSTACLE
    rsu_cell = np.clip(cell_index(layout.rsu_position[None, :], lower, upper, grid)[0], 0, grid - 1)
    ego_cell = np.clip(cell_index(rx[None, :], lower, upper, grid)[0], 0, grid - 1)
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
    positions, ids = as_vehicles(rx_positions, rx_ids)
    grid = check.positive_int("grid", options.get("grid", 20))
    if len(positions) == 0:
        return np.zeros((0, grid, grid, grid), dtype=np.int8)
    return np.stack([
        lidar_grid(layout, obstacles, positions[k], int(ids[k]), rng, **options)
        for k in range(len(positions))
    ])


def cell_index(points: np.ndarray, lower: np.ndarray, upper: np.ndarray, grid: int) -> np.ndarray:
    """Grid cell ``[ix, iy, iz]`` (N, 3) int64 of points (N, 3) [m] in the grid from
    ``lower`` to ``upper`` [m] with ``grid`` cells per axis (may lie outside 0..grid-1)."""
    return np.floor((points - lower) / (upper - lower) * grid).astype(np.int64)


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
