"""The corridor's road: RSUs along a straight road, cars at constant speeds, and the exact
instants at which a car enters and leaves each RSU's coverage (no time step).

A car's position along the road is ``x(t) = x0 + v t`` [m]; on a looped corridor
(``loop = true``) it re-enters at ``x = 0`` after ``length_m``, so a fleet stays on the
road for a long study. RSU ``j`` covers ``[start_j, end_j)`` along the road. The crossings
of a car are computed from its start and speed alone (``t = (boundary + lap x length -
x0) / v``), never by accumulating steps, so event times are exact to the rounding of one
division.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

ENTER = "enter"
EXIT = "exit"


@dataclass(frozen=True, kw_only=True)
class Crossing:
    """A car crossing a coverage boundary.

    Attributes:
        time_s: instant [s]. rsu: index of the RSU. kind: ``"enter"`` or ``"exit"``.
    """

    time_s: float
    rsu: int
    kind: str


@dataclass(frozen=True, kw_only=True)
class Corridor:
    """RSU coverage along the road.

    Attributes:
        length_m: road length [m] (the loop's circumference when ``loop``).
        loop: cars that reach the end re-enter at the start.
        coverage: (J, 2) covered stretch ``[start, end)`` of each RSU along the road [m].
    """

    length_m: float
    loop: bool
    coverage: np.ndarray

    def __post_init__(self) -> None:
        coverage = np.asarray(self.coverage, dtype=float).reshape(-1, 2)
        if not math.isfinite(self.length_m) or self.length_m <= 0:
            raise ValueError(f"corridor.length_m must be a positive number, got {self.length_m}")
        for j, (start, end) in enumerate(coverage):
            if not (0.0 <= start < end <= self.length_m):
                raise ValueError(f"rsus[{j}]: coverage [{start:g}, {end:g}) m must lie within the corridor "
                                 f"[0, {self.length_m:g}) m (corridor.length_m)")
        object.__setattr__(self, "coverage", coverage)

    @property
    def num_rsus(self) -> int:
        return len(self.coverage)

    def covering(self, x: float) -> list[int]:
        """RSUs whose coverage holds road position ``x`` [m]."""
        return [j for j, (start, end) in enumerate(self.coverage) if start <= x < end]

    def _boundaries(self) -> list[tuple[float, int, str]]:
        out = [(float(s), j, ENTER) for j, (s, _) in enumerate(self.coverage)]
        out += [(float(e), j, EXIT) for j, (_, e) in enumerate(self.coverage)]
        # at one position an exit comes before an entry (a car handed over at a shared edge)
        return sorted(out, key=lambda b: (b[0], b[2] != EXIT, b[1]))

    def crossings(self, x0: float, speed_mps: float) -> Iterator[Crossing]:
        """Every crossing of a car starting at ``x0`` [m] at ``speed_mps`` [m/s], in time
        order (endless on a loop)."""
        if speed_mps <= 0:
            return
        boundaries = self._boundaries()
        lap = 0
        while True:
            for x, rsu, kind in boundaries:
                position = x + lap * self.length_m
                if lap == 0 and x <= x0:
                    continue
                yield Crossing(time_s=(position - x0) / speed_mps, rsu=rsu, kind=kind)
            if not self.loop:
                return
            lap += 1

    def time_left_s(self, x: float, speed_mps: float, rsu: int) -> float:
        """Time [s] until a car at ``x`` [m] (inside ``rsu``'s coverage) leaves it."""
        return max(0.0, (float(self.coverage[rsu, 1]) - x) / speed_mps)


def place_cars(*, count: int, length_m: float, lanes: int, min_gap_m: float,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Start positions (count,) [m] and lanes (count,) of a fleet: cars dealt to lanes in
    turn, each lane's cars at uniformly random positions at least ``min_gap_m`` apart
    (also across the loop's seam). A lane that cannot hold its cars is refused."""
    lane = np.arange(count) % lanes
    x0 = np.zeros(count)
    for number in range(lanes):
        members = np.flatnonzero(lane == number)
        n = len(members)
        if n == 0:
            continue
        free = length_m - n * min_gap_m
        if free < 0:
            raise ValueError(f"traffic.vehicles: {n} cars do not fit in a lane of {length_m:g} m at "
                             f"traffic.min_gap_m = {min_gap_m:g} m (at most {int(length_m // min_gap_m)})")
        offsets = np.sort(rng.uniform(0.0, free, n))
        x0[members] = offsets + np.arange(n) * min_gap_m
    return x0, lane


__all__ = ["ENTER", "EXIT", "Corridor", "Crossing", "place_cars"]
