"""Ray tracing versus cache hits of the Sionna RT backend, side by side.

Run: ``python benchmarks/rt_cache.py [--ks 8 32] [--drops 5] [--samples 100000]``.
For each K, random FLASH-like drops of the street-canyon scene are traced once (cache
empty: every call is a PathSolver trace plus the write of the entry), then the same
drops are asked for again (every call is a cache hit: the ``.npz`` read plus the
extrapolation to the exact positions). A warm-up drop per K, excluded from the timings,
absorbs the JIT compilation. The cache lives in a temporary directory unless
``--cache-dir`` is given. Hits must reproduce the traced arrays exactly; the script
checks that.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from v2xsim.channel.sionna_rt import SionnaRTChannel
from v2xsim.geometry import RoadLayout, random_drop


def _time_calls(channel: SionnaRTChannel, drops) -> tuple[list[float], list[np.ndarray]]:
    seconds, results = [], []
    for drop in drops:
        start = time.perf_counter()
        results.append(channel.channels(drop.positions, drop.obstacles, drop.ids))
        seconds.append(time.perf_counter() - start)
    return seconds, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[8, 32], help="vehicles per drop")
    parser.add_argument("--drops", type=int, default=5, help="timed drops per K")
    parser.add_argument("--samples", type=int, default=100_000, help="samples_per_src")
    parser.add_argument("--max-depth", type=int, default=3)
    parser.add_argument("--scene", default="street_canyon")
    parser.add_argument("--cache-dir", default=None, help="default: a temporary directory")
    args = parser.parse_args()

    layout = RoadLayout()
    with tempfile.TemporaryDirectory(prefix="v2xsim-rt-cache-") as tmp:
        cache_dir = args.cache_dir or tmp
        channel = SionnaRTChannel(layout=layout, scene=args.scene, samples_per_src=args.samples,
                                  max_depth=args.max_depth, cache_dir=cache_dir)
        print(f"scene={args.scene} max_depth={args.max_depth} samples_per_src={args.samples} "
              f"drops/K={args.drops} cache={cache_dir}")
        print(f"{'K':>4} {'trace [ms]':>11} {'hit [ms]':>9} {'ratio':>8} {'paths/rx':>9} {'trace/rx [ms]':>14}")
        for num_vehicles in args.ks:
            rng = np.random.default_rng(1000 + num_vehicles)
            drops = [random_drop(rng, layout, num_vehicles) for _ in range(args.drops + 1)]
            warm, timed = drops[0], drops[1:]
            channel.channels(warm.positions, warm.obstacles, warm.ids)
            traces_before = channel.trace_count
            trace_s, traced = _time_calls(channel, timed)
            if channel.trace_count - traces_before != len(timed):
                print(f"  note: {len(timed) - (channel.trace_count - traces_before)} drop(s) of K={num_vehicles} "
                      "were already in the cache directory")
            hits_before = channel.trace_count
            hit_s, cached = _time_calls(channel, timed)
            assert channel.trace_count == hits_before, "the second pass must be served by the cache"
            assert all(np.array_equal(a, b) for a, b in zip(traced, cached)), "cache hits differ"
            paths = np.mean([channel.paths(d.positions, d.obstacles, d.ids).valid.sum(axis=1).mean()
                             for d in timed])
            trace_ms, hit_ms = 1e3 * np.median(trace_s), 1e3 * np.median(hit_s)
            print(f"{num_vehicles:>4} {trace_ms:>11.1f} {hit_ms:>9.2f} {trace_ms / hit_ms:>7.0f}x "
                  f"{paths:>9.1f} {trace_ms / num_vehicles:>14.1f}")
        print("(medians; trace = PathSolver call + cache write, hit = .npz read + extrapolation)")


if __name__ == "__main__":
    main()
