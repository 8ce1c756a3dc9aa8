"""Camera and LiDAR seen in the Sionna RT scene, in the formats of :func:`v2xsim.sensing.sense`.

:class:`SceneSensors` (the backend's :meth:`~v2xsim.channel.base.ChannelModel.scene_sensor`)
renders GPS, camera and LiDAR in the same Mitsuba scene the paths are traced in
(buildings, lamp posts, ground, the obstacle cubes at their exact positions). Camera
pixels and LiDAR beams of all K vehicles are each one vectorised ``ray_intersect`` call;
a vehicle's own body is transparent to its own sensors. Images use the geometric camera's
palette and face shading, so a network trained on geometric FLASH-like images sees the
same colours for the same things. The LiDAR marks the obstacle boxes; static geometry is
background unless ``lidar_static``.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import numpy as np

from v2xsim.channel.sionna_rt.scene import RTScene
from v2xsim.channel.sionna_rt.scenes import pool_shape_id
from v2xsim.geometry import OBSTACLE_KINDS, Boxes, RoadLayout, Snapshot
from v2xsim.sensing.camera import (
    CAMERA_RANGE_M,
    FACE_SHADE,
    KIND_COLOURS,
    RSU_COLOUR,
    SIDEWALK_COLOUR,
    SKY_COLOUR,
    WALL_COLOUR,
    camera_basis,
    road_paint,
    rsu_boxes,
)
from v2xsim.sensing.gps import gps_reading
from v2xsim.sensing.lidar import (
    BASE_STATION,
    GRID_HEADROOM_M,
    GRID_MIN_SPAN_M,
    LIDAR_CHANNELS,
    LIDAR_ELEVATION_DEG,
    LIDAR_RANGE_M,
    OBSTACLE,
    RECEIVER,
    cell_index,
    grid_bounds,
)
from v2xsim.sensing.rays import as_vehicles, first_hits, scan_pattern

#: camera colours of the built-in street's facades and lamp posts [RGB]; obstacle boxes,
#: road, RSU and sky use the palette of :mod:`v2xsim.sensing.camera`
GLASS_COLOUR: tuple[int, int, int] = (110, 140, 170)
POST_COLOUR: tuple[int, int, int] = (95, 95, 100)
#: colour of a user-scene shape whose radio material has none [RGB]
DEFAULT_SHAPE_COLOUR: tuple[int, int, int] = (180, 180, 180)
#: with ``lidar_static``, static geometry hit below this height is ground [m]
GROUND_CUT_M = 0.2
#: a camera hit on scene geometry whose normal has at least this upward component [1] ...
GROUND_NORMAL_MIN_Z = 0.9
#: ... and that lies within this height of z = 0 carries the road paint [m]
GROUND_HEIGHT_TOLERANCE_M = 0.05
#: a sensor ray that hits its own vehicle's body restarts this far behind the hit [m] ...
SKIP_STEP_M = 1e-3
#: ... at most this many times (a convex body needs two: in and out)
MAX_SKIPS = 6
#: a registry id no shape has (pads the own-shape table)
NO_SHAPE = np.uint32(0xFFFFFFFF)


@dataclass(frozen=True)
class _ShapeTable:
    """Sensor attributes of the shapes of one loaded scene, by Mitsuba registry id.

    Attributes:
        reg: (S,) sorted registry ids (uint32) of the scene's shapes.
        colour: (S + 1, 3) float base RGB; the last row (no shape) is the sky.
        kind: (S + 1,) obstacle class code of a pool cube, -1 for anything else.
        static: (S + 1,) bool: scene geometry (not a pool cube, not "no shape").
        by_name: shape id -> registry id.
    """

    reg: np.ndarray
    colour: np.ndarray
    kind: np.ndarray
    static: np.ndarray
    by_name: dict[str, int]

    def rows(self, reg: np.ndarray) -> np.ndarray:
        """Row of each registry id; ``S`` (the sky row) for 0 / unknown ids."""
        if len(self.reg) == 0:
            return np.zeros(np.shape(reg), dtype=int)
        pos = np.minimum(np.searchsorted(self.reg, reg), len(self.reg) - 1)
        return np.where(self.reg[pos] == reg, pos, len(self.reg))


def _shape_colour(name: str, shape, kind: int) -> tuple[float, float, float]:
    """Base camera colour of a scene shape [RGB 0..255]."""
    if kind >= 0:
        return KIND_COLOURS[OBSTACLE_KINDS[kind]]
    if name.startswith("v2x-building-"):
        return GLASS_COLOUR if shape.bsdf().id().endswith("_glass") else WALL_COLOUR
    if name.startswith("v2x-post-"):
        return POST_COLOUR
    if name == "v2x-ground":
        return SIDEWALK_COLOUR
    colour = getattr(shape.bsdf(), "color", None)  # a Sionna radio material's display colour
    try:
        return tuple(255.0 * float(c) for c in colour)
    except TypeError:
        return DEFAULT_SHAPE_COLOUR


def _radical_inverse(index: int) -> float:
    """Van der Corput sequence in base 2."""
    value, scale = 0.0, 0.5
    while index:
        value += scale * (index & 1)
        index >>= 1
        scale /= 2.0
    return value


@functools.lru_cache(maxsize=8)
def camera_rays(width: int, height: int, fov_deg: float, yaw_deg: float, pitch_deg: float,
                spp: int = 1) -> np.ndarray:
    """Unit pixel-ray directions (spp, height * width, 3), rows top to bottom; read-only.

    Same pinhole model as :mod:`v2xsim.sensing.camera` (yaw from +x in the x-y plane
    [deg], upward pitch [deg], horizontal field of view [deg], square pixels). Sample ``s``
    of a pixel goes through the shifted Hammersley point
    ``((s + 1/2) / spp, (phi_2(s) + 1/(2 spp)) mod 1)`` of the pixel, so ``spp = 1`` is the
    pixel centre.
    """
    forward, right, up = camera_basis(yaw_deg, pitch_deg)
    half_width = math.tan(math.radians(fov_deg) / 2.0)
    half_height = half_width * height / width
    samples = []
    for s in range(spp):
        dx = (s + 0.5) / spp
        dy = (_radical_inverse(s) + 0.5 / spp) % 1.0
        u = (2.0 * (np.arange(width) + dx) / width - 1.0) * half_width
        v = (1.0 - 2.0 * (np.arange(height) + dy) / height) * half_height
        rays = forward + u[None, :, None] * right + v[:, None, None] * up
        samples.append((rays / np.linalg.norm(rays, axis=-1, keepdims=True)).reshape(-1, 3))
    out = np.stack(samples)
    out.flags.writeable = False
    return out


def _face_shade(normal: np.ndarray) -> np.ndarray:
    """Brightness (...,) of surfaces with unit normals (..., 3): the camera's per-face
    factors, blended by the squared normal components (exact on axis-aligned faces)."""
    shade = np.asarray(FACE_SHADE)
    weight = normal ** 2
    index = 2 * np.arange(3) + (normal > 0)
    return np.sum(weight * shade[index], axis=-1)


class SceneSensors:
    """GPS, camera and LiDAR of the vehicles, seen in an :class:`RTScene`.

    Args:
        scene: the backend's scene (loaded on the first :meth:`sense`).
        camera_spp: rays per camera pixel (1 = the pixel centre, as
            :mod:`v2xsim.sensing.camera`; more = anti-aliased, proportionally slower).
        lidar_static: LiDAR points on static scene geometry (buildings, lamp posts, any
            shape of a user scene) higher than :data:`GROUND_CUT_M` count as obstacles
            too; by default only the world's obstacle boxes do.

    Attributes:
        sense_seconds: durations of the last :meth:`sense` call's parts [s] (place,
            lidar, camera).
    """

    def __init__(self, scene: RTScene, *, camera_spp: int = 1, lidar_static: bool = False) -> None:
        self.scene = scene
        self.layout = scene.layout
        self.camera_spp = camera_spp
        self.lidar_static = lidar_static
        self.sense_seconds: dict[str, float] = {}
        self._table: _ShapeTable | None = None
        self._table_generation = -1

    def sense(self, layout: RoadLayout, snapshot: Snapshot, rng: np.random.Generator, *,
              config=None) -> dict[str, np.ndarray]:
        """GPS, camera and LiDAR of K vehicles, seen in the ray-tracing scene.

        Same keys, shapes, dtypes, poses and value conventions as
        :func:`v2xsim.sensing.sense`, and the same use of ``rng`` (GPS error, then per
        vehicle the LiDAR range error and dropout of every ray), but the sensors see the
        3-D scene the channels are traced in: buildings, lamp posts, the ground and the
        obstacle boxes as moved meshes (at their exact, unquantised positions).

        - GPS: :func:`v2xsim.sensing.gps_reading` of the positions.
        - Camera: one Mitsuba ray cast (``ray_intersect``) for the pixels of all K
          cameras, ``camera_spp`` rays per pixel averaged. A hit is coloured by what was
          hit (obstacle classes, road paint, sidewalk and verge, RSU and sky in the
          palette of :mod:`v2xsim.sensing.camera`; facades, lamp posts and user-scene
          shapes by their material) and shaded by the surface normal like the geometric
          camera's box faces. The RSU pole and head are not radio geometry (the array is a
          point source), so they are drawn as in :mod:`v2xsim.sensing.camera` (visual only).
        - LiDAR: the scan of :mod:`v2xsim.sensing.lidar` (``lidar_num_azimuth`` x 16
          channels, -15..15 deg, 100 m) for all K vehicles in one Mitsuba ray cast; hit
          points (range error, dropout) binned into the grid of
          :func:`v2xsim.sensing.lidar.grid_bounds`. Points on obstacle boxes (cars,
          trucks, pedestrians, parked cars: the blockers the world moves) are 1; ground,
          buildings and lamp posts are static background filtered out as a LiDAR
          pipeline's ground / map removal would (they cannot stand between the RSU and a
          lane), unless ``lidar_static`` marks static hits above 0.2 m too. RSU cell -1,
          ego cell -2.

        Own body: camera and LiDAR sit ``config.mount_height_m`` above the antenna, as in
        the geometric sensors; a ray that hits its own vehicle's box (``owner == id``)
        passes through it (restarts 1 mm behind each hit), so the own body is invisible
        to its own sensors and returns no points, while other vehicles still see it.

        Args:
            layout: the road (must be the scene's own layout).
            snapshot: the vehicles (ids, antenna positions [m]) and every box.
            rng: source of GPS error, LiDAR range error and dropout.
            config: :class:`v2xsim.sensing.SensorConfig` (default: its defaults).

        Returns:
            ``{"gps": (K, 2) float32 [m], "image": (K, H, W, 3) uint8,
            "lidar": (K, G, G, G) int8}``.
        """
        from v2xsim.sensing import SensorConfig

        if layout != self.layout:
            raise ValueError("layout: a Sionna RT scene senses only the road it was built for")
        obstacles = snapshot.obstacles
        config = SensorConfig() if config is None else config
        if not isinstance(config, SensorConfig):
            raise ValueError(f"config must be a SensorConfig, got {type(config).__name__}")
        if not isinstance(obstacles, Boxes):
            raise ValueError(f"obstacles must be Boxes, got {type(obstacles).__name__}")
        positions = np.asarray(snapshot.positions, dtype=float)
        if positions.size == 0:
            positions = positions.reshape(0, 3)
        positions, ids = as_vehicles(positions, snapshot.ids)
        num, grid = len(positions), config.lidar_grid
        gps = gps_reading(positions, rng, noise_std_m=config.gps_noise_m)
        if num == 0:
            return {"gps": gps,
                    "image": np.zeros((0, config.camera_height, config.camera_width, 3), dtype=np.uint8),
                    "lidar": np.zeros((0, grid, grid, grid), dtype=np.int8)}
        self.scene.load()
        started = time.perf_counter()
        slot = self.scene.place_boxes(obstacles.centre, obstacles.size, obstacles.kind)
        table = self._shape_table()
        own = self._own_shapes(table, obstacles, slot, ids)
        sensor = positions + np.array([0.0, 0.0, config.mount_height_m])
        placed = time.perf_counter()
        lidar = self._lidar(table, sensor, positions, own, rng, config)
        scanned = time.perf_counter()
        image = self._camera(table, sensor, own, config)
        self.sense_seconds = {"place": placed - started, "lidar": scanned - placed,
                              "camera": time.perf_counter() - scanned}
        return {"gps": gps, "image": image, "lidar": lidar}

    def _shape_table(self) -> _ShapeTable:
        """The shape table of the scene as loaded now (rebuilt after each reload)."""
        if self._table is None or self._table_generation != self.scene.generation:
            _, mi, dr = self.scene.sionna
            prefixes = {pool_shape_id(name, 0)[:-3]: code for code, name in enumerate(OBSTACLE_KINDS)}
            rows = []
            for shape in self.scene.mi_scene.shapes():
                reg = int(dr.reinterpret_array(mi.UInt32, mi.ShapePtr(shape))[0])
                name = shape.id()
                kind = next((code for prefix, code in prefixes.items() if name.startswith(prefix)), -1)
                rows.append((reg, name, kind, _shape_colour(name, shape, kind)))
            rows.sort()
            self._table = _ShapeTable(
                reg=np.array([r[0] for r in rows], dtype=np.uint32),
                colour=np.array([r[3] for r in rows] + [SKY_COLOUR], dtype=float),
                kind=np.array([r[2] for r in rows] + [-1], dtype=int),
                static=np.array([r[2] < 0 for r in rows] + [False]),
                by_name={r[1]: r[0] for r in rows})
            self._table_generation = self.scene.generation
        return self._table

    @staticmethod
    def _own_shapes(table: _ShapeTable, obstacles: Boxes, slot: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Registry ids (K, M) of each vehicle's own boxes, padded with :data:`NO_SHAPE`."""
        mine = [np.flatnonzero(obstacles.owner == vehicle) for vehicle in ids]
        own = np.full((len(ids), max([1] + [len(m) for m in mine])), NO_SHAPE, dtype=np.uint32)
        for k, boxes in enumerate(mine):
            for j, b in enumerate(boxes):
                own[k, j] = table.by_name[pool_shape_id(OBSTACLE_KINDS[obstacles.kind[b]], int(slot[b]))]
        return own

    def _cast(self, origins: np.ndarray, directions: np.ndarray, own: np.ndarray, *, normals: bool
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """First hits of the same R directions from each of K origins [m], in one ray cast.

        Rays that hit one of their vehicle's own shapes (``own[k]``) continue behind it.

        Returns:
            ``(t, reg, normal)``: (K, R) float32 distance [m] (inf = no hit), (K, R)
            uint32 registry id of the shape hit (0 = none), (K, R, 3) float32 geometric
            normal at the hit (only with ``normals``, else None).
        """
        _, mi, dr = self.scene.sionna
        scene = self.scene.mi_scene
        num, count = len(origins), len(directions)
        vehicle = np.repeat(np.arange(num), count)
        start = np.repeat(np.asarray(origins, dtype=np.float32), count, axis=0)
        heading = np.tile(np.asarray(directions, dtype=np.float32), (num, 1))
        distance = np.full(num * count, np.inf, dtype=np.float32)
        shape = np.zeros(num * count, dtype=np.uint32)
        normal = np.zeros((num * count, 3), dtype=np.float32) if normals else None
        travelled = np.zeros(num * count, dtype=np.float32)
        todo = np.arange(num * count)
        for _ in range(MAX_SKIPS + 1):
            ray = mi.Ray3f(mi.Point3f(*(mi.Float(np.ascontiguousarray(start[todo, a])) for a in range(3))),
                           mi.Vector3f(*(mi.Float(np.ascontiguousarray(heading[todo, a])) for a in range(3))))
            if normals:
                hit = scene.ray_intersect(ray, mi.RayFlags.Minimal, True)
            else:
                hit = scene.ray_intersect_preliminary(ray, True)
            t = np.asarray(hit.t.numpy(), dtype=np.float32)
            reg = np.asarray(dr.reinterpret_array(mi.UInt32, hit.shape).numpy(), dtype=np.uint32)
            found = np.isfinite(t)
            through = found & np.any(reg[:, None] == own[vehicle[todo]], axis=1)
            done, final = todo[~through], found[~through]
            distance[done] = np.where(final, travelled[done] + t[~through], np.inf)
            shape[done] = np.where(final, reg[~through], 0)
            if normals:
                normal[done] = np.asarray(hit.n.numpy(), dtype=np.float32).reshape(3, -1).T[~through]
            todo = todo[through]
            if len(todo) == 0:
                break
            step = t[through] + np.float32(SKIP_STEP_M)
            start[todo] += heading[todo] * step[:, None]
            travelled[todo] += step
        # rays still inside their own body after MAX_SKIPS stay misses
        return (distance.reshape(num, count), shape.reshape(num, count),
                normal.reshape(num, count, 3) if normals else None)

    def _lidar(self, table: _ShapeTable, sensor: np.ndarray, positions: np.ndarray, own: np.ndarray,
               rng: np.random.Generator, config) -> np.ndarray:
        directions, _ = scan_pattern(config.lidar_num_azimuth, LIDAR_CHANNELS, *LIDAR_ELEVATION_DEG)
        t, reg, _ = self._cast(sensor, directions, own, normals=False)
        rows = table.rows(reg)
        hit = np.isfinite(t) & (t <= LIDAR_RANGE_M)
        marked = table.kind[rows] >= 0
        if self.lidar_static:
            height = sensor[:, None, 2] + np.where(hit, t, 0.0) * directions[None, :, 2]
            marked |= table.static[rows] & (height > GROUND_CUT_M)
        grid = config.lidar_grid
        out = np.zeros((len(sensor), grid, grid, grid), dtype=np.int8)
        rsu = self.layout.rsu_position
        for k in range(len(sensor)):
            # drawn for every ray, hit or not, as the geometric LiDAR does
            noise = rng.normal(0.0, 1.0, len(directions)) * config.lidar_range_noise_m
            kept = rng.random(len(directions)) >= config.lidar_dropout
            use = hit[k] & marked[k] & kept
            points = sensor[k] + directions[use] * np.maximum(t[k, use] + noise[use], 0.0)[:, None]
            lower, upper = grid_bounds(self.layout, positions[k], margin_m=config.lidar_margin_m,
                                       min_span_m=GRID_MIN_SPAN_M, headroom_m=GRID_HEADROOM_M)
            cells = cell_index(points, lower, upper, grid)
            cells = cells[np.all((cells >= 0) & (cells < grid), axis=1)]
            out[k, cells[:, 0], cells[:, 1], cells[:, 2]] = OBSTACLE
            out[(k, *np.clip(cell_index(rsu, lower, upper, grid), 0, grid - 1))] = BASE_STATION
            out[(k, *np.clip(cell_index(positions[k], lower, upper, grid), 0, grid - 1))] = RECEIVER
        return out

    def _camera(self, table: _ShapeTable, sensor: np.ndarray, own: np.ndarray, config) -> np.ndarray:
        height, width, spp = config.camera_height, config.camera_width, self.camera_spp
        rays = camera_rays(width, height, float(config.camera_fov_deg), float(config.camera_yaw_deg),
                           float(config.camera_pitch_deg), spp).reshape(-1, 3)
        t, reg, normal = self._cast(sensor, rays, own, normals=True)
        rows = table.rows(reg)
        sky = ~np.isfinite(t) | (t > CAMERA_RANGE_M)
        rgb = table.colour[rows] * _face_shade(normal)[..., None]
        point = sensor[:, None, :] + np.where(sky, 0.0, t)[..., None] * rays[None]
        # ground: upward faces of scene geometry at z ~ 0 carry the road paint
        ground = ~sky & table.static[rows] & (normal[..., 2] > GROUND_NORMAL_MIN_Z) \
            & (np.abs(point[..., 2]) < GROUND_HEIGHT_TOLERANCE_M)
        rgb[ground] = road_paint(self.layout, point[ground][:, 0], point[ground][:, 1])
        rgb[sky] = SKY_COLOUR
        depth = np.where(sky, np.inf, t)
        rsu_lower, rsu_upper = rsu_boxes(self.layout)
        for k in range(len(sensor)):
            t_rsu, _, face = first_hits(sensor[k], rays, rsu_lower, rsu_upper, t_max=CAMERA_RANGE_M)
            front = t_rsu < depth[k]
            if front.any():
                rgb[k, front] = np.asarray(RSU_COLOUR, dtype=float) * np.asarray(FACE_SHADE)[face[front], None]
        image = rgb.reshape(len(sensor), spp, height, width, 3).mean(axis=1)
        return np.clip(np.rint(image), 0, 255).astype(np.uint8)
