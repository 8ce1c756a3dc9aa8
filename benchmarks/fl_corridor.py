"""Wall time per simulated minute of the corridor FL study's world (3 RSUs, 30 cars,
event-to-event), with full and with sampled beam alignment side by side in one run, and
the share of each spent in local training (real PyTorch fits), in the held-out
evaluation, and in the rest (survey excluded: it is shared by a study's runs).

Run: ``python benchmarks/fl_corridor.py [--minutes 1] [--speed 60]`` (a few minutes on 2
cores; one PyTorch thread, as a study worker has).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="simulated minutes per run")
    parser.add_argument("--speed", type=float, default=60.0, help="km/h")
    args = parser.parse_args()
    import torch

    from v2xsim.sim.corridor.config import load_corridor
    from v2xsim.sim.corridor.learning import Learner
    from v2xsim.sim.corridor.run import Point, prepare_learning, run_point

    torch.set_num_threads(1)
    duration = 60.0 * args.minutes
    rows = []
    for mode in ("full", "sampled"):
        scenario = load_corridor(ROOT / "scenarios/fl_corridor.toml",
                                 [f'alignment.mode="{mode}"', f"duration_s={duration}"])
        point = Point(scenario, speed_kmh=args.speed, vehicles=30)
        started = time.perf_counter()
        prepare_learning(point, store=None, quiet=True)  # the survey and GBA-RSU, once per study
        prepare_s = time.perf_counter() - started
        spent = {"evaluation": 0.0}
        original = Learner.evaluate

        def timed(self, original=original):
            began = time.perf_counter()
            try:
                return original(self)
            finally:
                spent["evaluation"] += time.perf_counter() - began

        Learner.evaluate = timed
        try:
            summary = run_point(point, quiet=True)
        finally:
            Learner.evaluate = original
        wall = summary["wall_s"]
        rows.append((mode, wall, summary, spent["evaluation"], prepare_s))
    print(f"corridor world (scenarios/fl_corridor.toml): 3 RSUs, 30 cars, {args.speed:g} km/h, "
          f"{duration:g} s simulated, fedavg, one torch thread")
    print(f"{'alignment':<10} {'wall s':>8} {'s / sim min':>12} {'training':>9} {'evaluation':>11} {'rest':>7} "
          f"{'rounds':>7} {'eff. rate':>9}")
    for mode, wall, summary, evaluation, _ in rows:
        per_minute = wall / args.minutes
        training = summary["training_wall_s"]
        rest = wall - training - evaluation
        print(f"{mode:<10} {wall:8.1f} {per_minute:12.1f} {100 * training / wall:8.0f}% {100 * evaluation / wall:10.0f}% "
              f"{100 * rest / wall:6.0f}% {summary['rounds_done']:7d} {summary['effective_sum_rate']:9.3f}")
    print(f"sampled / full wall time: {rows[1][1] / rows[0][1]:.2f}")
    print(f"(survey and GBA-RSU, once per study: {rows[0][4]:.1f} s; the same FL timeline in both modes: "
          f"{rows[0][2]['rounds_done'] == rows[1][2]['rounds_done']})")


if __name__ == "__main__":
    main()
