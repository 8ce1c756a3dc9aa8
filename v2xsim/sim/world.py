"""The live road of one run: vehicles (through the mobility model), static blockers,
the link budget and a cache of the channel, recomputed once per world change."""

from __future__ import annotations

from typing import Callable

import numpy as np

from v2xsim.channel.base import ChannelModel
from v2xsim.geometry import DEFAULT_SIZES, KIND_CODE, OBSTACLE_KINDS, Boxes, RoadLayout, Snapshot
from v2xsim.mobility.base import MobilityModel
from v2xsim.radio import Radio

_SIZE_BY_CODE = np.array([DEFAULT_SIZES[name] for name in OBSTACLE_KINDS])


class World:
    """Vehicles, blockers and the channel, shared by every scheme of a run.

    Trucks drive in the traffic as blockers only; the RSU serves the cars.
    """

    def __init__(self, *, layout: RoadLayout, mobility: MobilityModel, channel: ChannelModel,
                 radio: Radio, static_blockers: Boxes, rng: np.random.Generator) -> None:
        self.layout = layout
        self.mobility = mobility
        self.channel = channel
        self.radio = radio
        self.static_blockers = static_blockers
        self.kind: dict[int, str] = {}
        self.version = 0
        self._snapshot: Snapshot | None = None
        self._next_id = 0
        self.departure_listeners: list[Callable[[int, str, int], None]] = []
        self.arrival_events: list = []  # SimPy events to trigger at the next arrival
        mobility.reset(layout=layout, rng=rng)

    # ------------------------------------------------------------ population
    def add_vehicle(self, *, x: float, lane: int, speed: float, desired_speed: float | None = None,
                    kind: str = "car") -> int:
        """Put a car or truck on the road; returns its id."""
        vehicle_id = self._next_id
        self._next_id += 1
        self.mobility.add(vehicle_id=vehicle_id, x=x, lane=lane, speed=speed, desired_speed=desired_speed,
                          length=DEFAULT_SIZES[kind][0])
        self.kind[vehicle_id] = kind
        self._changed()
        waiting, self.arrival_events = self.arrival_events, []
        for event in waiting:
            event.succeed(vehicle_id)
        return vehicle_id

    def advance(self, dt: float) -> np.ndarray:
        """Move the traffic by ``dt`` [s]; returns ids that left the covered stretch.

        Each departure is reported to ``departure_listeners(vehicle_id, kind, lane)``.
        """
        ids_before, lanes_before = self.mobility.ids, self.mobility.lane
        left = self.mobility.advance(dt)
        self._changed()
        for vehicle_id in left:
            lane = int(lanes_before[np.flatnonzero(ids_before == vehicle_id)[0]])
            kind = self.kind.pop(int(vehicle_id))
            for listener in self.departure_listeners:
                listener(int(vehicle_id), kind, lane)
        return left

    def _changed(self) -> None:
        self.version += 1
        self._snapshot = None

    def lane_tail(self, lane: int) -> float:
        """x of the rear bumper of the last vehicle in ``lane`` [m] (+inf if empty)."""
        m = self.mobility
        members = m.lane == lane
        if not members.any():
            return np.inf
        return float(np.min(m.x[members] - m.length[members] / 2))

    # -------------------------------------------------------------- sensing
    def obstacles(self) -> Boxes:
        """Bodies of all vehicles (owned by their ids) plus the static blockers."""
        m = self.mobility
        codes = np.array([KIND_CODE[self.kind[int(i)]] for i in m.ids], dtype=int)
        sizes = _SIZE_BY_CODE[codes].reshape(-1, 3)
        centre = np.stack([m.x, self.layout.lane_centres[m.lane], sizes[:, 2] / 2.0], axis=1)
        return Boxes.concat(Boxes(centre, sizes, codes, m.ids.copy()), self.static_blockers)

    def snapshot(self) -> Snapshot:
        """Users, positions, speeds and channels now (computed once per world change)."""
        if self._snapshot is None:
            m = self.mobility
            is_car = np.array([self.kind[int(i)] == "car" for i in m.ids], dtype=bool)
            obstacles = self.obstacles()
            positions = m.positions[is_car]
            ids = m.ids[is_car]
            channels = self.channel.channels(positions, obstacles, ids) if len(ids) else np.zeros(
                (0, self.radio.codebook.shape[0]), dtype=complex)
            self._snapshot = Snapshot(ids=ids.copy(), positions=positions, obstacles=obstacles,
                                      speeds=m.speed[is_car].copy(), channels=channels)
        return self._snapshot
