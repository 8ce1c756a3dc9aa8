"""A user's own mobility model, registered by name and run from a scenario.

Stop-and-go traffic: every car follows the same speed profile, driving at its desired
speed for ``go_s`` seconds, then crawling at ``crawl_fraction`` of it for ``stop_s``.

Run: ``python examples/custom_mobility.py [OUT_DIR]``. Or name the module in a scenario,
``plugins = ["custom_mobility"]`` with ``[mobility] model = "stop_and_go"``, and run it with
``PYTHONPATH=examples python -m v2xsim run SCENARIO.toml --out OUT_DIR``.
"""

import sys
from pathlib import Path

from v2xsim.config import load_scenario
from v2xsim.mobility import MobilityModel
from v2xsim.registry import MOBILITY
from v2xsim.sim.runner import run_to_directory


@MOBILITY.register("stop_and_go")
class StopAndGo(MobilityModel):
    def __init__(self, *, go_s: float = 0.5, stop_s: float = 0.5, crawl_fraction: float = 0.1) -> None:
        if go_s <= 0 or stop_s < 0 or not 0 <= crawl_fraction <= 1:
            raise ValueError("need go_s > 0, stop_s >= 0 and 0 <= crawl_fraction <= 1")
        self.go_s, self.stop_s, self.crawl_fraction = go_s, stop_s, crawl_fraction

    def step(self, dt: float) -> None:
        moving = (self.time % (self.go_s + self.stop_s)) < self.go_s
        self.speed = self.desired_speed * (1.0 if moving else self.crawl_fraction)
        self.x = self.x + self.speed * dt


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "results/stop_and_go")
    scenario = load_scenario(Path(__file__).parent.parent / "scenarios" / "speed_sweep.toml", [
        'mobility.model="stop_and_go"', "mobility.options={go_s=0.4, stop_s=0.6}",
        "sweep.speed_kmh=[30, 90]", "simulation.duration_s=1.0", "traffic.num_vehicles=6",
        "output.plots=false", 'schemes=[{name="oracle"}, {name="zf_sweep"}]',  # no training needed
    ])
    run_to_directory(scenario, out, workers=1)
    print(f"results in {out / 'results.csv'} (alignment log: {out / 'events.csv'})")
