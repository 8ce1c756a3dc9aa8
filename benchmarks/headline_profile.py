"""Where the wall time of one headline point goes, per component, side by side for two
PyTorch thread settings (the sweep's one thread per point vs PyTorch's default).

Components are timed exclusively (a component called inside another counts only for
itself): channel evaluation (one instant, and the instants of a tick at once), re-rating
while beams serve (one instant, and every sub-step of a tick at once), snapshots (the
world at an instant, without its channel evaluation), sweep measurement, sensing
(camera + LiDAR ray casting), GBA-Vehicle, GBA-RSU, oracle, WMMSE-CE, ZF, mobility, and
the rest (SimPy and the engine's own bookkeeping). The learned models must be trained
(run ``v2xsim train scenarios/speed_sweep.toml`` first).

Run: ``python benchmarks/headline_profile.py [--speed 120] [--k 10]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COMPONENTS = [
    ("channel evaluation", "v2xsim.channel.geometric", "GeometricChannel", "channels"),
    ("channel along a tick", "v2xsim.channel.geometric", "GeometricChannel", "channels_along"),
    ("re-rating (serving beams)", "v2xsim.sim.rsu", "SchemeRunner", "_rate_of"),
    ("re-rating along a tick", "v2xsim.sim.rsu", "SchemeRunner", "_rates_along"),
    ("snapshots", "v2xsim.sim.world", "World", "snapshot"),
    ("sweep measurement", "v2xsim.sim.rsu", "SchemeRunner", "_measure_beam"),
    ("sensing (camera + LiDAR)", "v2xsim.sim.rsu", "SchemeRunner", "_sense"),
    ("GBA-Vehicle", "v2xsim.schemes.gba", "GBA", "predict_feedback"),
    ("GBA-RSU", "v2xsim.schemes.gba", "GBA", "allocate"),
    ("oracle", "v2xsim.schemes.baselines", "Oracle", "allocate"),
    ("WMMSE-CE", "v2xsim.schemes.baselines", "WMMSEChannelEstimation", "allocate"),
    ("WMMSE-CB", "v2xsim.schemes.baselines", "WMMSECodebookSearch", "allocate"),
    ("ZF", "v2xsim.schemes.baselines", "ZFSweep", "allocate"),
    ("mobility", "v2xsim.sim.world", "World", "advance"),
]


def profile(speed_kmh: float, num_vehicles: int, torch_threads: int | None) -> dict[str, float]:
    """Exclusive seconds per component of one headline point, in this process."""
    import importlib

    import torch

    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    from v2xsim.config import load_scenario
    from v2xsim.sim.engine import run_point

    totals = {name: 0.0 for name, *_ in COMPONENTS}
    stack: list[float] = []  # time spent in children of the active component

    def wrap(name, function):
        def timed(*args, **kwargs):
            stack.append(0.0)
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                children = stack.pop()
                totals[name] += spent - children
                if stack:
                    stack[-1] += spent
        return timed

    for name, module, cls, method in COMPONENTS:
        owner = getattr(importlib.import_module(module), cls)
        setattr(owner, method, wrap(name, getattr(owner, method)))
    scenario = load_scenario(ROOT / "scenarios" / "speed_sweep.toml")
    run_point(scenario, speed_kmh=speed_kmh, num_vehicles=num_vehicles, seed=1)  # warm-up
    for name in totals:
        totals[name] = 0.0
    start = time.perf_counter()
    run_point(scenario, speed_kmh=speed_kmh, num_vehicles=num_vehicles, seed=0)
    wall = time.perf_counter() - start
    totals["SimPy + engine bookkeeping"] = wall - sum(totals.values())
    totals["total"] = wall
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=120.0, help="speed [km/h]")
    parser.add_argument("--k", type=int, default=10, help="vehicles")
    parser.add_argument("--child", choices=["1", "default"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        threads = 1 if args.child == "1" else None
        print(json.dumps(profile(args.speed, args.k, threads)))
        return
    results = {}
    for setting in ("1", "default"):  # each in a fresh process, one after the other
        out = subprocess.run([sys.executable, __file__, "--child", setting, "--speed", str(args.speed),
                              "--k", str(args.k)], capture_output=True, text=True, check=True)
        results[setting] = json.loads(out.stdout.strip().splitlines()[-1])
    one, default = results["1"], results["default"]
    print(f"headline point: {args.speed:g} km/h, K = {args.k}, 2 simulated s, all schemes")
    print(f"{'component':<28} {'1 torch thread [s]':>19} {'share':>6} {'default threads [s]':>20} {'share':>6}")
    for name in [c[0] for c in COMPONENTS] + ["SimPy + engine bookkeeping", "total"]:
        print(f"{name:<28} {one[name]:>19.2f} {100 * one[name] / one['total']:>5.0f}% "
              f"{default[name]:>20.2f} {100 * default[name] / default['total']:>5.0f}%")
    print(f"ratio 1 thread / default: {one['total'] / default['total']:.2f}")


if __name__ == "__main__":
    main()
