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
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from v2xsim.geometry import RoadLayout


class MobilityModel(ABC):
    """Kinematic state of the vehicles plus the update rule.

    Attributes (arrays of length N = vehicles on the road):
        ids: vehicle ids.
        x: front-to-back centre position along the road [m].
        lane: lane index.
        speed: current speed [m/s].
        desired_speed: the speed each driver wants [m/s].
        length: body length [m].
        time: simulated time of the state [s].
    """

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

    def add(self, *, vehicle_id: int, x: float, lane: int, speed: float,
            desired_speed: float | None = None, length: float = 4.5) -> None:
        """Put a vehicle on the road [m, m/s]."""
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
            for name in ("ids", "x", "lane", "speed", "desired_speed", "length"):
                setattr(self, name, getattr(self, name)[keep])
        return left

    @property
    def positions(self) -> np.ndarray:
        """Antenna positions (N, 3) [m]."""
        y = self.layout.lane_centres[self.lane]
        return np.stack([self.x, y, np.full(len(self.x), self.layout.antenna_height_m)], axis=1)

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
