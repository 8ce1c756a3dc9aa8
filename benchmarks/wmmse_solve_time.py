"""WMMSE-CE solve time versus the number of vehicles K on this machine.

Run: ``python benchmarks/wmmse_solve_time.py [--repeats N]``. Each K uses random
FLASH-like drops of the geometric world (16 antennas, 34 beams); the time covers RSS
quantisation, channel estimation, beam selection and WMMSE power control. The zf_sweep
and oracle solves are timed side by side for reference, and the mean sum-rate gap of each
scheme to the oracle is printed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from v2xsim.schemes.base import Observation
from v2xsim.schemes.baselines import Oracle, WMMSEChannelEstimation, ZFSweep
from v2xsim.channel.codebook import dft_codebook
from v2xsim.channel.geometric import GeometricChannel
from v2xsim.config import RadioConfig
from v2xsim.metrics import dbm_to_watt, rss_vector, user_rates
from v2xsim.geometry import random_drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="drops per K")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    args = parser.parse_args()
    codebook = dft_codebook(16, 34)
    noise = float(dbm_to_watt(-174 + 10 * np.log10(2.16e9) + 7))
    threshold = float(dbm_to_watt(RadioConfig().sensitivity_dbm))
    channel = GeometricChannel(seed=0)
    rng = np.random.default_rng(0)
    schemes = {"zf_sweep": ZFSweep(), "wmmse_ce": WMMSEChannelEstimation(), "oracle": Oracle()}
    print(f"{'K':>4} " + " ".join(f"{name + ' [ms]':>15}" for name in schemes)
          + f" {'wmmse/zf':>9} {'gap zf':>7} {'gap ce':>7}")
    for num_vehicles in args.ks:
        seconds = {name: [] for name in schemes}
        rates = {name: [] for name in schemes}
        for _ in range(args.repeats):
            drop = random_drop(rng, channel.layout, num_vehicles, num_trucks=1, num_pedestrians=2)
            h = channel.channels(drop.positions, drop.obstacles, drop.ids)
            obs = Observation(codebook=codebook, p_max=1.0, noise_power=noise, feedback_threshold=threshold,
                              channels=h, rss=rss_vector(h, codebook, 1.0))
            for name, scheme in schemes.items():
                start = time.perf_counter()
                allocation = scheme.allocate(obs)
                seconds[name].append(time.perf_counter() - start)
                rates[name].append(user_rates(h, allocation.precoders(codebook), noise).sum())
        ms = {name: 1e3 * float(np.median(values)) for name, values in seconds.items()}
        gap = {name: float(np.mean(np.array(rates["oracle"]) - np.array(rates[name]))) for name in rates}
        print(f"{num_vehicles:>4} " + " ".join(f"{ms[name]:>15.3f}" for name in schemes)
              + f" {ms['wmmse_ce'] / ms['zf_sweep']:>9.0f} {gap['zf_sweep']:>7.2f} {gap['wmmse_ce']:>7.2f}")


if __name__ == "__main__":
    main()
