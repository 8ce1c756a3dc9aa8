"""Roof camera rendered by per-pixel ray casting, in FLASH's 90 x 160 RGB format.

Camera pose: a pinhole camera ``mount_height_m`` above the vehicle antenna, looking
horizontally along ``yaw_deg`` (measured in the x-y plane from +x towards +y; the
default -90 deg looks across the road towards the RSU side, -y) and tilted up by
``pitch_deg`` so the RSU head at ``h`` stays in view from the far lanes.
``fov_deg`` is the horizontal field of view; the vertical one follows from the aspect
ratio (square pixels). Image rows run top to bottom, columns left to right.

Scene: obstacle boxes (one flat colour per class, the vehicle's own body excluded),
the RSU (a pole and an array head in :data:`RSU_COLOUR`), the ground ``z = 0`` (road
with lane markings, sidewalks, verge), the building walls of the layout (when
``layout.buildings``) and the sky. The nearest surface along each pixel's ray wins
(z-buffer). Box and wall faces are shaded by their normal (:data:`FACE_SHADE`), so
every colour in an image is one of a small, exactly known palette.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from v2xsim import checks as check
from v2xsim.geometry import OBSTACLE_KINDS, Boxes, RoadLayout
from v2xsim.sensing.rays import MIN_HIT_M, as_point, as_vehicles, nonzero_components

#: base RGB per obstacle class (same order as :data:`v2xsim.geometry.OBSTACLE_KINDS`)
KIND_COLOURS: dict[str, tuple[int, int, int]] = {
    "car": (40, 90, 210),
    "truck": (210, 40, 40),
    "pedestrian": (40, 190, 70),
    "parked_car": (150, 70, 180),
}
RSU_COLOUR: tuple[int, int, int] = (255, 170, 0)
SKY_COLOUR: tuple[int, int, int] = (150, 195, 240)
ROAD_COLOUR: tuple[int, int, int] = (65, 65, 70)
MARKING_COLOUR: tuple[int, int, int] = (235, 235, 235)
SIDEWALK_COLOUR: tuple[int, int, int] = (160, 155, 150)
VERGE_COLOUR: tuple[int, int, int] = (110, 100, 80)
WALL_COLOUR: tuple[int, int, int] = (190, 170, 140)

#: brightness factor per box face, order of :data:`v2xsim.sensing.rays.FACE_NAMES`
#: (-x, +x, -y, +y, -z, +z)
FACE_SHADE: tuple[float, ...] = (0.70, 0.80, 0.60, 0.90, 0.45, 1.00)

#: width of the square RSU pole [m]
RSU_POLE_WIDTH_M: float = 0.3
#: RSU array head (length along x, depth along y, height) [m], centred on the array
RSU_HEAD_SIZE_M: tuple[float, float, float] = (0.8, 0.3, 0.5)
#: building wall height [m]
WALL_HEIGHT_M: float = 12.0
#: width of a lane marking [m]
MARKING_WIDTH_M: float = 0.15
#: dash period and dash length of the lane separators [m]
DASH_PERIOD_M, DASH_LENGTH_M = 6.0, 3.0
#: far plane: farther surfaces show sky [m]
CAMERA_RANGE_M: float = 300.0


def shaded(colour: tuple[int, int, int], face: int) -> np.ndarray:
    """The uint8 RGB (3,) of a box of base ``colour`` seen on ``face`` (0..5)."""
    return _to_uint8(np.asarray(colour, dtype=float) * FACE_SHADE[face])


def rsu_boxes(layout: RoadLayout) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper corners (2, 3) [m] of the RSU pole and head, as drawn."""
    rsu = layout.rsu_position
    head = np.asarray(RSU_HEAD_SIZE_M)
    half_pole = RSU_POLE_WIDTH_M / 2.0
    pole_top = rsu[2] - head[2] / 2.0
    lower = np.array([[rsu[0] - half_pole, rsu[1] - half_pole, 0.0], rsu - head / 2.0])
    upper = np.array([[rsu[0] + half_pole, rsu[1] + half_pole, pole_top], rsu + head / 2.0])
    return lower, upper


def road_paint(layout: RoadLayout, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ground colour (N, 3) uint8 at points ``(x, y)`` [m]: verge, sidewalks, road and lane
    markings (solid at the road edges, dashed between lanes)."""
    road_width = layout.road_width
    paint = np.broadcast_to(np.asarray(VERGE_COLOUR, dtype=np.uint8), (len(x), 3)).copy()
    sidewalk = (y >= -layout.sidewalk_m) & (y <= road_width + layout.sidewalk_m)
    road = (y >= 0.0) & (y <= road_width)
    paint[sidewalk] = SIDEWALK_COLOUR
    paint[road] = ROAD_COLOUR
    half = MARKING_WIDTH_M / 2.0
    edge = (np.abs(y) <= half) | (np.abs(y - road_width) <= half)
    separators = np.arange(1, layout.num_lanes) * layout.lane_width_m
    near_separator = np.any(np.abs(y[:, None] - separators[None, :]) <= half, axis=1)
    dashed = near_separator & (np.mod(x, DASH_PERIOD_M) < DASH_LENGTH_M)
    paint[edge | dashed] = MARKING_COLOUR
    return paint


def camera_image(
    layout: RoadLayout,
    obstacles: Boxes,
    rx_position: np.ndarray,
    rx_id: int,
    *,
    width: int = 160,
    height: int = 90,
    fov_deg: float = 110.0,
    yaw_deg: float = -90.0,
    pitch_deg: float = 10.0,
    mount_height_m: float = 0.2,
    max_range_m: float = CAMERA_RANGE_M,
) -> np.ndarray:
    """RGB view from the roof of one vehicle, (height, width, 3) uint8.

    Args:
        layout: road geometry (RSU, lanes, sidewalks, walls).
        obstacles: all boxes of the snapshot; the box owned by ``rx_id`` is not drawn.
        rx_position: (3,) vehicle antenna position [m].
        rx_id: the vehicle's id.
        width, height: image size [px].
        fov_deg: horizontal field of view [deg], in (0, 180).
        yaw_deg: viewing direction in the x-y plane from +x [deg]; -90 looks at -y.
        pitch_deg: upward tilt [deg], in (-90, 90).
        mount_height_m: camera height above the antenna [m].
        max_range_m: far plane [m]; farther surfaces show sky.
    """
    width = check.positive_int("width", width)
    height = check.positive_int("height", height)
    fov_deg = check.finite("fov_deg", fov_deg)
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    yaw_deg = check.finite("yaw_deg", yaw_deg)
    pitch_deg = check.finite("pitch_deg", pitch_deg)
    if not -90.0 < pitch_deg < 90.0:
        raise ValueError(f"pitch_deg must be in (-90, 90), got {pitch_deg}")
    mount_height_m = check.non_negative("mount_height_m", mount_height_m)
    max_range_m = check.positive("max_range_m", max_range_m)
    rx = as_point("rx_position", rx_position)
    origin = rx + np.array([0.0, 0.0, mount_height_m])
    view = _view(width, height, fov_deg, yaw_deg, pitch_deg)
    directions = view.rays

    depth = np.full(len(directions), max_range_m)
    colour = np.broadcast_to(np.asarray(SKY_COLOUR, dtype=np.uint8), (len(directions), 3)).copy()
    _draw_ground(layout, origin, directions, depth, colour)
    _draw_walls(layout, origin, directions, depth, colour)

    own = obstacles.owner == int(rx_id)
    rsu_lower, rsu_upper = rsu_boxes(layout)
    lower = np.concatenate([obstacles.lower[~own], rsu_lower])
    upper = np.concatenate([obstacles.upper[~own], rsu_upper])
    palette = np.array([KIND_COLOURS[name] for name in OBSTACLE_KINDS] + [RSU_COLOUR], dtype=float)
    base = palette[np.concatenate([obstacles.kind[~own], [len(OBSTACLE_KINDS)] * len(rsu_lower)])]
    t, box, face = _box_layer(origin, lower, upper, view, t_max=max_range_m)
    t, box, face = t.reshape(-1), box.reshape(-1), face.reshape(-1)
    front = t < depth
    shade = np.asarray(FACE_SHADE)[face[front]]
    colour[front] = _to_uint8(base[box[front]] * shade[:, None])
    return colour.reshape(height, width, 3)


def camera_images(
    layout: RoadLayout,
    obstacles: Boxes,
    rx_positions: np.ndarray,
    rx_ids: np.ndarray,
    *,
    headings: np.ndarray | None = None,
    **options,
) -> np.ndarray:
    """:func:`camera_image` of K vehicles, (K, height, width, 3) uint8.

    Args:
        rx_positions: (K, 3) antenna positions [m].
        rx_ids: (K,) vehicle ids.
        headings: (K,) driving directions [rad, counter-clockwise from +x]; the camera is
            mounted on the body, so vehicle k looks along ``yaw_deg + degrees(headings[k])``
            (default: every vehicle along +x, the straight road's).
        options: keyword options of :func:`camera_image`.
    """
    positions, ids = as_vehicles(rx_positions, rx_ids)
    if len(positions) == 0:
        height = check.positive_int("height", options.get("height", 90))
        width = check.positive_int("width", options.get("width", 160))
        return np.zeros((0, height, width, 3), dtype=np.uint8)
    if headings is None:
        return np.stack([
            camera_image(layout, obstacles, positions[k], int(ids[k]), **options)
            for k in range(len(positions))
        ])
    headings = np.asarray(headings, dtype=float).reshape(-1)
    if len(headings) != len(positions):
        raise ValueError(f"headings must have one entry per vehicle ({len(positions)}), got {len(headings)}")
    check.finite_array("headings", headings)
    yaw = float(options.pop("yaw_deg", -90.0))
    return np.stack([
        camera_image(layout, obstacles, positions[k], int(ids[k]), yaw_deg=body_yaw_deg(yaw, headings[k]), **options)
        for k in range(len(positions))
    ])


#: body yaws are rounded to this many decimals [deg], so vehicles driving the same
#: direction share one cached camera geometry (1e-6 deg moves a pixel ray by < 1e-8 rad)
YAW_DECIMALS = 6


def body_yaw_deg(mount_yaw_deg: float, heading_rad: float) -> float:
    """World yaw [deg] of a camera mounted at ``mount_yaw_deg`` on a body heading
    ``heading_rad`` (0 heading: the mount yaw itself, exactly), in (-180, 180]."""
    if heading_rad == 0.0:
        return mount_yaw_deg
    yaw = round(mount_yaw_deg + math.degrees(heading_rad), YAW_DECIMALS)
    yaw = math.fmod(yaw, 360.0)
    if yaw > 180.0:
        yaw -= 360.0
    elif yaw <= -180.0:
        yaw += 360.0
    return yaw


class _View(NamedTuple):
    """Cached camera geometry for one (size, fov, yaw, pitch)."""

    rays: np.ndarray  # (H*W, 3) unit pixel ray directions, row-major
    inv: np.ndarray  # (3, H, W) float32 reciprocals of the ray components (no zeros)
    basis: np.ndarray  # (3, 3) rows: forward, right, up
    tan_h: float
    tan_v: float
    planes: np.ndarray  # (5, 3) inward normals of the near and the four side planes


def camera_basis(yaw_deg: float, pitch_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit forward, right and up vectors (3,) of a camera looking along ``yaw_deg`` (from
    +x towards +y in the x-y plane) tilted up by ``pitch_deg`` [deg]."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    forward = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)])
    right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
    return forward, right, np.cross(right, forward)


@functools.lru_cache(maxsize=16)
def _view(width: int, height: int, fov_deg: float, yaw_deg: float, pitch_deg: float) -> _View:
    forward, right, up = camera_basis(yaw_deg, pitch_deg)
    tan_h = math.tan(math.radians(fov_deg) / 2.0)
    tan_v = tan_h * height / width
    u = ((np.arange(width) + 0.5) / width * 2.0 - 1.0) * tan_h
    v = (1.0 - (np.arange(height) + 0.5) / height * 2.0) * tan_v
    rays = forward + u[None, :, None] * right + v[:, None, None] * up
    rays = rays / np.linalg.norm(rays, axis=-1, keepdims=True)
    inv = np.ascontiguousarray(np.moveaxis(1.0 / nonzero_components(rays), -1, 0), dtype=np.float32)
    planes = np.stack([forward, tan_h * forward - right, tan_h * forward + right,
                       tan_v * forward - up, tan_v * forward + up])
    rays = rays.reshape(-1, 3)
    for array in (rays, inv, planes):
        array.flags.writeable = False
    return _View(rays, inv, np.stack([forward, right, up]), tan_h, tan_v, planes)


def _box_layer(origin: np.ndarray, lower: np.ndarray, upper: np.ndarray, view: _View, *,
               t_max: float = math.inf, t_min: float = MIN_HIT_M
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest box per pixel: (H, W) distance [m] (inf: none), box index (-1), entry face (-1).

    Same result as :func:`v2xsim.sensing.rays.first_hits` on the pixel rays, but each
    box is only tested on the pixels of its projected bounding rectangle.
    """
    _, height, width = view.inv.shape
    t = np.full((height, width), np.inf, dtype=np.float32)
    box = np.full((height, width), -1, dtype=np.int64)
    face = np.full((height, width), -1, dtype=np.int64)
    low = np.asarray(lower, dtype=float) - origin
    high = np.asarray(upper, dtype=float) - origin
    for index in np.flatnonzero(_in_frustum(low, high, view.planes)):
        rows, cols = _screen_rectangle(low[index], high[index], view, height, width)
        if rows.start >= rows.stop or cols.start >= cols.stop:
            continue
        inv_x, inv_y, inv_z = view.inv[:, rows, cols]
        near_x, far_x = _slab(low[index, 0], high[index, 0], inv_x)
        near_y, far_y = _slab(low[index, 1], high[index, 1], inv_y)
        near_z, far_z = _slab(low[index, 2], high[index, 2], inv_z)
        enter = np.maximum(np.maximum(near_x, near_y), near_z)
        leave = np.minimum(np.minimum(far_x, far_y), far_z)
        depth = t[rows, cols]
        hit = (enter > t_min) & (enter < leave) & (enter <= t_max) & (enter < depth)
        if not hit.any():
            continue
        axis = np.where((near_x >= near_y) & (near_x >= near_z), 0, np.where(near_y >= near_z, 1, 2))
        # a ray travelling towards -axis enters through the upper face (normal +axis)
        going_down = np.choose(axis, (inv_x, inv_y, inv_z)) < 0
        depth[hit] = enter[hit]
        box[rows, cols][hit] = index
        face[rows, cols][hit] = (2 * axis + going_down)[hit]
    return t.astype(float), box, face


def _slab(low: float, high: float, inv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t_low, t_high = np.float32(low) * inv, np.float32(high) * inv
    return np.minimum(t_low, t_high), np.maximum(t_low, t_high)


def _screen_rectangle(low: np.ndarray, high: np.ndarray, view: _View, height: int, width: int
                      ) -> tuple[slice, slice]:
    """Pixel rows and columns that may see a box (relative corners ``low``, ``high``)."""
    corners = np.stack(np.meshgrid(*zip(low, high), indexing="ij"), axis=-1).reshape(-1, 3)
    depth, across, vertical = view.basis @ corners.T
    if np.any(depth <= 1e-3):  # straddles the camera plane: projection unbounded
        return slice(0, height), slice(0, width)
    col = (across / depth / view.tan_h + 1.0) / 2.0 * width - 0.5
    row = (1.0 - vertical / depth / view.tan_v) / 2.0 * height - 0.5
    # one pixel of slack against rounding at the rectangle's border
    c0, c1 = max(int(math.floor(col.min())) - 1, 0), min(int(math.ceil(col.max())) + 2, width)
    r0, r1 = max(int(math.floor(row.min())) - 1, 0), min(int(math.ceil(row.max())) + 2, height)
    return slice(r0, r1), slice(c0, c1)


def _in_frustum(lower: np.ndarray, upper: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """Boxes (relative to the camera) not wholly outside one frustum plane, bool (B,)."""
    if len(lower) == 0:
        return np.zeros(0, dtype=bool)
    # the corner farthest along each plane normal decides (the "p-vertex" test)
    p_vertex = np.where(planes[None, :, :] > 0, upper[:, None, :], lower[:, None, :])
    return np.all(np.einsum("bpk,pk->bp", p_vertex, planes) > 0, axis=1)


def _draw_ground(layout: RoadLayout, origin: np.ndarray, directions: np.ndarray,
                 depth: np.ndarray, colour: np.ndarray) -> None:
    down = directions[:, 2] < 0
    t = np.full(len(directions), np.inf)
    t[down] = -origin[2] / directions[down, 2]
    hit = t < depth
    x = origin[0] + t[hit] * directions[hit, 0]
    y = origin[1] + t[hit] * directions[hit, 1]
    colour[hit] = road_paint(layout, x, y)
    depth[hit] = t[hit]


def _draw_walls(layout: RoadLayout, origin: np.ndarray, directions: np.ndarray,
                depth: np.ndarray, colour: np.ndarray) -> None:
    walls = layout.wall_y
    if walls is None:
        return
    # the near wall (y < 0) faces +y, the far wall faces -y
    for wall_y, face in zip(walls, (3, 2)):
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (wall_y - origin[1]) / directions[:, 1]
        z = origin[2] + t * directions[:, 2]
        hit = (t > 0) & (t < depth) & (z >= 0.0) & (z <= WALL_HEIGHT_M)
        colour[hit] = shaded(WALL_COLOUR, face)
        depth[hit] = t[hit]


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)
