"""The mobility plug-in interface.

A mobility model owns the kinematic state of the vehicles on the RSU's road stretch
(all lanes drive in +x). The engine calls :meth:`MobilityModel.reset` once, adds
vehicles as the traffic source lets them in, and calls :meth:`MobilityModel.advance`
on every world tick; vehicles past the exit are removed and reported.

A custom model subclasses :class:`MobilityModel`, implements :meth:`step` and registers
itself::

    @MOBILITY.register("stop_and_go")
    class StopAndGo(MobilityModel):
        def step(self, dt: float) -> None:
            ...  # update self.speed [m/s] and self.x [m]

Vehicles from outside (``spawns_vehicles = True``, e.g. ``sumo`` and ``trace``): a model
that decides itself which vehicles are on the road (traffic simulated elsewhere, or
recorded) sets the class attribute ``spawns_vehicles``. The engine then starts no traffic
source (``[traffic]`` and the swept speed and K put no vehicle on the road), the world
refuses :meth:`World.add_vehicle <v2xsim.sim.world.World.add_vehicle>`, and the model
instead

* lists every vehicle it puts on the road, ``(id, kind)`` with ``kind`` ``"car"`` or
  ``"truck"``, in ``self._entered`` (from :meth:`reset` for those on the road at t = 0,
  and from :meth:`advance`); the world collects them with :meth:`take_entered` after each
  call, and ids must never repeat;
* returns from :meth:`advance` every vehicle that left, however it left;
* may say when its next vehicle enters (:meth:`next_entry_s`), so that the world steps at
  that instant as it does at departures;
* releases what it holds (a SUMO process, a file) in :meth:`close`, which the engine
  calls at the end of every run.

Planar traffic (``planar = True``, e.g. ``sumo`` and ``trace`` with sector coverage on an
intersection): instead of a lane, every vehicle has a ground position ``(x, y)`` (body
centre), a heading and a velocity vector, kept in ``self.x``, ``self.y``,
``self.heading`` and ``self.velocity``; the model then decides itself when a vehicle is in
the RSU's coverage (:class:`~v2xsim.geometry.SectorCoverage`) and says when the next one
leaves (:meth:`next_departure_s`). The engine reads a vehicle's state only through
:attr:`positions`, :attr:`headings`, :attr:`velocities` and :meth:`bodies`, which give
the lane-based models' state (lane centre, along +x) when ``planar`` is false.

Traffic state: :meth:`state_label` may name the state of the traffic around the RSU
(e.g. the phase of a traffic light); the engine reports the delivered rate per label.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from v2xsim.geometry import DEFAULT_SIZES, RoadLayout, footprint


class MobilityModel(ABC):
    """Kinematic state of the vehicles plus the update rule.

    Attributes (arrays of length N = vehicles on the road):
        ids: vehicle ids.
        x: front-to-back centre position along the road [m].
        lane: lane index.
        speed: current speed [m/s].
        desired_speed: the speed each driver wants [m/s].
        length, width, height: body box [m].
        time: simulated time of the state [s].
        spawns_vehicles: the model puts the vehicles on the road itself (see the module doc).
        planar: vehicles move in the plane (see the module doc); then also
            ``y`` (N,) body centre [m], ``heading`` (N,) [rad, counter-clockwise from +x]
            and ``velocity`` (N, 2) [m/s].
    """

    spawns_vehicles: ClassVar[bool] = False
    planar: bool = False

    def reset(self, *, layout: RoadLayout, rng: np.random.Generator) -> None:
        """Forget all vehicles; keep ``rng`` for any randomness of the model."""
        self.layout = layout
        self.rng = rng
        self.time = 0.0
        self.ids = np.zeros(0, dtype=int)
        self.x = np.zeros(0)
        self.lane = np.zeros(0, dtype=int)
        self.speed = np.zeros(0)
        self.desired_speed = np.zeros(0)
        self.length = np.zeros(0)
        self.width = np.zeros(0)
        self.height = np.zeros(0)
        self.y = np.zeros(0)
        self.heading = np.zeros(0)
        self.velocity = np.zeros((0, 2))
        self._entered: list[tuple[int, str]] = []

    def add(self, *, vehicle_id: int, x: float, lane: int, speed: float, desired_speed: float | None = None,
            length: float = DEFAULT_SIZES["car"][0], width: float = DEFAULT_SIZES["car"][1],
            height: float = DEFAULT_SIZES["car"][2]) -> None:
        """Put a vehicle on the road [m, m/s]; its box is ``length x width x height`` [m]."""
        if not 0 <= lane < self.layout.num_lanes:
            raise ValueError(f"lane must be in 0..{self.layout.num_lanes - 1}, got {lane}")
        if speed < 0:
            raise ValueError(f"speed must be >= 0, got {speed}")
        self.ids = np.append(self.ids, int(vehicle_id))
        self.x = np.append(self.x, float(x))
        self.lane = np.append(self.lane, int(lane))
        self.speed = np.append(self.speed, float(speed))
        self.desired_speed = np.append(self.desired_speed, float(speed if desired_speed is None else desired_speed))
        self.length = np.append(self.length, float(length))
        self.width = np.append(self.width, float(width))
        self.height = np.append(self.height, float(height))

    def take_entered(self) -> list[tuple[int, str]]:
        """The vehicles ``(id, kind)`` the model put on the road since the last call
        (always empty unless ``spawns_vehicles``)."""
        entered, self._entered = getattr(self, "_entered", []), []
        return entered

    def next_entry_s(self) -> float:
        """Time after the state [s] at which the model next puts a vehicle on the road
        (inf: not known, or never; only ``spawns_vehicles`` models know)."""
        return math.inf

    def close(self) -> None:
        """Release what the model holds (the engine calls it at the end of a run)."""

    def state_label(self) -> str | None:
        """A name for the state of the traffic now (e.g. the phase of the traffic light at
        the RSU), or None; the engine reports the delivered rate per label."""
        return None

    def next_departure_s(self) -> float:
        """Time [s] after the state at which the next vehicle leaves at its current velocity
        (inf if none will; 0 for one already out). Lane-based: its rear passes the exit of
        the covered stretch."""
        moving = self.speed > 0
        if not moving.any():
            return np.inf
        gap = self.layout.x_range[1] - (self.x[moving] - self.length[moving] / 2)
        return float(max(np.min(gap / self.speed[moving]), 0.0))

    @abstractmethod
    def step(self, dt: float) -> None:
        """Advance ``self.x`` and ``self.speed`` by ``dt`` seconds."""

    def advance(self, dt: float) -> np.ndarray:
        """Move every vehicle by ``dt`` [s]; remove and return the ids of those that left."""
        if dt < 0:
            raise ValueError(f"dt must be >= 0, got {dt}")
        if len(self.ids):
            self.step(dt)
        self.time += dt
        gone = self.x - self.length / 2 > self.layout.x_range[1]
        left = self.ids[gone]
        if gone.any():
            keep = ~gone
            for name in ("ids", "x", "lane", "speed", "desired_speed", "length", "width", "height"):
                setattr(self, name, getattr(self, name)[keep])
        return left

    @property
    def positions(self) -> np.ndarray:
        """Antenna positions (N, 3) [m] (at the body centre)."""
        y = self.y if self.planar else self.layout.lane_centres[self.lane]
        return np.stack([self.x, y, np.full(len(self.x), self.layout.antenna_height_m)], axis=1)

    @property
    def headings(self) -> np.ndarray:
        """Driving directions (N,) [rad], counter-clockwise from +x (0: lane-based)."""
        return self.heading.copy() if self.planar else np.zeros(len(self.x))

    @property
    def velocities(self) -> np.ndarray:
        """Velocity vectors (N, 3) [m/s] (lane-based: the speed along +x)."""
        velocity = np.zeros((len(self.x), 3))
        if self.planar:
            velocity[:, :2] = self.velocity
        else:
            velocity[:, 0] = self.speed
        return velocity

    def bodies(self, after_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Centres (N, 3) and sizes (N, 3) [m] of the vehicles' boxes, driven on at their
        velocity for ``after_s`` [s]; a planar vehicle's box is that of its turned body
        (:func:`~v2xsim.geometry.footprint`)."""
        if self.planar:
            along, across = footprint(self.length, self.width, self.heading)
            sizes = np.stack([along, across, self.height], axis=1)
            xy = np.stack([self.x, self.y], axis=1)
            if after_s:
                xy = xy + self.velocity * after_s
            return np.concatenate([xy, self.height[:, None] / 2.0], axis=1), sizes
        sizes = np.stack([self.length, self.width, self.height], axis=1)
        x = self.x + self.speed * after_s if after_s else self.x
        return np.stack([x, self.layout.lane_centres[self.lane], self.height / 2.0], axis=1), sizes

    def gap_to_leader(self) -> tuple[np.ndarray, np.ndarray]:
        """Bumper-to-bumper gap to the vehicle ahead in the same lane [m] (inf if none) and
        the leader's speed [m/s] (own speed if none)."""
        gap = np.full(len(self.x), np.inf)
        leader_speed = self.speed.copy()
        for lane in np.unique(self.lane):
            members = np.flatnonzero(self.lane == lane)
            order = members[np.argsort(self.x[members])]
            follower, leader = order[:-1], order[1:]
            gap[follower] = (self.x[leader] - self.length[leader] / 2) - (self.x[follower] + self.length[follower] / 2)
            leader_speed[follower] = self.speed[leader]
        return gap, leader_speed
