"""GBA-Vehicle inference time per vehicle on CPU, per sensor set, side by side.

Inputs are real sensor readings of the geometric world (``v2xsim.sensing``: camera,
LiDAR grid, GPS of K = 10 cars on the headline road). The network has the paper's feature
sizes (256 / 256 / 512) and is untrained (timing does not depend on the weights). Each
sensor set uses the pruned deployment: only the branches and fusion blocks of the sensors
a car has run. Times are medians over repeats, one thread (a car's own computer), one
vehicle per call; the sensing itself (rendering, ray casting) is timed alongside since the
simulator does it per alignment. The ratio column is relative to GPS alone.

Run: ``python benchmarks/vehicle_inference.py [--image-width 8]``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _timing import median_time

from v2xsim.models.gba_vehicle import GBAVehicle
from v2xsim.sensing import sense
from v2xsim.geometry import RoadLayout, random_drop

SENSOR_SETS = {"R-L-G": ("gps", "image", "lidar"), "L-G": ("gps", "lidar"), "R-G": ("gps", "image"), "G": ("gps",)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-width", type=int, default=8, help="ResNet width of the image branch")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    layout = RoadLayout()
    drop = random_drop(np.random.default_rng(0), layout, 10)
    readings = sense(layout, drop, np.random.default_rng(1))
    model = GBAVehicle(num_beams=34, image_width=args.image_width).eval()
    sensing = median_time(lambda: sense(layout, drop, np.random.default_rng(1)), 5) / 10
    print(f"GBA-Vehicle, paper feature sizes, image width {args.image_width}, 1 thread, per vehicle")
    print(f"sensing (render camera + cast LiDAR + GPS), per vehicle: {sensing * 1e3:.2f} ms")
    print(f"{'sensors':>8} | {'inference [ms]':>14} | {'vs G':>6}")
    baseline = None
    rows = []
    for name, sensors in reversed(list(SENSOR_SETS.items())):
        inputs = {m: torch.from_numpy(np.ascontiguousarray(readings[m][:1])) for m in sensors}

        def infer() -> None:
            with torch.inference_mode():
                model(inputs, deployment="pruning")

        seconds = median_time(infer, args.repeats)
        baseline = baseline or seconds
        rows.append((name, seconds, seconds / baseline))
    for name, seconds, ratio in reversed(rows):
        print(f"{name:>8} | {seconds * 1e3:14.3f} | {ratio:6.1f}")
    print("paper budget for sensing + prediction: 0.91 ms (seed 002, Table I)")


if __name__ == "__main__":
    main()
