"""Traffic that comes from outside the simulator, replayed on the RSU's road (the common
part of the ``sumo`` and ``trace`` mobility models).

A source (SUMO stepping in lock-step, a recorded trace) delivers :class:`Frame` s: every
vehicle at one instant of the source's clock, with the front bumper's position (as SUMO
reports it), speed, lane and vehicle type. The DES time ``t`` is the source time
``origin + t``. Between two frames ``A`` and ``B`` a vehicle's front moves on the straight
line from its record in ``A`` to the one in ``B`` (linear interpolation) and its speed is
the slope of that line; at a frame's own instant position and speed are the frame's.

Road frame: ``x_road = x_source - x_offset_m``, ``y_road = y_source - y_offset_m``; every
vehicle drives along +x; the body centre is ``length / 2`` behind the front. The lane is
the source's lane index (SUMO's lane 0 is the rightmost one, the RSU's lane 0 nearest the
RSU: the RSU stands on the right of the traffic) or, without one, the lane whose centre
is nearest ``y_road``.

Entry and exit: a vehicle enters the world's road when its front reaches the start of the
covered stretch (``layout.x_range[0]``; at once if it appears in the source further on)
and leaves when its rear passes the end (``layout.x_range[1]``) or when it is missing from
the next frame (it arrived, or left the road, in the source): it is gone right after its
last record. A vehicle that left never comes back. Vehicles get integer ids in order of
entry (ties in SUMO id order), so two sources with equal frames give equal worlds.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from v2xsim.errors import ConfigError
from v2xsim.geometry import DEFAULT_SIZES, RoadLayout
from v2xsim.mobility.base import MobilityModel

#: two instants closer than this are the same instant [s]
TIME_TOLERANCE_S = 1e-9
#: a front this close before the start of the stretch counts as on it [m]
ENTRY_TOLERANCE_M = 1e-9


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
    """

    time_s: float
    ids: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray
    speed: np.ndarray
    lane: np.ndarray
    types: tuple[str, ...]

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.x) == len(self.y) == len(self.speed) == len(self.lane) == len(self.types)):
            raise ValueError("Frame: every field needs one entry per vehicle")


def frame(time_s: float, records: list[tuple[str, float, float, float, int, str]]) -> Frame:
    """A :class:`Frame` from ``(id, x, y, speed, lane, type)`` records."""
    if not records:
        return Frame(time_s, (), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, dtype=int), ())
    ids, x, y, speed, lane, types = zip(*records)
    return Frame(time_s, tuple(ids), np.array(x, dtype=float), np.array(y, dtype=float),
                 np.array(speed, dtype=float), np.array(lane, dtype=int), tuple(types))


class FrameMobility(MobilityModel):
    """A mobility model that replays frames of an outside source (see the module doc).

    Subclasses open the source (:meth:`_open`), deliver its frames (:meth:`_next_frame`)
    and say what a vehicle type is (:meth:`_vehicle_type`); ``source`` names the file for
    error messages. ``source_ids`` maps world ids to the source's vehicle ids and
    ``origin_s`` is the source time of the world's t = 0 [s].

    Args:
        x_offset_m: source x of the RSU (x = 0 of the road frame) [m].
        y_offset_m: source y of the road edge nearest the RSU (y = 0 of the road frame) [m].
        types: vehicle types by type id (see :func:`vehicle_types`), before the model's own.
    """

    spawns_vehicles = True
    #: what error messages name (a file)
    source: str = ""
    name: str = ""

    def __init__(self, *, x_offset_m: float = 0.0, y_offset_m: float = 0.0,
                 types: Mapping[str, Any] | None = None) -> None:
        for key, value in (("x_offset_m", x_offset_m), ("y_offset_m", y_offset_m)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"mobility model {self.name!r}: {key} must be a finite number, got {value!r}")
        self.x_offset_m = float(x_offset_m)
        self.y_offset_m = float(y_offset_m)
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
            self._last_time = got.time_s
        return got

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
        self._front = a.x - self.x_offset_m
        lane = a.lane.copy()
        unknown = lane < 0
        if unknown.any():
            y = a.y[unknown] - self.y_offset_m
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
            self._slope[found] = ((b.x[rows[found]] - self.x_offset_m) - self._front[found]) / (b.time_s - a.time_s)
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
            world_id = self._next_world_id
            self._next_world_id += 1
            self._world_id[row] = world_id
            self._road[a.ids[row]] = world_id
            self.source_ids[world_id] = a.ids[row]
            self._entered.append((world_id, self._kinds[row]))
        rows = np.flatnonzero(self._world_id >= 0)
        rows = rows[np.argsort(self._world_id[rows], kind="stable")]
        self._set_state(rows, front - self._length / 2, speed)
        return left

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

    def next_entry_s(self) -> float:
        """Time after the state [s] at which the next vehicle's front reaches the covered
        stretch, or at which the next frame brings new vehicles (inf: none known)."""
        a, b = self._a, self._b
        if b is None:
            return math.inf
        now = self.origin_s + self.time
        if a is None:
            return max(b.time_s - now, 0.0)
        x_min = self.layout.x_range[0]
        waiting = (self._world_id < 0) & ~self._gone & (self._slope > 0) & (self._front < x_min)
        instants = a.time_s + (x_min - self._front[waiting]) / self._slope[waiting]
        instants = instants[(instants > now) & (instants <= b.time_s)]
        best = float(instants.min()) if len(instants) else math.inf
        if self._newcomers:
            best = min(best, b.time_s)
        return max(best - now, 0.0) if best < math.inf else math.inf
