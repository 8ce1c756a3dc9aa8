"""Beam coherence and alignment-delay model (seed 002, Section V-D and Table I).

All times are in seconds, distances in metres, speeds in metres per second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from v2xsim import checks as check
from v2xsim.units import kmh_to_mps

__all__ = ["RealignmentPolicy", "TimingModel", "beam_coherence_time", "contact_time", "coverage_length",
           "kmh_to_mps"]

#: Table I of seed 002 (FLASH, Talon routers): a 34-sector sweep takes 20.31 ms
PAPER_SWEEP_S = 20.31e-3
PAPER_SWEEP_BEAMS = 34
#: Table I: 442 feedback bits take 247 ns on the 5 GHz back channel [bit/s]
PAPER_BACKCHANNEL_RATE_BPS = 442 / 247e-9
#: Table I: on-vehicle sensing and GBA-Vehicle prediction [s]
PAPER_SENSING_S = 0.91e-3


def coverage_length(height_m: float, coverage_angle_rad: float) -> float:
    """Road length covered by the RSU [m]: ``2 h tan(phi / 2)``."""
    check.positive("height_m", height_m)
    check.angle_in_open_interval("coverage_angle_rad", coverage_angle_rad, math.pi)
    return 2.0 * height_m * math.tan(coverage_angle_rad / 2.0)


def contact_time(height_m: float, coverage_angle_rad: float, speed_mps: float) -> float:
    """Time a vehicle at ``speed_mps`` spends in the RSU coverage [s] (Eq. 23)."""
    check.positive("speed_mps", speed_mps)
    return coverage_length(height_m, coverage_angle_rad) / speed_mps


def beam_coherence_time(
    height_m: float, coverage_angle_rad: float, speed_mps: float, num_beams: int
) -> float:
    """Time one codebook beam stays valid [s]: ``T_contact / W``."""
    check.positive_int("num_beams", num_beams)
    return contact_time(height_m, coverage_angle_rad, speed_mps) / num_beams


@dataclass(frozen=True, kw_only=True)
class TimingModel:
    """Durations of the steps of one beam alignment.

    Defaults reproduce Table I of seed 002 (FLASH, Talon routers, 5 GHz back channel):
    a 34-beam sweep takes 20.31 ms, feedback rides a ~1.79 Gbit/s back channel
    (442 bits in 247 ns) and on-vehicle GBA sensing + prediction takes 0.91 ms.

    Attributes:
        beam_slot_s: sweep time per codebook beam [s].
        backchannel_rate_bps: back-channel bit rate [bit/s].
        mac_access_s: fixed medium-access overhead per feedback message [s].
        sensing_s: on-vehicle sensing + inference time of learned schemes [s].
    """

    beam_slot_s: float = PAPER_SWEEP_S / PAPER_SWEEP_BEAMS
    backchannel_rate_bps: float = PAPER_BACKCHANNEL_RATE_BPS
    mac_access_s: float = 0.0
    sensing_s: float = PAPER_SENSING_S

    def __post_init__(self) -> None:
        check.non_negative("beam_slot_s", self.beam_slot_s)
        check.positive("backchannel_rate_bps", self.backchannel_rate_bps)
        check.non_negative("mac_access_s", self.mac_access_s)
        check.non_negative("sensing_s", self.sensing_s)

    def sweep_time(self, num_beams: int) -> float:
        """Duration of an exhaustive sweep over ``num_beams`` beams [s]."""
        return check.positive_int("num_beams", num_beams) * self.beam_slot_s

    def airtime(self, bits: int) -> float:
        """Back-channel occupancy of one feedback message of ``bits`` bits [s]."""
        if bits < 0:
            raise ValueError(f"bits must be >= 0, got {bits}")
        return self.mac_access_s + bits / self.backchannel_rate_bps


@dataclass(frozen=True, kw_only=True)
class RealignmentPolicy:
    """When the RSU realigns.

    ``"coherence"``: after the shortest beam coherence time ``T_contact / W`` among the
    vehicles at the alignment (speeds below ``min_speed_mps`` count as that speed);
    ``"fixed"``: every ``period_s`` seconds.
    """

    kind: str = "coherence"
    period_s: float | None = None
    min_speed_mps: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("coherence", "fixed"):
            raise ValueError(f"kind must be 'coherence' or 'fixed', got {self.kind!r}")
        if self.kind == "fixed":
            if self.period_s is None:
                raise ValueError("period_s is required when kind = 'fixed'")
            check.positive("period_s", self.period_s)
        check.positive("min_speed_mps", self.min_speed_mps)

    def period(self, speeds, *, coverage_length_m: float, num_beams: int) -> float:
        """Realignment period [s] for vehicles at ``speeds`` (K,) [m/s]."""
        if self.kind == "fixed":
            return float(self.period_s)  # type: ignore[arg-type]
        fastest = max(float(np.max(speeds, initial=0.0)), self.min_speed_mps)
        return coverage_length_m / (num_beams * fastest)
