"""GBA-RSU inference time vs K, side by side with the WMMSE-CE solve on the same drops.

Feedback comes from the geometric world (K cars at random on the covered road, 34 beams).
Times are medians over repeats and over 5 drops per K, one thread; the speed-up is the
median over drops of the per-drop ratio. The K = 1000 row also reports the peak
resident memory of a fresh process doing only that inference, and the worst case of
1000 *distinct* random feedback vectors (no two vehicles alike).

Run: ``python benchmarks/rsu_inference.py [--hidden 128]``.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys

import numpy as np
import torch
from _timing import median_time

from v2xsim.schemes.base import Observation
from v2xsim.schemes.baselines import WMMSEChannelEstimation
from v2xsim.models.gba_rsu import GBARSU
from v2xsim.channel.codebook import dft_codebook
from v2xsim.channel.geometric import GeometricChannel
from v2xsim.config import RadioConfig
from v2xsim.metrics import binary_feedback, dbm_to_watt, rss_vector
from v2xsim.geometry import random_drop


def world_drop(num: int, seed: int = 0):
    channel = GeometricChannel(seed=seed)
    drop = random_drop(np.random.default_rng(seed), channel.layout, num)
    return channel.channels(drop.positions, drop.obstacles, drop.ids)


def peak_memory_child(hidden: int, distinct: bool) -> None:
    """Child process: one K = 1000 inference, then print its time and peak RSS."""
    torch.set_num_threads(1)
    model = GBARSU(num_beams=34, hidden=hidden).eval()
    if distinct:
        v = (torch.rand(1, 1000, 34, generator=torch.Generator().manual_seed(0)) < 0.2).float()
    else:
        h = world_drop(1000)
        v = torch.from_numpy(binary_feedback(rss_vector(h, dft_codebook(16, 34), 1.0), float(dbm_to_watt(RadioConfig().sensitivity_dbm))))
        v = v.float()[None]
    with torch.inference_mode():
        seconds = median_time(lambda: model(v), 3)
    print(f"{seconds} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--child", choices=["world", "distinct"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        peak_memory_child(args.hidden, args.child == "distinct")
        return
    torch.set_num_threads(1)
    codebook = dft_codebook(16, 34)
    noise = float(dbm_to_watt(-174 + 10 * np.log10(2.16e9) + 7))
    threshold = float(dbm_to_watt(RadioConfig().sensitivity_dbm))
    model = GBARSU(num_beams=34, hidden=args.hidden).eval()
    print(f"GBA-RSU hidden={args.hidden}, 1 thread; WMMSE-CE = RSS quantisation + channel estimate + "
          f"beams + WMMSE power")
    print(f"{'K':>5} {'distinct v':>10} {'GBA-RSU [ms]':>13} {'WMMSE-CE [ms]':>14} {'speed-up':>9}")
    for num in (1, 10, 100, 1000):
        # several drops per K (one for K = 1000); both solvers timed on each, side by side
        gnn_times, wmmse_times, distinct = [], [], []
        for seed in range(5 if num < 1000 else 1):
            h = world_drop(num, seed)
            rss = rss_vector(h, codebook, 1.0)
            v = torch.from_numpy(binary_feedback(rss, threshold)).float()[None]
            distinct.append(len(torch.unique(v[0], dim=0)))
            with torch.inference_mode():
                gnn_times.append(median_time(lambda: model(v), 50 if num < 1000 else 3))
            if num <= 100:
                observation = Observation(codebook=codebook, p_max=1.0, noise_power=noise,
                                          feedback_threshold=threshold, rss=rss)
                scheme = WMMSEChannelEstimation()
                wmmse_times.append(median_time(lambda: scheme.allocate(observation), 5 if num < 100 else 1))
        gnn = float(np.median(gnn_times))
        if wmmse_times:
            wmmse = float(np.median(wmmse_times))
            ratio = float(np.median(np.array(wmmse_times) / np.array(gnn_times)))
            print(f"{num:>5} {int(np.median(distinct)):>10} {1e3 * gnn:>13.3f} {1e3 * wmmse:>14.2f} {ratio:>8.0f}x")
        else:
            print(f"{num:>5} {int(np.median(distinct)):>10} {1e3 * gnn:>13.3f} {'(not run)':>14}")
    for kind in ("world", "distinct"):
        out = subprocess.run([sys.executable, __file__, "--hidden", str(args.hidden), "--child", kind],
                             capture_output=True, text=True, check=True).stdout.split()
        print(f"K=1000, {kind} feedback, fresh process: {1e3 * float(out[0]):.1f} ms, peak RSS {out[1]} MB "
              f"(includes the torch import)")


if __name__ == "__main__":
    main()
