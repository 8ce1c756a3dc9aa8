"""Static road geometry: the RSU site, obstacle boxes, segment tests, snapshots, and the
random placement of vehicles and background blockers (no time here).

Coordinates [m]: x along the road (the RSU's ULA axis), y across it (lanes at y > 0),
z up. The RSU stands at ``(0, -rsu_setback_m, rsu_height_m)``; its coverage is the
road stretch ``|x| <= coverage_length / 2``.

Planar traffic (an intersection, a SUMO network; :class:`SectorCoverage`): the same frame
is the RSU's own (x its array axis, +y the ground direction it faces); vehicles have a
heading, and their coverage is the ground region the codebook's sector reaches, up to a
range. Headings are counter-clockwise from +x [rad]; a vehicle's box is the axis-aligned
box of its turned body (:func:`footprint`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from v2xsim import checks as check
from v2xsim.timing import coverage_length as _coverage_length

#: obstacle classes; index = code stored in :class:`Boxes.kind`
OBSTACLE_KINDS: tuple[str, ...] = ("car", "truck", "pedestrian", "parked_car")
KIND_CODE = {name: code for code, name in enumerate(OBSTACLE_KINDS)}

#: default box size (length along x, width along y, height) [m] per class
DEFAULT_SIZES: dict[str, tuple[float, float, float]] = {
    "car": (4.5, 1.8, 1.5),
    "truck": (12.0, 2.5, 4.0),
    "pedestrian": (0.5, 0.5, 1.8),
    "parked_car": (4.5, 1.8, 1.5),
}


@dataclass(frozen=True, kw_only=True)
class RoadLayout:
    """Static geometry of the RSU site.

    Attributes:
        rsu_height_m: RSU array height ``h`` [m].
        coverage_angle_rad: RSU coverage angle ``phi`` [rad], in (0, pi).
        num_lanes: lanes, all driving in +x.
        lane_width_m: lane width [m].
        rsu_setback_m: distance of the RSU pole from the road edge y = 0 [m].
        sidewalk_m: sidewalk width on both sides [m]; building walls stand behind it.
        buildings: whether street-side walls reflect (image method).
        antenna_height_m: vehicle antenna height [m].
        lane_speed_limits_kmh: speed limit per lane [km/h] (None = no limit), or None.
    """

    rsu_height_m: float = 10.0
    coverage_angle_rad: float = math.radians(120.0)
    num_lanes: int = 3
    lane_width_m: float = 3.5
    rsu_setback_m: float = 1.0
    sidewalk_m: float = 3.0
    buildings: bool = True
    antenna_height_m: float = 1.6
    lane_speed_limits_kmh: tuple[float | None, ...] | None = None

    def __post_init__(self) -> None:
        check.positive("rsu_height_m", self.rsu_height_m)
        check.angle_in_open_interval("coverage_angle_rad", self.coverage_angle_rad, math.pi)
        check.positive_int("num_lanes", self.num_lanes)
        check.positive("lane_width_m", self.lane_width_m)
        check.non_negative("rsu_setback_m", self.rsu_setback_m)
        check.non_negative("sidewalk_m", self.sidewalk_m)
        check.positive("antenna_height_m", self.antenna_height_m)
        if self.lane_speed_limits_kmh is not None:
            limits = tuple(self.lane_speed_limits_kmh)
            if len(limits) != self.num_lanes:
                raise ValueError(f"lane_speed_limits_kmh needs {self.num_lanes} values (one per lane), got {len(limits)}")
            for index, limit in enumerate(limits):
                if limit is not None:
                    check.positive(f"lane_speed_limits_kmh[{index}]", limit)
            object.__setattr__(self, "lane_speed_limits_kmh", limits)

    @property
    def coverage_length(self) -> float:
        """Covered road length ``2 h tan(phi/2)`` [m]."""
        return _coverage_length(self.rsu_height_m, self.coverage_angle_rad)

    @property
    def x_range(self) -> tuple[float, float]:
        """Entry and exit x of the covered stretch [m]."""
        half = self.coverage_length / 2.0
        return -half, half

    @property
    def rsu_position(self) -> np.ndarray:
        """RSU array centre (3,) [m]."""
        return np.array([0.0, -self.rsu_setback_m, self.rsu_height_m])

    @property
    def lane_centres(self) -> np.ndarray:
        """y of each lane centre (num_lanes,) [m]."""
        return (np.arange(self.num_lanes) + 0.5) * self.lane_width_m

    @property
    def road_width(self) -> float:
        return self.num_lanes * self.lane_width_m

    @property
    def wall_y(self) -> tuple[float, float] | None:
        """y of the two building walls, or None without buildings."""
        if not self.buildings:
            return None
        near = -max(self.sidewalk_m, self.rsu_setback_m + 0.5)
        return near, self.road_width + self.sidewalk_m


@dataclass(frozen=True)
class Boxes:
    """Axis-aligned obstacle boxes.

    Attributes:
        centre: (B, 3) box centres [m] (z = half height for boxes on the ground).
        size: (B, 3) length, width, height [m].
        kind: (B,) int codes into :data:`OBSTACLE_KINDS`.
        owner: (B,) id of the vehicle a box belongs to (-1: none); a vehicle's own body
            never blocks its own links.
    """

    centre: np.ndarray
    size: np.ndarray
    kind: np.ndarray
    owner: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        centre = np.asarray(self.centre, dtype=float).reshape(-1, 3)
        size = np.asarray(self.size, dtype=float).reshape(-1, 3)
        kind = np.asarray(self.kind, dtype=int).reshape(-1)
        owner = np.full(len(kind), -1) if self.owner is None else np.asarray(self.owner, dtype=int).reshape(-1)
        if not (len(centre) == len(size) == len(kind) == len(owner)):
            raise ValueError("Boxes: centre, size, kind and owner must have the same length")
        if np.any(size <= 0):
            raise ValueError("Boxes: size must be > 0")
        if np.any((kind < 0) | (kind >= len(OBSTACLE_KINDS))):
            raise ValueError(f"Boxes: kind codes must be in 0..{len(OBSTACLE_KINDS) - 1}")
        object.__setattr__(self, "centre", centre)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "owner", owner)

    @classmethod
    def empty(cls) -> "Boxes":
        return cls(np.zeros((0, 3)), np.ones((0, 3)), np.zeros(0, dtype=int))

    @classmethod
    def concat(cls, *parts: "Boxes") -> "Boxes":
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.centre for p in parts]),
            np.concatenate([p.size for p in parts]),
            np.concatenate([p.kind for p in parts]),
            np.concatenate([p.owner for p in parts]),
        )

    def __len__(self) -> int:
        return len(self.kind)

    @property
    def lower(self) -> np.ndarray:
        return self.centre - self.size / 2.0

    @property
    def upper(self) -> np.ndarray:
        return self.centre + self.size / 2.0


#: |cos| or |sin| of a heading below this is taken as exactly 0, so a body turned by a
#: multiple of 90 deg has exactly its length and width swapped (or kept)
AXIS_SNAP = 1e-12


def footprint(length, width, heading) -> tuple[np.ndarray, np.ndarray]:
    """Extent along x and along y [m] of the axis-aligned box of a body ``length x width``
    [m] turned by ``heading`` [rad] (counter-clockwise from +x), arrays broadcast.

    Exact for headings that are multiples of 90 deg (length and width kept or swapped);
    for any other heading it is the bounding box of the turned rectangle, larger than the
    body by up to a factor ``sqrt(2)`` per side at 45 deg (an approximation: every
    obstacle is an axis-aligned box, see :func:`segment_hits`).
    """
    heading = np.asarray(heading, dtype=float)
    cos, sin = np.abs(np.cos(heading)), np.abs(np.sin(heading))
    cos = np.where(cos < AXIS_SNAP, 0.0, np.where(cos > 1.0 - AXIS_SNAP, 1.0, cos))
    sin = np.where(sin < AXIS_SNAP, 0.0, np.where(sin > 1.0 - AXIS_SNAP, 1.0, sin))
    length, width = np.asarray(length, dtype=float), np.asarray(width, dtype=float)
    return length * cos + width * sin, length * sin + width * cos


def on_ground(kind: str, x, y, *, size: tuple[float, float, float] | None = None, owner=None,
              heading=None) -> Boxes:
    """Boxes of one class standing on the road at ``(x, y)`` (arrays of equal length),
    bodies turned by ``heading`` [rad] (default: along +x; see :func:`footprint`)."""
    x = np.atleast_1d(np.asarray(x, dtype=float))
    y = np.atleast_1d(np.asarray(y, dtype=float))
    length, width, height = size or DEFAULT_SIZES[kind]
    centre = np.stack([x, y, np.full_like(x, height / 2.0)], axis=1)
    sizes = np.tile([length, width, height], (len(x), 1))
    if heading is not None:
        sizes[:, 0], sizes[:, 1] = footprint(length, width, np.broadcast_to(np.asarray(heading, dtype=float), x.shape))
    return Boxes(centre, sizes, np.full(len(x), KIND_CODE[kind]), owner)


def segment_hits(p0: np.ndarray, p1: np.ndarray, boxes: Boxes) -> np.ndarray:
    """Which boxes each segment crosses (slab test), bool (..., B).

    Args:
        p0, p1: segment end points, (..., 3) [m].
    """
    p0 = np.asarray(p0, dtype=float)[..., None, :]
    d = np.asarray(p1, dtype=float)[..., None, :] - p0
    lower, upper = boxes.lower, boxes.upper
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t_a = (lower - p0) * inv
        t_b = (upper - p0) * inv
    t_lo = np.minimum(t_a, t_b)
    t_hi = np.maximum(t_a, t_b)
    # a segment parallel to a slab is inside it for all t, or never
    parallel = d == 0
    inside = (p0 >= lower) & (p0 <= upper)
    t_lo = np.where(parallel, np.where(inside, -np.inf, np.inf), t_lo)
    t_hi = np.where(parallel, np.where(inside, np.inf, -np.inf), t_hi)
    enter = np.maximum(t_lo.max(axis=-1), 0.0)
    leave = np.minimum(t_hi.min(axis=-1), 1.0)
    return enter < leave


@dataclass(frozen=True)
class Snapshot:
    """The vehicles on the road at one instant, and every obstacle box.

    Attributes:
        ids: (K,) vehicle ids (owners of their own car boxes).
        positions: (K, 3) vehicle antenna positions [m].
        obstacles: all boxes, the vehicles' own bodies included.
        speeds: (K,) speeds [m/s], when known.
        channels: (K, Nt) RSU -> vehicle channels, when computed.
        headings: (K,) driving directions [rad] counter-clockwise from +x, when known
            (None: along +x, the straight road's).
    """

    ids: np.ndarray
    positions: np.ndarray
    obstacles: Boxes
    speeds: np.ndarray | None = None
    channels: np.ndarray | None = None
    headings: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Row of each of ``ids`` in this snapshot (all must be present)."""
        order = np.argsort(self.ids)
        return order[np.searchsorted(self.ids, ids, sorter=order)]


def vehicle_boxes(layout: RoadLayout, positions: np.ndarray, ids: np.ndarray, kinds=None, headings=None) -> Boxes:
    """Car (or truck) bodies for vehicles at antenna ``positions`` (K, 3), turned by
    ``headings`` (K,) [rad] (default: along +x; see :func:`footprint`)."""
    positions = np.asarray(positions, dtype=float).reshape(-1, 3)
    kinds = ["car"] * len(positions) if kinds is None else list(kinds)
    parts = [
        on_ground(kind, positions[i, 0], positions[i, 1], owner=[int(ids[i])],
                  heading=None if headings is None else headings[i])
        for i, kind in enumerate(kinds)
    ]
    return Boxes.concat(*parts)


@dataclass(frozen=True, kw_only=True)
class SectorCoverage:
    """The ground region an RSU covers when traffic moves in the plane.

    A vehicle antenna at ground point ``(x, y)`` (height ``layout.antenna_height_m``) is
    covered when it is

    * in front of the RSU: ``y > y_rsu`` (the RSU faces +y);
    * inside the codebook's sector: its direction from the array makes an angle of at most
      ``phi / 2`` with the array's broadside plane, ``|x| <= tan(phi/2) sqrt((y - y_rsu)^2
      + (h - h_a)^2)`` (``phi`` the coverage angle, ``h`` the RSU and ``h_a`` the antenna
      height): the beams of the codebook span exactly these directions, and on a line
      under the RSU this is the straight road's stretch ``|x| <= h tan(phi/2)`` for
      ``h_a = 0``;
    * within ``range_m`` of the RSU pole, horizontally.

    Attributes:
        layout: the RSU site (position, height, coverage angle, antenna height).
        range_m: largest horizontal distance from the RSU pole [m].
    """

    layout: RoadLayout
    range_m: float

    def __post_init__(self) -> None:
        check.positive("range_m", self.range_m)

    def _constraints(self, xy: np.ndarray, velocity: np.ndarray | None = None
                     ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Each condition as ``a t^2 + b t + c <= 0`` along ``xy + velocity t``, arrays (N,)
        (velocity None: at t = 0 only, ``a = b = 0``)."""
        rsu = self.layout.rsu_position
        x, u = xy[:, 0] - rsu[0], xy[:, 1] - rsu[1]
        if velocity is None:
            velocity = np.zeros_like(xy)
        vx, vy = velocity[:, 0], velocity[:, 1]
        dz = rsu[2] - self.layout.antenna_height_m
        t2 = math.tan(self.layout.coverage_angle_rad / 2.0) ** 2
        zero = np.zeros(len(x))
        return [
            (zero, -vy, -u),  # in front: u > 0
            (vx * vx - t2 * vy * vy, 2.0 * (x * vx - t2 * u * vy), x * x - t2 * (u * u + dz * dz)),
            (vx * vx + vy * vy, 2.0 * (x * vx + u * vy), x * x + u * u - self.range_m ** 2),
        ]

    def contains(self, xy: np.ndarray) -> np.ndarray:
        """Whether each ground point (N, 2) [m] is covered, bool (N,)."""
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        front, sector, disc = (c for _, _, c in self._constraints(xy))
        return (front < 0) & (sector <= 0) & (disc <= 0)

    def crossings(self, xy: np.ndarray, velocity: np.ndarray) -> np.ndarray:
        """The instants t > 0 [s] (N, 6) at which points moving on ``xy + velocity t``
        ((N, 2) [m], (N, 2) [m/s]) may cross the region's boundary (roots of the
        conditions; NaN where there is none)."""
        roots = []
        for a, b, c in self._constraints(xy, velocity):
            with np.errstate(divide="ignore", invalid="ignore"):
                linear = np.abs(a) < 1e-12
                disc = b * b - 4.0 * a * c
                sq = np.sqrt(np.where(disc >= 0, disc, np.nan))
                # numerically stable pair of roots
                q = -0.5 * (b + np.copysign(sq, b))
                r1 = np.where(linear, np.where(b != 0, -c / b, np.nan), q / a)
                r2 = np.where(linear, np.nan, c / q)
            roots += [r1, r2]
        out = np.stack(roots, axis=1)
        return np.where(out > 0, out, np.nan)

    def next_change(self, xy: np.ndarray, velocity: np.ndarray, *, entering: bool,
                    nudge_s: float = 1e-7) -> np.ndarray:
        """Time [s] (N,) until each point on ``xy + velocity t`` is inside (``entering``)
        or outside (else) the region, just after a boundary crossing; inf if it never is
        on that straight line."""
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        velocity = np.asarray(velocity, dtype=float).reshape(-1, 2)
        times = self.crossings(xy, velocity)
        best = np.full(len(xy), np.inf)
        for column in range(times.shape[1]):
            t = times[:, column]
            valid = np.isfinite(t)
            if not valid.any():
                continue
            after = self.contains(xy[valid] + velocity[valid] * (t[valid] + nudge_s)[:, None])
            hit = np.zeros(len(xy), dtype=bool)
            hit[valid] = after if entering else ~after
            best = np.where(hit & (t < best), t, best)
        return best


#: lateral position of parked cars: centre this far beyond the far road edge [m]
PARKED_CAR_OFFSET_M = 0.9


def background_blockers(layout: RoadLayout, rng: np.random.Generator, *, pedestrians: int, parked_cars: int,
                        crossing_share: float = 0.0) -> Boxes:
    """Static background blockers at random positions along the covered stretch.

    Pedestrians stand on the far sidewalk, or (each with probability ``crossing_share``)
    somewhere on the carriageway, crossing; parked cars stand at the far kerb. Draws from
    ``rng``: the crossing choice and crossing offsets (only when ``crossing_share > 0``),
    then the pedestrians' x, then the parked cars' x.
    """
    if pedestrians < 0 or parked_cars < 0:
        raise ValueError(f"pedestrians and parked_cars must be >= 0, got {pedestrians}, {parked_cars}")
    x_min, x_max = layout.x_range
    far_walk = layout.road_width + layout.sidewalk_m / 2.0
    parts = []
    if pedestrians:
        if crossing_share > 0:
            on_walk = rng.random(pedestrians) < 1.0 - crossing_share
            y = np.where(on_walk, far_walk, rng.uniform(0.0, layout.road_width, pedestrians))
        else:
            y = np.full(pedestrians, far_walk)
        parts.append(on_ground("pedestrian", rng.uniform(x_min, x_max, pedestrians), y))
    if parked_cars:
        parts.append(on_ground("parked_car", rng.uniform(x_min, x_max, parked_cars),
                               np.full(parked_cars, layout.road_width + PARKED_CAR_OFFSET_M)))
    return Boxes.concat(*parts)


#: share of the pedestrians of a random drop that are crossing the road
DROP_CROSSING_SHARE = 0.5
#: clearance kept between bodies in one lane when placing a drop's vehicles [m]
DROP_CLEARANCE_M = 0.5
#: placement attempts per vehicle before a drop accepts an overlap (a crowded lane)
DROP_PLACEMENT_TRIES = 100


def random_drop(
    rng: np.random.Generator,
    layout: RoadLayout,
    num_vehicles: int,
    *,
    num_trucks: int = 1,
    num_pedestrians: int = 2,
    num_parked_cars: int = 1,
) -> Snapshot:
    """A FLASH-like snapshot: ``num_vehicles`` cars in random lanes and positions of the
    covered stretch, plus blocking trucks (in lanes) and the background blockers of
    :func:`background_blockers` (a share :data:`DROP_CROSSING_SHARE` of the pedestrians
    crossing)."""
    if num_vehicles < 0:
        raise ValueError(f"num_vehicles must be >= 0, got {num_vehicles}")
    x_min, x_max = layout.x_range
    lanes = layout.lane_centres
    truck_x = rng.uniform(x_min, x_max, num_trucks)
    truck_lane = rng.integers(0, len(lanes), num_trucks)
    occupied = [(float(x0), int(l0), DEFAULT_SIZES["truck"][0]) for x0, l0 in zip(truck_x, truck_lane)]
    car_length = DEFAULT_SIZES["car"][0]
    x = np.empty(num_vehicles)
    lane = np.empty(num_vehicles, dtype=int)
    for k in range(num_vehicles):
        # rejection sampling keeps bodies in one lane from overlapping where there is room
        for _ in range(DROP_PLACEMENT_TRIES):
            x[k], lane[k] = rng.uniform(x_min, x_max), rng.integers(0, len(lanes))
            if all(l0 != lane[k] or abs(x0 - x[k]) > (n0 + car_length) / 2 + DROP_CLEARANCE_M
                   for x0, l0, n0 in occupied):
                break
        occupied.append((float(x[k]), int(lane[k]), car_length))
    y = lanes[lane]
    rx = np.stack([x, y, np.full(num_vehicles, layout.antenna_height_m)], axis=1)
    ids = np.arange(num_vehicles)
    parts = [vehicle_boxes(layout, rx, ids)]
    if num_trucks:
        parts.append(on_ground("truck", truck_x, lanes[truck_lane]))
    parts.append(background_blockers(layout, rng, pedestrians=num_pedestrians, parked_cars=num_parked_cars,
                                     crossing_share=DROP_CROSSING_SHARE))
    return Snapshot(ids=ids, positions=rx, obstacles=Boxes.concat(*parts))
