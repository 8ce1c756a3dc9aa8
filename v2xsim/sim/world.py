"""The live road of one run: vehicles (through the mobility model), static blockers,
the link budget, and the channel between world ticks.

Time resolution. The world process moves the traffic once per tick (:meth:`World.advance`)
and blockage is decided at that resolution. Between two changes of the world the vehicles
drive on at their speeds, ``x(t) = x + v (t - t_tick)`` (exact for constant velocity; the
mobility model's own update takes over at the next tick; a planar model's vehicles move
along their velocity vector, their headings held), and, for a backend with
``vectorised_tracks``:

* a vehicle leaves at the instant its rear passes the exit (planar traffic: its centre
  leaves the RSU's sector; the world process also steps there,
  :meth:`World.next_departure_s`), and one that enters between ticks is placed
  where it is at that instant (its state back-dated to the tick), so the traffic does not
  depend on the tick;
* a snapshot taken at time ``t`` (an alignment, one slot of a sweep) has the vehicles,
  their boxes and their channels at ``t`` itself (:meth:`World.snapshot`);
* the data phase sees the channel at ``n`` equal sub-steps of the tick, each sampled at
  its midpoint and held for the sub-step (:class:`Samples`), ``n`` from
  :class:`~v2xsim.sim.resolution.TimeResolution` and the fastest vehicle;

in both cases with the paths' blockage of the tick
(:meth:`~v2xsim.channel.base.ChannelModel.channels_along`). The samples of a tick come
from one vectorised evaluation, computed when first needed and kept until the world
changes. Any other backend is evaluated once per change of the world, at the tick, and
that channel holds until the next one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from v2xsim.channel.base import ChannelModel
from v2xsim.geometry import DEFAULT_SIZES, KIND_CODE, Boxes, RoadLayout, Snapshot
from v2xsim.mobility.base import MobilityModel
from v2xsim.radio import Radio
from v2xsim.sim.resolution import TimeResolution


@dataclass(frozen=True)
class Samples:
    """The channel of the cars between two changes of the world.

    Sample ``i`` holds for the sub-step ``[start_s + i step_s, start_s + (i + 1) step_s)``;
    the first sub-step also covers any earlier time and the last any later one.

    Attributes:
        start_s: time of the world state (the last tick) [s].
        step_s: sub-step [s].
        times: (n,) instants at which the samples were taken [s].
        ids: (K,) car ids.
        channels: (n, K, Nt) channels of the cars at ``times``.
    """

    start_s: float
    step_s: float
    times: np.ndarray
    ids: np.ndarray
    channels: np.ndarray

    def __len__(self) -> int:
        return len(self.channels)

    def _index(self, time_s: float) -> int:
        """The sub-step holding ``time_s``."""
        return min(max(math.floor((time_s - self.start_s) / self.step_s), 0), len(self) - 1)

    def overlaps(self, start_s: float, end_s: float) -> np.ndarray:
        """Seconds of ``[start_s, end_s]`` within each sub-step, (n,)."""
        if len(self) == 1:
            return np.array([end_s - start_s])
        lower = self.start_s + np.arange(len(self)) * self.step_s
        upper = lower + self.step_s
        lower[0], upper[-1] = -np.inf, np.inf
        return np.maximum(np.minimum(end_s, upper) - np.maximum(start_s, lower), 0.0)

    def integral(self, values: np.ndarray, start_s: float, end_s: float) -> float:
        """Integral over ``[start_s, end_s]`` of ``values`` (n,) held over the sub-steps,
        i.e. ``values @ overlaps(start_s, end_s)``, without building the overlaps."""
        first, last = (0, 0) if len(self) == 1 else (self._index(start_s), self._index(end_s))
        if first == last:
            return float(values[first]) * (end_s - start_s)
        head = float(values[first]) * (self.start_s + (first + 1) * self.step_s - start_s)
        tail = float(values[last]) * (end_s - (self.start_s + last * self.step_s))
        return head + float(values[first + 1:last].sum()) * self.step_s + tail


class World:
    """Vehicles, blockers and the channel, shared by every scheme of a run.

    Trucks drive in the traffic as blockers only; the RSU serves the cars. Vehicles enter
    through :meth:`add_vehicle` (a traffic source), or, for a mobility model that
    ``spawns_vehicles`` (SUMO, a trace), when the model puts them on the road.

    Args:
        resolution: how the world follows the vehicles between ticks (default: it does
            not; one channel per change of the world).
        clock: the simulation's current time [s] (default: the time of the state).
    """

    def __init__(self, *, layout: RoadLayout, mobility: MobilityModel, channel: ChannelModel,
                 radio: Radio, static_blockers: Boxes, rng: np.random.Generator,
                 resolution: TimeResolution | None = None, clock: Callable[[], float] | None = None) -> None:
        self.layout = layout
        self.mobility = mobility
        self.channel = channel
        self.radio = radio
        self.static_blockers = static_blockers
        self.resolution = resolution or TimeResolution(tick_s=1e-3)
        self.clock = clock
        self.kind: dict[int, str] = {}
        self.version = 0
        #: time of the vehicles' state [s] (advanced by :meth:`advance`)
        self.time = 0.0
        self._state: tuple | None = None  # the cars at the tick, see _cars_now
        self._headings = np.zeros(0)  # their headings [rad]
        self._samples: Samples | None = None
        self._snapshots: dict[float | None, Snapshot] = {}
        self._exact: dict[float | None, np.ndarray] = {}  # channels (K, Nt) per instant of this tick
        self._expected: list[float] = []  # announced instants (see expect)
        self._next_id = 0
        self.departure_listeners: list[Callable[[int, str, int], None]] = []
        self.arrival_events: list = []  # SimPy events to trigger at the next arrival
        mobility.reset(layout=layout, rng=rng)
        self._admit()  # vehicles a spawning model has on the road from the start

    def _admit(self) -> None:
        """Register the vehicles the mobility model put on the road itself and wake up
        whoever waits for an arrival."""
        entered = self.mobility.take_entered()
        if not entered:
            return
        for vehicle_id, kind in entered:
            self.kind[int(vehicle_id)] = kind
        waiting, self.arrival_events = self.arrival_events, []
        for event in waiting:
            event.succeed(int(entered[0][0]))

    # ------------------------------------------------------------ population
    def add_vehicle(self, *, x: float, lane: int, speed: float, desired_speed: float | None = None,
                    kind: str = "car") -> int:
        """Put a car or truck on the road at ``x`` [m] now; returns its id."""
        if self.mobility.spawns_vehicles:
            raise RuntimeError(f"{type(self.mobility).__name__} puts the vehicles on the road itself; "
                               "no traffic source may add any")
        vehicle_id = self._next_id
        self._next_id += 1
        # the state is that of the last tick: a vehicle entering later starts that far back
        length, width, height = DEFAULT_SIZES[kind]
        self.mobility.add(vehicle_id=vehicle_id, x=x - speed * self._since_tick(), lane=lane, speed=speed,
                          desired_speed=desired_speed, length=length, width=width, height=height)
        self.kind[vehicle_id] = kind
        self._changed()
        waiting, self.arrival_events = self.arrival_events, []
        for event in waiting:
            event.succeed(vehicle_id)
        return vehicle_id

    def advance(self, dt: float) -> np.ndarray:
        """Move the traffic by ``dt`` [s]; returns ids that left the covered stretch.

        Each departure is reported to ``departure_listeners(vehicle_id, kind, lane)``;
        vehicles a spawning model put on the road are registered.
        """
        ids_before, lanes_before = self.mobility.ids, self.mobility.lane
        left = self.mobility.advance(dt)
        self.time += dt
        self._changed()
        for vehicle_id in left:
            lane = int(lanes_before[np.flatnonzero(ids_before == vehicle_id)[0]])
            kind = self.kind.pop(int(vehicle_id))
            for listener in self.departure_listeners:
                listener(int(vehicle_id), kind, lane)
        self._admit()
        return left

    def _since_tick(self) -> float:
        """Time since the state [s], when the world follows the vehicles between ticks."""
        if self.clock is None or not self.resolution.follows_between_ticks:
            return 0.0
        return self.clock() - self.time

    def next_departure_s(self) -> float:
        """Time [s] after the state at which the next vehicle leaves at its current velocity
        (inf if none will; 0 for a vehicle already out): on the straight road, when its
        rear passes the exit (see :meth:`MobilityModel.next_departure_s`)."""
        return self.mobility.next_departure_s()

    def next_entry_s(self) -> float:
        """Time [s] after the state at which the mobility model next puts a vehicle on the
        road itself (inf if it does not say; see ``spawns_vehicles``)."""
        return self.mobility.next_entry_s()

    def _changed(self) -> None:
        self.version += 1
        self._state = None
        self._samples = None
        self._snapshots = {}
        self._exact = {}

    def lane_tail(self, lane: int) -> float:
        """x of the rear bumper of the last vehicle in ``lane`` now [m] (+inf if empty)."""
        m = self.mobility
        members = m.lane == lane
        if not members.any():
            return np.inf
        return float(np.min(m.x[members] + m.speed[members] * self._since_tick() - m.length[members] / 2))

    # -------------------------------------------------------------- sensing
    def obstacles(self, after_s: float = 0.0) -> Boxes:
        """Bodies of all vehicles (owned by their ids; turned with their heading), driven on
        for ``after_s`` [s] past the state, plus the static blockers."""
        m = self.mobility
        codes = np.array([KIND_CODE[self.kind[int(i)]] for i in m.ids], dtype=int)
        centre, sizes = m.bodies(after_s)
        return Boxes.concat(Boxes(centre, sizes, codes, m.ids.copy()), self.static_blockers)

    def _cars_now(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, Boxes]:
        """The cars at the tick: ids (K,), positions (K, 3), velocities (K, 3) and all
        boxes (one object per change of the world)."""
        if self._state is None:
            m = self.mobility
            is_car = np.array([self.kind[int(i)] == "car" for i in m.ids], dtype=bool)
            self._state = (m.ids[is_car].copy(), m.positions[is_car], m.velocities[is_car], self.obstacles())
            self._headings = m.headings[is_car]
        return self._state

    def car_count(self) -> int:
        """Cars (served vehicles) on the road now."""
        return len(self._cars_now()[0])

    def car_headings(self) -> np.ndarray:
        """Driving directions (K,) [rad] of the cars at the tick, rows as in the snapshots
        (counter-clockwise from +x; 0 on the straight road)."""
        self._cars_now()
        return self._headings

    def _channels(self, positions: np.ndarray) -> np.ndarray:
        """Channels (T, K, Nt) of the cars at ``positions`` (T, K, 3) within this tick."""
        ids, tick_positions, _, obstacles = self._cars_now()
        if not len(ids):
            return np.zeros((len(positions), 0, self.radio.codebook.shape[0]), dtype=complex)
        if not self.resolution.follows_between_ticks:
            return self.channel.channels(tick_positions, obstacles, ids)[None]
        return self.channel.channels_along(positions, obstacles, ids, reference=tick_positions)

    def samples(self) -> Samples:
        """The cars' channels at the sub-steps of the current tick (one vectorised
        evaluation per change of the world, which also covers the announced instants of the
        tick, see :meth:`expect`)."""
        if self._samples is None:
            m = self.mobility
            count = self.resolution.substeps(float(m.speed.max()) if len(m.speed) else 0.0)
            step = self.resolution.tick_s / count
            follows = self.resolution.follows_between_ticks
            after = (np.arange(count) + 0.5) * step if follows else np.zeros(1)
            instants = self._announced(after=None) if follows else []
            channels = self._evaluate(list(self.time + after) + instants)
            for t, h in zip(instants, channels[count:]):
                self._exact[t] = h
            self._samples = Samples(start_s=self.time, step_s=step, times=self.time + after, ids=self._cars_now()[0],
                                    channels=channels[:count])
        return self._samples

    def _evaluate(self, instants: list[float]) -> np.ndarray:
        """Channels (T, K, Nt) of the cars at ``instants`` [s] of this tick, one call."""
        _, positions, velocity, _ = self._cars_now()
        after = np.array(instants) - self.time
        return self._channels(positions[None] + after[:, None, None] * velocity[None])

    def _announced(self, *, after: float | None) -> list[float]:
        """Announced instants of this tick (up to one tick past the state) later than
        ``after`` (None: any), not evaluated yet."""
        if not self._expected:
            return []
        self._expected = [t for t in self._expected if t > self.time]
        end = self.time + self.resolution.tick_s
        return [t for t in self._expected if (after is None or t > after) and t <= end and t not in self._exact]

    def _instant(self, at: float | None) -> float | None:
        """``at`` as a cache key: None for the tick itself (also for every instant when the
        world does not follow the vehicles between ticks)."""
        if at is None or not self.resolution.follows_between_ticks or at == self.time:
            return None
        return at

    def expect(self, instants) -> None:
        """Announce instants [s] at which snapshots will be taken (e.g. the slots of a
        sweep): those of one tick are evaluated together, in one call of the backend."""
        self._expected.extend(float(at) for at in instants)
        self._expected.sort()

    def channels_at(self, at: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Car ids (K,) and their channels (K, Nt) at time ``at`` [s] (default: the tick);
        held at the tick for a backend without ``vectorised_tracks``."""
        key = self._instant(at)
        channels = self._exact.get(key)
        if channels is None:
            if key is None:
                channels = self._evaluate([self.time])[0]
            else:  # with the announced instants still to come in this tick
                instants = [key] + self._announced(after=key)
                evaluated = self._evaluate(instants)
                for t, h in zip(instants, evaluated):
                    self._exact[t] = h
                channels = evaluated[0]
            self._exact[key] = channels
        return self._cars_now()[0], channels

    def snapshot(self, at: float | None = None) -> Snapshot:
        """Users, positions, speeds, headings, obstacles and channels at time ``at`` [s]
        (default: the tick itself); held at the tick for a backend without
        ``vectorised_tracks``. Between ticks vehicles move on at their velocity (headings
        held at the tick's)."""
        key = self._instant(at)
        snap = self._snapshots.get(key)
        if snap is None:
            ids, positions, velocity, obstacles = self._cars_now()
            if key is not None:
                positions = positions + (key - self.time) * velocity
                obstacles = self.obstacles(key - self.time)
            speeds = np.hypot(velocity[:, 0], velocity[:, 1]) if self.mobility.planar else velocity[:, 0].copy()
            snap = Snapshot(ids=ids, positions=positions, obstacles=obstacles, speeds=speeds,
                            channels=self.channels_at(key)[1], headings=self.car_headings().copy())
            self._snapshots[key] = snap
        return snap
