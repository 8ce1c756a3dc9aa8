"""A user's own channel backend, registered by name and picked with ``channel.backend``.

Free space, line of sight only: Friis amplitude and carrier phase over the RSU -> car
distance, steered by the ULA response, minus ``blockage_db`` when a box cuts the line.
Nothing is random, so the engine's ``seed`` keyword is accepted and unused.

Run: ``python examples/custom_channel.py [OUT_DIR]``, or ``plugins = ["custom_channel"]`` in
a scenario with ``PYTHONPATH=examples`` (see ``custom_mobility.py``).
"""

import math
import sys
from pathlib import Path

import numpy as np

from v2xsim.channel.base import SPEED_OF_LIGHT, ChannelModel
from v2xsim.channel.codebook import ula_response
from v2xsim.config import load_scenario
from v2xsim.geometry import segment_hits
from v2xsim.registry import CHANNEL
from v2xsim.sim.runner import run_to_directory


@CHANNEL.register("free_space")
class FreeSpaceLoS(ChannelModel):
    def __init__(self, *, layout, num_antennas: int, carrier_hz: float, seed: int = 0,
                 blockage_db: float = 20.0) -> None:
        if blockage_db < 0:
            raise ValueError(f"blockage_db must be >= 0, got {blockage_db}")
        self.layout, self.num_antennas, self.carrier_hz = layout, num_antennas, carrier_hz
        self.blockage_db = blockage_db

    def channels(self, rx_positions, obstacles, rx_ids):
        rx = np.asarray(rx_positions, dtype=float).reshape(-1, 3)
        tx = np.broadcast_to(self.layout.rsu_position, rx.shape)
        distance = np.linalg.norm(rx - tx, axis=1)
        loss_db = np.zeros(len(rx))
        if len(obstacles):  # a car's own body never blocks its own line of sight
            hits = segment_hits(tx, rx, obstacles) & (obstacles.owner[None, :] != np.asarray(rx_ids)[:, None])
            loss_db = self.blockage_db * hits.any(axis=1)
        wavelength = SPEED_OF_LIGHT / self.carrier_hz
        amplitude = wavelength / (4 * math.pi * distance) * 10 ** (-loss_db / 20)
        gain = amplitude * np.exp(-2j * math.pi * distance / wavelength)
        return gain[:, None] * ula_response(self.num_antennas, (rx - tx)[:, 0] / distance)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "results/free_space")
    scenario = load_scenario(Path(__file__).parent.parent / "scenarios" / "speed_sweep.toml", [
        'channel.backend="free_space"', "channel.options={blockage_db=25.0}", "sweep.speed_kmh=[30, 90]",
        "simulation.duration_s=0.3", "traffic.num_vehicles=6", "output.plots=false",
        'schemes=[{name="oracle"}, {name="zf_sweep"}]',
    ])
    run_to_directory(scenario, out, workers=1)
    print(f"results in {out / 'results.csv'}")
