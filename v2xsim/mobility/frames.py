"""Traffic that comes from outside the simulator, replayed on the RSU's road (the common
part of the ``sumo`` and ``trace`` mobility models).

A source (SUMO stepping in lock-step, a recorded trace) delivers :class:`Frame` s: every
vehicle at one instant of the source's clock, with the front bumper's position (as SUMO
reports it), speed, lane and vehicle type. The DES time ``t`` is the source time
``origin + t``. Between two frames ``A`` and ``B`` a vehicle's front moves on the straight
line from its record in ``A`` to the one in ``B`` (linear interpolation) and its speed is
the slope of that line; at a frame's own instant position and speed are the frame's.

Road frame: the source's coordinates moved to the road frame's origin ``(x_offset_m,
y_offset_m)`` and turned by ``rotation_deg`` (the direction of the road frame's +x, the
RSU's array axis, counter-clockwise from the source's +x): ``x_road = c dx + s dy``,
``y_road = -s dx + c dy`` with ``(dx, dy)`` the source position minus the offsets and
``c, s`` the cosine and sine of the rotation (0 deg: a shift only).

Two kinds of coverage (``coverage``):

* ``"stretch"`` (default, the straight road): every vehicle drives along +x; the body
  centre is ``length / 2`` behind the front. The lane is the source's lane index (SUMO's
  lane 0 is the rightmost one, the RSU's lane 0 nearest the RSU: the RSU stands on the
  right of the traffic) or, without one, the lane whose centre is nearest ``y_road``. A
  vehicle enters the world's road when its front reaches the start of the covered stretch
  (``layout.x_range[0]``; at once if it appears in the source further on) and leaves when
  its rear passes the end (``layout.x_range[1]``). A vehicle that left never comes back.
* ``"sector"`` (planar traffic, e.g. an intersection): every vehicle has its own heading,
  the source's (SUMO's ``angle``, degrees clockwise from north, turned into the road
  frame); the body centre (the antenna) is ``length / 2`` behind the front along the
  heading. Between frames the centre moves on the straight line from one frame's to the
  next and the heading turns at a constant rate the shorter way (both the frames' own at
  the frames' instants); the velocity is that line's slope. A vehicle is on the world's
  road while its centre is in the RSU's :class:`~v2xsim.geometry.SectorCoverage` (range
  ``coverage_range_m``): it enters and leaves at the instants its centre crosses the
  region's boundary (the world steps there); one that leaves and comes back is a new
  world vehicle. Lanes are not used (``lane`` is the source's index, -1 if none).

In both, a vehicle missing from the next frame (it arrived, or left the ``edges``, in the
source) is gone right after its last record and never comes back. Vehicles get integer
ids in order of entry (ties in SUMO id order), so two sources with equal frames give
equal worlds. A frame may carry a label (``sumo``: the phase of a traffic light), the
:meth:`~FrameMobility.state_label` until the next frame.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from v2xsim.errors import ConfigError
from v2xsim.geometry import DEFAULT_SIZES, RoadLayout, SectorCoverage
from v2xsim.mobility.base import MobilityModel

#: two instants closer than this are the same instant [s]
TIME_TOLERANCE_S = 1e-9
#: a front this close before the start of the stretch counts as on it [m]
ENTRY_TOLERANCE_M = 1e-9
#: the kinds of coverage of a frame model (see the module doc)
COVERAGES = ("stretch", "sector")


@dataclass(frozen=True)
class VehicleType:
    """How the world sees one vehicle type.

    Attributes:
        kind: ``"car"`` (an RSU user) or ``"truck"`` (a blocker only; also buses).
        length_m, width_m, height_m: the body's box [m].
    """

    kind: str
    length_m: float
    width_m: float
    height_m: float


#: vehicle types known by their SUMO type id without asking SUMO: the ones of the shipped
#: networks (``scenarios/sumo``) and SUMO's default passenger car
KNOWN_TYPES: dict[str, VehicleType] = {
    "car": VehicleType("car", *DEFAULT_SIZES["car"]),
    "truck": VehicleType("truck", *DEFAULT_SIZES["truck"]),
    "bus": VehicleType("truck", 12.0, 2.5, 3.4),
    "DEFAULT_VEHTYPE": VehicleType("car", 5.0, 1.8, 1.5),
}

#: SUMO vehicle classes that block but are not served (everything else is a "car")
BLOCKER_CLASSES = frozenset({"truck", "trailer", "bus", "coach", "tram", "rail_urban", "rail", "rail_electric",
                             "rail_fast"})


def vehicle_types(option: Mapping[str, Any] | None, *, model: str) -> dict[str, VehicleType]:
    """The ``types`` option (type id -> ``{kind, length_m, width_m, height_m}``) checked;
    ConfigError naming the entry otherwise."""
    types: dict[str, VehicleType] = {}
    for type_id, spec in (option or {}).items():
        where = f"mobility model {model!r}: types.{type_id}"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: expected a table {{kind, length_m, width_m, height_m}}")
        unknown = set(spec) - {"kind", "length_m", "width_m", "height_m"}
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}; valid: kind, length_m, width_m, height_m")
        kind = spec.get("kind", "car")
        if kind not in ("car", "truck"):
            raise ConfigError(f"{where}.kind: must be 'car' (served) or 'truck' (blocker), got {kind!r}")
        sizes = []
        for key, default in zip(("length_m", "width_m", "height_m"), DEFAULT_SIZES[kind]):
            value = spec.get(key, default)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ConfigError(f"{where}.{key}: must be a finite number > 0, got {value!r}")
            sizes.append(float(value))
        types[str(type_id)] = VehicleType(kind, *sizes)
    return types


@dataclass(frozen=True)
class Frame:
    """Every vehicle of the source at one instant.

    Attributes:
        time_s: source time [s].
        ids: vehicle ids of the source.
        x, y: front bumper position in the source's coordinates (N,) [m].
        speed: (N,) [m/s].
        lane: (N,) lane index, -1 where the source has none (then taken from ``y``).
        types: vehicle type id of each vehicle.
        heading: (N,) driving direction [rad], counter-clockwise from the source's +x;
            NaN where the source has none (needed only by sector coverage).
        label: a name for the state of the traffic from this frame on (e.g. the phase
            of a traffic light), or None.
    """

    time_s: float
    ids: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray
    speed: np.ndarray
    lane: np.ndarray
    types: tuple[str, ...]
    heading: np.ndarray | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if self.heading is None:
            object.__setattr__(self, "heading", np.full(len(self.ids), np.nan))
        if not (len(self.ids) == len(self.x) == len(self.y) == len(self.speed) == len(self.lane) == len(self.types)
                == len(self.heading)):
            raise ValueError("Frame: every field needs one entry per vehicle")


def sumo_heading(angle_deg: float) -> float:
    """SUMO's vehicle angle (degrees clockwise from north, +y) as a heading [rad]
    counter-clockwise from +x, in (-pi, pi]."""
    return wrap_angle(math.radians(90.0 - angle_deg))


def wrap_angle(angle):
    """Angles [rad] (scalar or array) folded into (-pi, pi]."""
    folded = np.pi - np.mod(np.pi - np.asarray(angle, dtype=float), 2.0 * np.pi)
    return float(folded) if np.ndim(folded) == 0 else folded


def frame(time_s: float, records: list[tuple], *, label: str | None = None) -> Frame:
    """A :class:`Frame` from ``(id, x, y, speed, lane, type)`` records, each optionally
    followed by a heading [rad] (NaN: unknown)."""
    if not records:
        return Frame(time_s, (), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, dtype=int), (), label=label)
    columns = list(zip(*records))
    ids, x, y, speed, lane, types = columns[:6]
    heading = np.array(columns[6], dtype=float) if len(columns) > 6 else None
    return Frame(time_s, tuple(ids), np.array(x, dtype=float), np.array(y, dtype=float),
                 np.array(speed, dtype=float), np.array(lane, dtype=int), tuple(types), heading, label)


class FrameMobility(MobilityModel):
    """A mobility model that replays frames of an outside source (see the module doc).

    Subclasses open the source (:meth:`_open`), deliver its frames (:meth:`_next_frame`)
    and say what a vehicle type is (:meth:`_vehicle_type`); ``source`` names the file for
    error messages. ``source_ids`` maps world ids to the source's vehicle ids and
    ``origin_s`` is the source time of the world's t = 0 [s].

    Args:
        x_offset_m: source x of the road frame's origin (the RSU at x = 0) [m].
        y_offset_m: source y of the road frame's origin (the road edge nearest the RSU on
            the straight road; the RSU stands ``road.rsu_setback_m`` behind it, on -y) [m].
        rotation_deg: direction of the road frame's +x (the RSU's array axis) in the
            source, counter-clockwise from the source's +x [deg]; the RSU faces
            ``rotation_deg + 90``.
        coverage: ``"stretch"`` (the straight road) or ``"sector"`` (planar traffic, see
            the module doc).
        coverage_range_m: horizontal range of the sector coverage [m] (sector only).
        types: vehicle types by type id (see :func:`vehicle_types`), before the model's own.
    """

    spawns_vehicles = True
    #: what error messages name (a file)
    source: str = ""
    name: str = ""

    def __init__(self, *, x_offset_m: float = 0.0, y_offset_m: float = 0.0, rotation_deg: float = 0.0,
                 coverage: str = "stretch", coverage_range_m: float | None = None,
                 types: Mapping[str, Any] | None = None) -> None:
        where = f"mobility model {self.name!r}"
        for key, value in (("x_offset_m", x_offset_m), ("y_offset_m", y_offset_m), ("rotation_deg", rotation_deg)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{where}: {key} must be a finite number, got {value!r}")
        if coverage not in COVERAGES:
            raise ConfigError(f"{where}: coverage must be one of {', '.join(COVERAGES)}, got {coverage!r}")
        if coverage == "sector":
            if coverage_range_m is None:
                raise ConfigError(f"{where}: coverage = 'sector' needs coverage_range_m (the RSU's range [m])")
            if (isinstance(coverage_range_m, bool) or not isinstance(coverage_range_m, (int, float))
                    or not 0 < coverage_range_m < math.inf):
                raise ConfigError(f"{where}: coverage_range_m must be a finite number > 0, got {coverage_range_m!r}")
        elif coverage_range_m is not None:
            raise ConfigError(f"{where}: coverage_range_m applies to coverage = 'sector' only")
        self.x_offset_m = float(x_offset_m)
        self.y_offset_m = float(y_offset_m)
        self.rotation_deg = float(rotation_deg)
        self.coverage = coverage
        self.coverage_range_m = None if coverage_range_m is None else float(coverage_range_m)
        #: vehicles move in the plane (sector coverage)
        self.planar = coverage == "sector"
        self.types = vehicle_types(types, model=self.name)

    # ------------------------------------------------------------ the source
    @abstractmethod
    def _open(self, rng: np.random.Generator) -> float:
        """Start the source; returns the source time of the DES's t = 0 [s]."""

    @abstractmethod
    def _next_frame(self) -> Frame | None:
        """The next frame (times increasing), None after the last."""

    @abstractmethod
    def _vehicle_type(self, type_id: str) -> VehicleType:
        """What the type ``type_id`` is (``self.types`` is looked up first)."""

    def close(self) -> None:
        """Release the source (default: nothing to release)."""

    # ------------------------------------------------------------ state
    def reset(self, *, layout: RoadLayout, rng: np.random.Generator) -> None:
        super().reset(layout=layout, rng=rng)
        self.region = SectorCoverage(layout=layout, range_m=self.coverage_range_m) if self.planar else None
        self._type_cache: dict[str, VehicleType] = {}
        self._road: dict[str, int] = {}  # source id -> world id, vehicles on the road
        #: world id -> the source's vehicle id, of every vehicle that entered
        self.source_ids: dict[int, str] = {}
        self._done: set[str] = set()  # source ids that left the road (or passed it unseen)
        self._next_world_id = 0
        self._left: list[int] = []
        self._last_time = -math.inf
        self._a: Frame | None = None
        self.origin_s = float(self._open(rng))
        self._b = self._read()
        self._seek(self.origin_s)
        self._update(self.origin_s)  # the vehicles on the road at t = 0 (nobody left yet)

    def add(self, **kwargs: Any) -> None:
        raise RuntimeError(f"mobility model {self.name!r} puts the vehicles on the road itself")

    def _read(self) -> Frame | None:
        """The source's next frame, checked (times increasing, numbers finite)."""
        got = self._next_frame()
        if got is not None:
            if not math.isfinite(got.time_s) or got.time_s <= self._last_time:
                raise ConfigError(f"{self.source}: times must increase, got {got.time_s:g} s after "
                                  f"{self._last_time:g} s")
            bad = ~(np.isfinite(got.x) & np.isfinite(got.y) & np.isfinite(got.speed))
            if bad.any():
                raise ConfigError(f"{self.source}: vehicle {got.ids[int(np.argmax(bad))]!r} at {got.time_s:g} s "
                                  f"has a non-finite position or speed")
            if self.planar:
                unknown = ~np.isfinite(got.heading)
                if unknown.any():
                    raise ConfigError(f"{self.source}: vehicle {got.ids[int(np.argmax(unknown))]!r} at {got.time_s:g} s "
                                      f"has no angle, which coverage = 'sector' needs (SUMO's angle: the FCD "
                                      f"angle attribute, a CSV angle column)")
            self._last_time = got.time_s
        return got

    def _road_frame(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Source positions (N,) [m] in the road frame (see the module doc)."""
        dx, dy = x - self.x_offset_m, y - self.y_offset_m
        if self.rotation_deg == 0.0:
            return dx, dy
        turn = math.radians(self.rotation_deg)
        c, s = math.cos(turn), math.sin(turn)
        return c * dx + s * dy, -s * dx + c * dy

    def _centres(self, f: Frame, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Body centres (N, 2) [m] and headings (N,) [rad] of a frame's vehicles in the
        road frame (planar)."""
        x, y = self._road_frame(f.x, f.y)
        heading = wrap_angle(f.heading - math.radians(self.rotation_deg))
        half = length / 2.0
        return np.stack([x - half * np.cos(heading), y - half * np.sin(heading)], axis=1), heading

    def _type(self, type_id: str) -> VehicleType:
        found = self._type_cache.get(type_id)
        if found is None:
            found = self.types.get(type_id) or self._vehicle_type(type_id)
            self._type_cache[type_id] = found
        return found

    def _seek(self, source_time: float) -> None:
        """Move the frame pair on until ``A.time <= source_time < B.time``."""
        while self._b is not None and self._b.time_s <= source_time + TIME_TOLERANCE_S:
            self._shift()

    def _shift(self) -> None:
        """B becomes A; vehicles on the road missing from it leave now."""
        a, self._b = self._b, None
        present = set(a.ids)
        for source_id in [s for s in self._road if s not in present]:
            self._left.append(self._road.pop(source_id))
            self._done.add(source_id)
        self._a = a
        self._b = self._read()
        types = [self._type(t) for t in a.types]
        self._length = np.array([t.length_m for t in types])
        self._width = np.array([t.width_m for t in types])
        self._height = np.array([t.height_m for t in types])
        self._kinds = [t.kind for t in types]
        if self.planar:
            self._shift_planar(a)
            return
        self._front = self._road_frame(a.x, a.y)[0]
        lane = a.lane.copy()
        unknown = lane < 0
        if unknown.any():
            y = self._road_frame(a.x[unknown], a.y[unknown])[1]
            nearest = np.clip(np.floor(y / self.layout.lane_width_m), 0, self.layout.num_lanes - 1).astype(int)
            off_road = (y < 0) | (y > self.layout.road_width)
            lane[unknown] = np.where(off_road, -1, nearest)  # a vehicle off the road is refused on entry
        self._lane_a = lane
        b = self._b
        self._slope = np.full(len(a.ids), np.nan)
        self._newcomers = False
        if b is not None:
            row_of = {source_id: row for row, source_id in enumerate(b.ids)}
            rows = np.array([row_of.get(s, -1) for s in a.ids], dtype=int)
            found = rows >= 0
            self._slope[found] = (self._road_frame(b.x[rows[found]], b.y[rows[found]])[0] - self._front[found]) / (
                b.time_s - a.time_s)
            self._newcomers = len(row_of) > int(found.sum())
        self._world_id = np.array([self._road.get(s, -1) for s in a.ids], dtype=int)
        self._gone = np.array([s in self._done for s in a.ids], dtype=bool)

    def _shift_planar(self, a: Frame) -> None:
        """The planar state of frame ``a`` and the lines to the next frame."""
        b = self._b
        self._lane_a = a.lane.copy()
        self._centre, self._heading_a = self._centres(a, self._length)
        self._cslope = np.full((len(a.ids), 2), np.nan)
        self._turn = np.zeros(len(a.ids))
        self._newcomers = False
        if b is not None:
            row_of = {source_id: row for row, source_id in enumerate(b.ids)}
            rows = np.array([row_of.get(s, -1) for s in a.ids], dtype=int)
            found = rows >= 0
            sub = Frame(b.time_s, tuple(b.ids[r] for r in rows[found]), b.x[rows[found]], b.y[rows[found]],
                        b.speed[rows[found]], b.lane[rows[found]], tuple(b.types[r] for r in rows[found]),
                        b.heading[rows[found]])
            centre_b, heading_b = self._centres(sub, self._length[found])
            span = b.time_s - a.time_s
            self._cslope[found] = (centre_b - self._centre[found]) / span
            self._turn[found] = wrap_angle(heading_b - self._heading_a[found]) / span
            self._newcomers = len(row_of) > int(found.sum())
        self._world_id = np.array([self._road.get(s, -1) for s in a.ids], dtype=int)
        self._gone = np.array([s in self._done for s in a.ids], dtype=bool)

    def _update(self, source_time: float) -> list[int]:
        """The state at ``source_time``; returns the world ids that left."""
        left, self._left = self._left, []
        a = self._a
        if a is None:  # before the source's first frame: an empty road
            self._set_state(np.zeros(0, dtype=int), np.zeros(0), np.zeros(0))
            return left
        if self.planar:
            return self._update_planar(source_time, left)
        count = len(a.ids)
        if abs(source_time - a.time_s) <= TIME_TOLERANCE_S:
            alive, front, speed = np.ones(count, dtype=bool), self._front, a.speed
        elif self._b is None:  # past the last frame: nothing is known of anyone
            alive, front, speed = np.zeros(count, dtype=bool), self._front, a.speed
        else:
            alive = np.isfinite(self._slope)
            speed = np.where(alive, self._slope, 0.0)
            front = self._front + speed * (source_time - a.time_s)
        x_min, x_max = self.layout.x_range
        rear = front - self._length
        inside = alive & (front >= x_min - ENTRY_TOLERANCE_M) & (rear <= x_max)
        on_road = self._world_id >= 0
        leaving = on_road & ~inside
        for row in np.flatnonzero(leaving):
            left.append(int(self._world_id[row]))
            del self._road[a.ids[row]]
            self._done.add(a.ids[row])
        self._world_id[leaving] = -1
        passed = alive & (rear > x_max) & ~self._gone
        for row in np.flatnonzero(passed):
            self._done.add(a.ids[row])
        self._gone |= leaving | passed
        entering = np.flatnonzero(inside & ~on_road & ~self._gone)
        for row in sorted(entering, key=lambda r: a.ids[r]):
            lane = int(self._lane_a[row])
            if not 0 <= lane < self.layout.num_lanes:
                where = (f"lane index {lane}" if lane >= 0 else
                         f"y = {a.y[row]:g} m (road frame {a.y[row] - self.y_offset_m:g} m, no lane there)")
                raise ConfigError(f"{self.source}: vehicle {a.ids[row]!r} enters the covered stretch at "
                                  f"{a.time_s:g} s in {where}, but [road] has {self.layout.num_lanes} lanes "
                                  f"(check road.lanes, y_offset_m, edges)")
            self._admit(row)
        rows = np.flatnonzero(self._world_id >= 0)
        rows = rows[np.argsort(self._world_id[rows], kind="stable")]
        self._set_state(rows, front - self._length / 2, speed)
        return left

    def _admit(self, row: int) -> None:
        """Put source vehicle ``row`` on the road under the next world id."""
        world_id = self._next_world_id
        self._next_world_id += 1
        self._world_id[row] = world_id
        self._road[self._a.ids[row]] = world_id
        self.source_ids[world_id] = self._a.ids[row]
        self._entered.append((world_id, self._kinds[row]))

    def _update_planar(self, source_time: float, left: list[int]) -> list[int]:
        a = self._a
        count = len(a.ids)
        if abs(source_time - a.time_s) <= TIME_TOLERANCE_S:
            alive, centre, heading, speed = np.ones(count, dtype=bool), self._centre, self._heading_a, a.speed
            velocity = speed[:, None] * np.stack([np.cos(heading), np.sin(heading)], axis=1)
        elif self._b is None:  # past the last frame: nothing is known of anyone
            alive, centre, heading, speed = np.zeros(count, dtype=bool), self._centre, self._heading_a, a.speed
            velocity = np.zeros((count, 2))
        else:
            alive = np.isfinite(self._cslope[:, 0])
            velocity = np.where(alive[:, None], self._cslope, 0.0)
            since = source_time - a.time_s
            centre = self._centre + velocity * since
            heading = wrap_angle(self._heading_a + self._turn * since)
            speed = np.hypot(velocity[:, 0], velocity[:, 1])
        inside = alive & self.region.contains(centre)
        on_road = self._world_id >= 0
        leaving = on_road & ~inside
        for row in np.flatnonzero(leaving):
            left.append(int(self._world_id[row]))
            del self._road[a.ids[row]]
            if not alive[row]:  # gone from the source: never back
                self._done.add(a.ids[row])
        self._world_id[leaving] = -1
        self._gone |= leaving & ~alive
        entering = np.flatnonzero(inside & ~on_road & ~self._gone)
        for row in sorted(entering, key=lambda r: a.ids[r]):
            self._admit(row)
        rows = np.flatnonzero(self._world_id >= 0)
        rows = rows[np.argsort(self._world_id[rows], kind="stable")]
        self._set_state(rows, centre[:, 0], speed)
        self.y = centre[rows, 1].copy()
        self.heading = np.asarray(heading, dtype=float)[rows].copy()
        self.velocity = velocity[rows].copy()
        return left

    def state_label(self) -> str | None:
        """The label of the last frame passed (e.g. SUMO's traffic-light phase), or None."""
        return None if self._a is None else self._a.label

    def _set_state(self, rows: np.ndarray, centre: np.ndarray, speed: np.ndarray) -> None:
        if len(rows):
            self.ids = self._world_id[rows].copy()
            self.x = centre[rows].copy()
            self.lane = self._lane_a[rows].copy()
            self.speed = np.asarray(speed, dtype=float)[rows].copy()
            self.length = self._length[rows].copy()
            self.width = self._width[rows].copy()
            self.height = self._height[rows].copy()
        else:
            self.ids, self.lane = np.zeros(0, dtype=int), np.zeros(0, dtype=int)
            self.x, self.speed, self.length, self.width, self.height = (np.zeros(0) for _ in range(5))
        self.desired_speed = self.speed.copy()
        if self.planar and not len(rows):
            self.y, self.heading, self.velocity = np.zeros(0), np.zeros(0), np.zeros((0, 2))

    # ------------------------------------------------------------ time
    def step(self, dt: float) -> None:
        """Move to ``dt`` [s] past the state: frames of the source up to then are read."""
        source_time = self.origin_s + self.time + dt
        self._seek(source_time)
        self._left = self._update(source_time)  # with those that left as frames were passed

    def advance(self, dt: float) -> np.ndarray:
        """Move by ``dt`` [s]; returns the world ids of the vehicles that left the road."""
        if dt < 0:
            raise ValueError(f"dt must be >= 0, got {dt}")
        self.step(dt)
        self.time += dt
        left, self._left = self._left, []
        return np.array(left, dtype=int)

    def next_departure_s(self) -> float:
        """Time after the state [s] at which the next vehicle leaves at its current
        velocity: its rear passes the end of the covered stretch, or (sector coverage) its
        centre crosses the region's boundary (inf: none will)."""
        if not self.planar:
            return super().next_departure_s()
        moving = np.hypot(self.velocity[:, 0], self.velocity[:, 1]) > 0
        if not moving.any():
            return math.inf
        xy = np.stack([self.x[moving], self.y[moving]], axis=1)
        return float(self.region.next_change(xy, self.velocity[moving], entering=False).min())

    def next_entry_s(self) -> float:
        """Time after the state [s] at which the next vehicle's front reaches the covered
        stretch (sector coverage: its centre enters the region), or at which the next frame
        brings new vehicles (inf: none known)."""
        a, b = self._a, self._b
        if b is None:
            return math.inf
        now = self.origin_s + self.time
        if a is None:
            return max(b.time_s - now, 0.0)
        if self.planar:
            waiting = (self._world_id < 0) & ~self._gone & np.isfinite(self._cslope[:, 0])
            since = now - a.time_s
            after = self.region.next_change(self._centre[waiting] + self._cslope[waiting] * since,
                                            self._cslope[waiting], entering=True)
            instants = now + after
            instants = instants[instants <= b.time_s]
            best = float(instants.min()) if len(instants) else math.inf
            if self._newcomers:
                best = min(best, b.time_s)
            return max(best - now, 0.0) if best < math.inf else math.inf
        x_min = self.layout.x_range[0]
        waiting = (self._world_id < 0) & ~self._gone & (self._slope > 0) & (self._front < x_min)
        instants = a.time_s + (x_min - self._front[waiting]) / self._slope[waiting]
        instants = instants[(instants > now) & (instants <= b.time_s)]
        best = float(instants.min()) if len(instants) else math.inf
        if self._newcomers:
            best = min(best, b.time_s)
        return max(best - now, 0.0) if best < math.inf else math.inf
