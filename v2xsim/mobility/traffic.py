"""Traffic sources: how vehicles enter the covered stretch (SimPy processes).

Patterns:
    ``constant``: K cars (and trucks) stay on the stretch; a vehicle that leaves at the far
        end re-enters at the near end in its lane (a ring road), so K never changes.
    ``poisson``: independent Poisson arrivals per lane, rate chosen so that on average K
        cars are in coverage; the initial road is populated at that density.
    ``platoon``: Poisson arrivals of platoons of ``platoon_size`` cars ``platoon_gap_m``
        apart, same mean density.
    ``fixed``: an explicit list of arrivals ``{time_s, lane, speed_kmh, kind}``.
A vehicle only enters when its lane has room at the entry (``min_entry_gap_m``). The
initial road is filled lane by lane: vehicles drawn into a lane that has no room left move
to the lane with the most room, and (random patterns only) vehicles for which no lane has
room wait at the entry. A ``constant`` pattern whose K cars (and trucks) cannot fit on the
road at all is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np
import simpy

from v2xsim.errors import ConfigError
from v2xsim.geometry import DEFAULT_SIZES, RoadLayout
from v2xsim.units import kmh_to_mps

PATTERNS = ("constant", "poisson", "platoon", "fixed")
#: how often a vehicle waiting at a full lane entry looks again [s]
ENTRY_RETRY_S = 0.01


class Road(Protocol):
    """What a traffic source needs of the live road (:class:`v2xsim.sim.world.World`)."""

    layout: RoadLayout
    departure_listeners: list[Callable[[int, str, int], None]]

    def add_vehicle(self, *, x: float, lane: int, speed: float, desired_speed: float | None = None,
                    kind: str = "car") -> int: ...

    def lane_tail(self, lane: int) -> float: ...


@dataclass(frozen=True, kw_only=True)
class Arrival:
    """One scripted arrival of the ``fixed`` pattern."""

    time_s: float
    lane: int
    speed_kmh: float
    kind: str = "car"


@dataclass(kw_only=True)
class TrafficSource:
    """Puts vehicles on the road.

    Attributes:
        pattern: one of :data:`PATTERNS`.
        num_vehicles: cars in coverage (exact for ``constant``, mean otherwise).
        speed_mps: nominal speed [m/s].
        speed_spread: relative spread of the drivers' desired speeds (log-normal, mean 1).
        truck_share: trucks per car (blockers, not served).
        platoon_size: cars per platoon.
        platoon_gap_m: bumper-to-bumper gap inside a platoon [m].
        min_entry_gap_m: free road needed at the entry [m].
        arrivals: scripted arrivals of the ``fixed`` pattern.
    """

    pattern: str = "constant"
    num_vehicles: int = 10
    speed_mps: float = kmh_to_mps(60.0)
    speed_spread: float = 0.0
    truck_share: float = 0.0
    platoon_size: int = 4
    platoon_gap_m: float = 8.0
    min_entry_gap_m: float = 2.0
    arrivals: list[Arrival] = field(default_factory=list)
    _waiting: list[tuple[int, str]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {', '.join(PATTERNS)}, got {self.pattern!r}")
        if self.num_vehicles < 0:
            raise ValueError(f"num_vehicles must be >= 0, got {self.num_vehicles}")
        if self.speed_mps <= 0:
            raise ValueError(f"speed must be > 0, got {self.speed_mps}")

    # --------------------------------------------------------------- helpers
    def _desired_speed(self, rng: np.random.Generator) -> float:
        if self.speed_spread == 0:
            return self.speed_mps
        sigma = np.sqrt(np.log1p(self.speed_spread ** 2))
        return float(self.speed_mps * rng.lognormal(-sigma ** 2 / 2, sigma))

    def _kinds(self, rng: np.random.Generator, cars: int) -> list[str]:
        trucks = int(round(cars * self.truck_share)) if self.pattern == "constant" else int(
            rng.poisson(cars * self.truck_share))
        kinds = ["car"] * cars + ["truck"] * trucks
        rng.shuffle(kinds)
        return kinds

    def populate(self, world: Road, rng: np.random.Generator) -> None:
        """Initial vehicles spread over the lanes with random, non-overlapping gaps."""
        if self.pattern == "fixed":
            return
        cars = self.num_vehicles if self.pattern == "constant" else int(rng.poisson(self.num_vehicles))
        kinds = self._kinds(rng, cars)
        lanes = rng.integers(0, world.layout.num_lanes, len(kinds))
        x_min, x_max = world.layout.x_range
        span = x_max - x_min
        lanes = self._fit_lanes(kinds, lanes, world.layout.num_lanes, span)
        for lane in range(world.layout.num_lanes):
            members = [k for k, l in zip(kinds, lanes) if l == lane]
            if not members:
                continue
            lengths = np.array([DEFAULT_SIZES[k][0] for k in members])
            slack = span - lengths.sum() - self.min_entry_gap_m * len(members)
            gaps = rng.dirichlet(np.ones(len(members) + 1))[:-1] * slack + self.min_entry_gap_m
            rear = x_min + np.cumsum(gaps) + np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
            for kind, length, r in zip(members, lengths, rear):
                speed = self._desired_speed(rng)
                world.add_vehicle(x=float(r + length / 2), lane=lane, speed=speed, desired_speed=speed, kind=kind)

    def room_needed(self, kinds: list[str]) -> float:
        """Road length [m] the vehicles ``kinds`` occupy with their entry gaps."""
        return float(sum(DEFAULT_SIZES[k][0] + self.min_entry_gap_m for k in kinds))

    def _fit_lanes(self, kinds: list[str], lanes: np.ndarray, num_lanes: int, span: float) -> np.ndarray:
        """Lanes with every lane's vehicles fitting on ``span`` metres: the last vehicles of a
        full lane move to the lane with the most room; those no lane can take wait at the
        entry (``self._waiting``; for ``constant`` traffic that is an error)."""
        lanes = np.array(lanes, dtype=int)
        used = np.zeros(num_lanes)
        order = [i for lane in range(num_lanes) for i in np.flatnonzero(lanes == lane)]
        for index in order:
            need = DEFAULT_SIZES[kinds[index]][0] + self.min_entry_gap_m
            lane = lanes[index]
            if used[lane] + need > span:
                lane = int(np.argmin(used))  # the lane with the most room
                if used[lane] + need > span:
                    if self.pattern == "constant":
                        raise ConfigError(
                            f"traffic: {len(kinds)} vehicles need {self.room_needed(kinds):.1f} m of lane "
                            f"(length + min_entry_gap_m each); {num_lanes} lanes of {span:.1f} m cannot hold them; "
                            f"lower num_vehicles or truck_share, or add lanes")
                    self._waiting.append((int(lanes[index]), kinds[index]))
                    lanes[index] = -1
                    continue
                lanes[index] = lane
            used[lane] += need
        return lanes

    def _enter(self, env: simpy.Environment, world: Road, lane: int, kind: str, speed: float):
        """Process: wait until the lane entry is free, then add the vehicle."""
        length = DEFAULT_SIZES[kind][0]
        x_entry = world.layout.x_range[0]
        while world.lane_tail(lane) - x_entry < self.min_entry_gap_m:
            yield env.timeout(ENTRY_RETRY_S)
        world.add_vehicle(x=x_entry - length / 2, lane=lane, speed=speed, desired_speed=speed, kind=kind)

    # -------------------------------------------------------------- process
    def run(self, env: simpy.Environment, world: Road, rng: np.random.Generator):
        """Process generating the arrivals of the pattern."""
        for lane, kind in self._waiting:  # initial vehicles the road had no room for
            env.process(self._enter(env, world, lane, kind, self._desired_speed(rng)))
        self._waiting = []
        if self.pattern == "constant":
            def on_departure(vehicle_id: int, kind: str, lane: int) -> None:
                env.process(self._enter(env, world, lane, kind, self._desired_speed(rng)))

            world.departure_listeners.append(on_departure)
            return
            yield  # a generator even when it returns at once
        elif self.pattern in ("poisson", "platoon"):
            contact = world.layout.coverage_length / self.speed_mps
            group = self.platoon_size if self.pattern == "platoon" else 1
            rate = self.num_vehicles / contact / group  # groups per second, all lanes
            if rate == 0:
                return
            while True:
                yield env.timeout(rng.exponential(1.0 / rate))
                lane = int(rng.integers(0, world.layout.num_lanes))
                kinds = self._kinds(rng, group)
                env.process(self._platoon(env, world, lane, kinds, self._desired_speed(rng)))
        else:
            for arrival in sorted(self.arrivals, key=lambda a: a.time_s):
                yield env.timeout(max(0.0, arrival.time_s - env.now))
                env.process(self._enter(env, world, arrival.lane, arrival.kind, kmh_to_mps(arrival.speed_kmh)))

    def _platoon(self, env: simpy.Environment, world: Road, lane: int, kinds: list[str], speed: float):
        for index, kind in enumerate(kinds):
            if index:
                yield env.timeout((self.platoon_gap_m + DEFAULT_SIZES[kind][0]) / speed)
            yield env.process(self._enter(env, world, lane, kind, speed))
