"""Held-out quality of GBA-Vehicle after every epoch, for the headline's training data:
the evidence behind ``VehicleTrainingConfig.epochs`` (10).

Trains the headline's GBA-Vehicle (one PyTorch thread, constant AdamW rate) epoch by epoch
for each training seed, and after each epoch evaluates a BatchNorm-recalibrated copy on an
independent FLASH-like data set of the same road (another seed): bit accuracy, exact match,
top-1 beam hit, and the sum rate GBA-RSU reaches from the predicted feedback. One JSON line
per epoch. Uses private caches under /tmp; about 1 minute per epoch and seed on 2 idle cores.

Run: ``python benchmarks/vehicle_epochs.py --seeds 0,1 --epochs 20``.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile

import numpy as np
import torch

from v2xsim import build
from v2xsim.config import load_scenario
from v2xsim.data.flash_like import FlashLikeConfig, dataset_dir, generate_flash_like, load_flash_like, snapshot_rows
from v2xsim.store import ModelStore
from v2xsim.training.rsu import feedback_sum_rates
from v2xsim.training.vehicle import (SensorSet, VehicleTrainingConfig, evaluate_vehicle, recalibrate_batchnorm,
                                     train_vehicle)

HELD_OUT_SEED = 777


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    scenario = load_scenario("scenarios/speed_sweep.toml", ["schemes=[{name=\"gba\", options={feedback=\"ground_truth\"}}]"])
    store = ModelStore(quiet=True)
    ((_, gba),) = build.schemes(scenario, store)
    sections = dict(road=scenario.road.model_dump(), radio=scenario.radio.model_dump(),
                    blockers=scenario.blockers.model_dump())

    def episodes(config: FlashLikeConfig):
        root = dataset_dir(config, store.directory)
        generate_flash_like(root, config, quiet=True)
        return load_flash_like(root)

    train = SensorSet.from_episodes(episodes(FlashLikeConfig(**sections)))
    held_out = episodes(FlashLikeConfig(**sections, seed=HELD_OUT_SEED))
    trials = np.unique(np.concatenate([held_out[e]["trial"] for e in held_out]))
    index, snapshots = snapshot_rows(held_out, trials)
    test = SensorSet.from_episodes(held_out, index)
    channels = np.concatenate([held_out[e]["channel"][index[e]] for e in sorted(held_out)])[snapshots]
    radio = build.site(scenario.road, scenario.radio).radio
    rate_args = dict(p_max=radio.p_max, noise_power=radio.noise_power, codebook=radio.codebook)
    print(json.dumps({"true_feedback_sum_rate": float(
        feedback_sum_rates(gba.model, test.feedback[snapshots], channels, **rate_args).mean())}))
    with tempfile.TemporaryDirectory() as directory:
        for seed in (int(s) for s in args.seeds.split(",")):
            config = VehicleTrainingConfig(seed=seed, epochs=args.epochs)
            private = ModelStore(f"{directory}/seed-{seed}", quiet=True)
            for epoch in range(1, args.epochs + 1):
                model = copy.deepcopy(train_vehicle(config, train, data_key="x", store=private, stop_after_epochs=epoch))
                recalibrate_batchnorm(model, train, batch_size=256)
                result = evaluate_vehicle(model, test)
                rate = feedback_sum_rates(gba.model, result.feedback[snapshots], channels, **rate_args).mean()
                print(json.dumps({"seed": seed, "epoch": epoch, **result.as_dict(), "sum_rate": float(rate)}),
                      flush=True)


if __name__ == "__main__":
    main()
