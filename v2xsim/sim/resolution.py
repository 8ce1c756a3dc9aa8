"""Time resolution of the world: how finely the data phase samples the channel between
world ticks.

The world process (:mod:`v2xsim.sim.engine`) moves the traffic once per tick
(``simulation.tick_ms``). At 60 GHz that is too coarse for the channel: the phase between
the direct path and the ground bounce turns by hundreds of degrees per millisecond at
motorway speeds, so a rate held for a whole tick aliases the in-beam fading. The rate of
serving beams is therefore evaluated at ``n`` equal sub-steps of every tick, ``n`` chosen
at every change of the world from its fastest vehicle so that the two-ray phase moves by
at most ``max_phase_step_deg`` per sub-step (:func:`two_ray_phase_step_s`). (Snapshots -
an alignment, one slot of a sweep - are taken at their exact instant, see
:mod:`v2xsim.sim.world`.)

The bound (one source of truth, used by the engine and checked against the geometric
channel's own path lengths in the tests). With the RSU array at height ``h_t`` [m], the
vehicle antenna at ``h_r`` [m] and ``rho`` [m] the ground distance between them, the direct
and ground-reflected paths are ``L_los = sqrt(rho^2 + a^2)`` and ``L_gr = sqrt(rho^2 + b^2)``
with ``a = |h_t - h_r|`` and ``b = h_t + h_r`` (image method). Their difference changes at

    |d(L_gr - L_los)/dt| = |d(L_gr - L_los)/d rho| |d rho/dt| <= G v,

because a vehicle driving along the road at ``v`` [m/s] changes its ground distance at
``|d rho/dt| <= v``, and ``G = max_rho rho (1 / sqrt(rho^2 + a^2) - 1 / sqrt(rho^2 + b^2))``
(dimensionless, :func:`two_ray_geometry_factor`). The maximum is at
``rho* = a k / sqrt(1 + k)`` with ``k = (b / a)^(2/3)``; ``G = 1`` for ``a = 0``. The phase
``360 deg (L_gr - L_los) / lambda`` (``lambda`` the wavelength [m]) thus moves by at most
``theta`` [deg] within

    tau(v) = theta lambda / (360 deg G v)   [s].

For the headline site (``h_t`` = 10 m, ``h_r`` = 1.6 m, 60 GHz, 30 deg): G = 0.124 and
tau = 48.6 us at 250 km/h, 202 us at 60 km/h, 1.21 ms at 10 km/h. The bound follows the
direct / ground-bounce pair, the strongest pair of paths; the weaker wall reflections
(8 dB loss) and point scatterers (15 dB) can turn faster and are sampled at the same step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from v2xsim import checks as check
from v2xsim.channel.base import SPEED_OF_LIGHT


def two_ray_geometry_factor(rsu_height_m: float, antenna_height_m: float) -> float:
    """``G``: the largest rate of change of the two-ray path-length difference per metre of
    ground distance, ``max_rho |d(L_gr - L_los)/d rho|`` (dimensionless, in [0, 1]).

    Args:
        rsu_height_m: height of the RSU array ``h_t`` [m].
        antenna_height_m: height of the vehicle antenna ``h_r`` [m].
    """
    check.positive("rsu_height_m", rsu_height_m)
    check.positive("antenna_height_m", antenna_height_m)
    a = abs(rsu_height_m - antenna_height_m)
    b = rsu_height_m + antenna_height_m
    if a == 0.0:
        return 1.0  # sup at rho -> 0: the direct path is horizontal
    k = (b / a) ** (2.0 / 3.0)
    rho = a * k / math.sqrt(1.0 + k)
    return rho / math.hypot(rho, a) - rho / math.hypot(rho, b)


def two_ray_phase_step_s(speed_mps: float, *, carrier_hz: float, rsu_height_m: float, antenna_height_m: float,
                         max_phase_deg: float) -> float:
    """Longest time [s] in which the phase between the direct path and the ground bounce
    of a vehicle driving at ``speed_mps`` [m/s] moves by at most ``max_phase_deg`` [deg]:
    ``tau = theta lambda / (360 G v)`` (inf for a vehicle at rest).

    Args:
        speed_mps: vehicle speed ``v`` [m/s], >= 0.
        carrier_hz: carrier frequency [Hz] (``lambda = c / f``).
        rsu_height_m, antenna_height_m: ``h_t``, ``h_r`` [m].
        max_phase_deg: ``theta`` [deg], > 0.
    """
    check.non_negative("speed_mps", speed_mps)
    check.positive("carrier_hz", carrier_hz)
    check.positive("max_phase_deg", max_phase_deg)
    rate = two_ray_geometry_factor(rsu_height_m, antenna_height_m) * speed_mps  # [m/s] of path difference
    if rate == 0.0:
        return math.inf
    wavelength = SPEED_OF_LIGHT / carrier_hz
    return max_phase_deg / 360.0 * wavelength / rate


@dataclass(frozen=True, kw_only=True)
class TimeResolution:
    """How finely the world follows the channel between ticks.

    Attributes:
        tick_s: world tick [s] (mobility, arrivals, blockage).
        carrier_hz: carrier frequency [Hz].
        rsu_height_m: RSU array height [m].
        antenna_height_m: vehicle antenna height [m].
        max_phase_step_deg: largest two-ray phase change per sub-step [deg]; None: the
            channel is held from tick to tick (one sample per tick, at the tick, and every
            snapshot of a tick is the tick's), for backends too costly to evaluate finer.
    """

    tick_s: float
    carrier_hz: float = 60e9
    rsu_height_m: float = 10.0
    antenna_height_m: float = 1.6
    max_phase_step_deg: float | None = None

    def __post_init__(self) -> None:
        check.positive("tick_s", self.tick_s)
        if self.max_phase_step_deg is not None:
            check.positive("max_phase_step_deg", self.max_phase_step_deg)

    def substeps(self, max_speed_mps: float) -> int:
        """Sub-steps per tick, ``ceil(tick / tau(v_max))`` (at least 1), for the fastest
        vehicle on the road at ``max_speed_mps`` [m/s]."""
        if self.max_phase_step_deg is None:
            return 1
        longest = two_ray_phase_step_s(max_speed_mps, carrier_hz=self.carrier_hz, rsu_height_m=self.rsu_height_m,
                                       antenna_height_m=self.antenna_height_m,
                                       max_phase_deg=self.max_phase_step_deg)
        # the 1e-9 keeps a ratio that is an integer up to rounding from adding a sub-step
        return max(1, math.ceil(self.tick_s / longest * (1.0 - 1e-9)))

    @property
    def follows_between_ticks(self) -> bool:
        """Whether snapshots and rates follow the vehicles between ticks."""
        return self.max_phase_step_deg is not None


__all__ = ["TimeResolution", "two_ray_geometry_factor", "two_ray_phase_step_s"]
