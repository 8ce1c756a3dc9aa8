"""How much the effective sum rate moves when every step of the world is halved: the world
tick (``simulation.tick_ms``) and the data phase's two-ray phase step
(``simulation.max_phase_step_deg``), at the headline's speeds, for the classical schemes
(oracle, zf_sweep, wmmse_ce) on the headline road with K = 10 cars, seed by seed.

The acceptance of "time resolution that follows the physics" is a change below 1 % at
250 km/h; ``tests/sim/test_resolution.py`` checks it on a shorter window.

Run: ``python benchmarks/time_resolution.py [--speeds 60 250] [--seeds 0 1 2] [--duration 2]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from v2xsim.config import load_scenario
from v2xsim.sim.engine import run_point

ROOT = Path(__file__).resolve().parent.parent
SCHEMES = '[{name = "oracle"}, {name = "zf_sweep"}, {name = "wmmse_ce"}]'


def effective_rates(speed_kmh: float, seed: int, *, tick_ms: float, degrees: float, duration_s: float
                    ) -> tuple[dict[str, float], float]:
    scenario = load_scenario(ROOT / "scenarios" / "speed_sweep.toml", [
        f"schemes={SCHEMES}", f"simulation.duration_s={duration_s}", f"simulation.tick_ms={tick_ms}",
        f"simulation.max_phase_step_deg={degrees}"])
    start = time.perf_counter()
    output = run_point(scenario, speed_kmh=speed_kmh, num_vehicles=10, seed=seed)
    return {row.scheme: row.effective_sum_rate for row in output.rows}, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speeds", type=float, nargs="+", default=[60.0, 250.0], help="speeds [km/h]")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--duration", type=float, default=2.0, help="simulated seconds per point")
    args = parser.parse_args()
    print(f"{'speed':>6} {'seed':>4} {'oracle 1 ms/30 deg':>19} {'0.5 ms/15 deg':>14} {'change':>8} "
          f"{'sum change':>10} {'wall 1 ms':>9} {'wall 0.5 ms':>11}")
    for speed in args.speeds:
        for seed in args.seeds:
            coarse, wall_coarse = effective_rates(speed, seed, tick_ms=1.0, degrees=30.0, duration_s=args.duration)
            fine, wall_fine = effective_rates(speed, seed, tick_ms=0.5, degrees=15.0, duration_s=args.duration)
            change = fine["oracle"] / coarse["oracle"] - 1 if coarse["oracle"] else 0.0
            total = sum(fine.values()) / sum(coarse.values()) - 1 if sum(coarse.values()) else 0.0
            print(f"{speed:>6g} {seed:>4} {coarse['oracle']:>19.4f} {fine['oracle']:>14.4f} {100 * change:>+7.3f}% "
                  f"{100 * total:>+9.3f}% {wall_coarse:>8.1f}s {wall_fine:>10.1f}s")


if __name__ == "__main__":
    main()
