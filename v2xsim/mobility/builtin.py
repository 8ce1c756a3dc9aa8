"""Built-in mobility models: constant velocity and the Intelligent Driver Model."""

from __future__ import annotations

import numpy as np

from v2xsim import checks as check
from v2xsim.errors import ConfigError
from v2xsim.mobility.base import MobilityModel
from v2xsim.registry import MOBILITY
from v2xsim.units import kmh_to_mps


@MOBILITY.register("constant_velocity")
class ConstantVelocity(MobilityModel):
    """Every vehicle keeps its entry speed: ``x += v dt``."""

    def step(self, dt: float) -> None:
        self.x = self.x + self.speed * dt


@MOBILITY.register("idm")
class IntelligentDriverModel(MobilityModel):
    """Car following by the Intelligent Driver Model (Treiber, Hennecke, Helbing 2000).

    ``a = a_max [1 - (v / v0)^delta - (s* / s)^2]`` with the desired gap
    ``s* = s0 + v T + v dv / (2 sqrt(a_max b))``. ``v0`` is the driver's desired speed,
    capped by the lane's speed limit.

    Args:
        max_acceleration: ``a_max`` [m/s^2].
        comfortable_deceleration: ``b`` [m/s^2].
        time_headway: ``T`` [s].
        min_gap: ``s0`` [m].
        delta: acceleration exponent.
        lane_speed_limits_kmh: one limit per lane [km/h]; None = the road's own limits
            (``[[road.lanes]] speed_limit_kmh``), if any.
    """

    def __init__(self, *, max_acceleration: float = 1.5, comfortable_deceleration: float = 2.0,
                 time_headway: float = 1.2, min_gap: float = 2.0, delta: float = 4.0,
                 lane_speed_limits_kmh: list[float] | None = None) -> None:
        self.max_acceleration = check.positive("max_acceleration", max_acceleration)
        self.comfortable_deceleration = check.positive("comfortable_deceleration", comfortable_deceleration)
        self.time_headway = check.non_negative("time_headway", time_headway)
        self.min_gap = check.non_negative("min_gap", min_gap)
        self.delta = check.positive("delta", delta)
        self.lane_speed_limits_kmh = None if lane_speed_limits_kmh is None else [
            check.positive(f"lane_speed_limits_kmh[{i}]", v) for i, v in enumerate(lane_speed_limits_kmh)]

    def reset(self, *, layout, rng) -> None:
        super().reset(layout=layout, rng=rng)
        limits = self.lane_speed_limits_kmh
        if limits is None and layout.lane_speed_limits_kmh is not None:
            limits = list(layout.lane_speed_limits_kmh)
        if limits is not None and len(limits) != layout.num_lanes:
            # bad input met only when the world starts (the road was not known before)
            raise ConfigError(f"mobility model 'idm': lane_speed_limits_kmh needs {layout.num_lanes} values "
                              f"(one per lane), got {len(limits)}")
        # a lane without a limit caps nothing
        self._limits_mps = None if limits is None or all(v is None for v in limits) else kmh_to_mps(
            np.array([np.inf if v is None else v for v in limits], dtype=float))

    def target_speed(self) -> np.ndarray:
        """Desired speed capped by the lane limit [m/s]."""
        if self._limits_mps is None:
            return self.desired_speed
        return np.minimum(self.desired_speed, self._limits_mps[self.lane])

    def acceleration(self) -> np.ndarray:
        """IDM acceleration of every vehicle [m/s^2]."""
        gap, leader_speed = self.gap_to_leader()
        v = self.speed
        v0 = np.maximum(self.target_speed(), 1e-6)
        closing = v - leader_speed
        desired_gap = self.min_gap + np.maximum(
            0.0, v * self.time_headway + v * closing / (2.0 * np.sqrt(self.max_acceleration * self.comfortable_deceleration)))
        with np.errstate(divide="ignore"):
            interaction = np.where(np.isfinite(gap), (desired_gap / np.maximum(gap, 0.1)) ** 2, 0.0)
        return self.max_acceleration * (1.0 - (v / v0) ** self.delta - interaction)

    def step(self, dt: float) -> None:
        a = self.acceleration()
        new_speed = self.speed + a * dt
        stopping = new_speed < 0
        # ballistic update; a vehicle that would reverse stops where its speed reaches 0
        dx = np.where(stopping, self.speed ** 2 / np.maximum(-2.0 * a, 1e-12), self.speed * dt + 0.5 * a * dt * dt)
        self.x = self.x + dx
        self.speed = np.where(stopping, 0.0, new_speed)
