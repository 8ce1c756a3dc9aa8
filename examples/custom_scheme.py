"""A user's own beam-alignment scheme, registered by name and run next to ``zf_sweep``.

"Strongest few": after the beam sweep each car feeds back its best beam index and that
beam's RSS quantised to ``level_bits``; the RSU serves the ``max_served`` strongest cars,
at most one per beam, with equal power.

Run: ``python examples/custom_scheme.py [OUT_DIR]``, or ``plugins = ["custom_scheme"]`` in a
scenario with ``PYTHONPATH=examples`` (see ``custom_mobility.py``).
"""

import sys
from pathlib import Path

import numpy as np

from v2xsim.config import load_scenario
from v2xsim.registry import SCHEME
from v2xsim.schemes.base import Allocation, Observation, Scheme, index_bits
from v2xsim.sim.runner import run_to_directory


@SCHEME.register("strongest_few")
class StrongestFew(Scheme):
    name, acquisition = "strongest_few", "sweep"

    def __init__(self, *, max_served: int = 3, level_bits: int = 3, range_db: float = 40.0) -> None:
        if max_served < 1 or level_bits < 1 or range_db <= 0:
            raise ValueError("need max_served >= 1, level_bits >= 1 and range_db > 0")
        self.max_served, self.level_bits, self.range_db = max_served, level_bits, range_db

    def feedback_bits(self, num_beams: int) -> int:
        return index_bits(num_beams) + self.level_bits

    def allocate(self, observation: Observation) -> Allocation:
        rss = np.asarray(observation.rss).reshape(-1, observation.num_beams)
        beams = np.argmax(rss, axis=1)
        best, floor = rss[np.arange(len(beams)), beams], max(observation.feedback_threshold, 1e-30)
        top = 2 ** self.level_bits - 1  # the level a car reports; -1: it heard no beam
        level = np.clip(np.floor(10 * np.log10(np.maximum(best, floor) / floor) * top / self.range_db), 0, top)
        level = np.where(best > observation.feedback_threshold, level, -1)
        chosen = np.full(len(beams), -1)
        for k in np.argsort(-level, kind="stable"):
            if level[k] >= 0 and (chosen >= 0).sum() < self.max_served and beams[k] not in chosen:
                chosen[k] = beams[k]
        return Allocation(chosen, np.where(chosen >= 0, observation.p_max / max((chosen >= 0).sum(), 1), 0.0))


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "results/strongest_few")
    scenario = load_scenario(Path(__file__).parent.parent / "scenarios" / "speed_sweep.toml", [
        "sweep.speed_kmh=[30, 90]", "simulation.duration_s=0.3", "traffic.num_vehicles=6", "output.plots=false",
        'schemes=[{name="zf_sweep"}, {name="strongest_few", options={max_served=3}}]',
    ])
    run_to_directory(scenario, out, workers=1)
    print(f"results in {out / 'results.csv'}")
