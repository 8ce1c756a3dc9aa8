"""GBA-RSU stage 3 as seed 002 trains it (Algorithm 1, lines 24-32): the finished stage-1
network is retrained on the vehicles' own snapshots, where half the graphs carry the
feedback the trained GBA-Vehicle predicts from each car's sensors and half the true
feedback; every bit is then flipped with ``p_error`` (0.2) and every vehicle dropped with
``p_drop``, and the loss is still minus the sum rate on the true channels. The network so
learns the vehicles' real mistakes (not only random bit errors).

The snapshots are those of the FLASH-like data set GBA-Vehicle was trained on (the paper's
local data sets ``D_k``): every snapshot is one graph of the K cars seen at the same
instant. The retrained network is cached under a name that includes the stage-1
configuration, the data set and the GBA-Vehicle checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace

import numpy as np
import torch

from v2xsim import build
from v2xsim.config import RadioConfig, RoadConfig
from v2xsim.data.flash_like import FlashLikeConfig, dataset_dir, generate_flash_like, load_flash_like, snapshot_rows
from v2xsim.progress import report, report_every_s, silenced
from v2xsim.store import ModelStore
from v2xsim.threads import TRAINING_TORCH_THREADS, torch_threads
from v2xsim.training.rsu import (CHECKPOINT_FORMAT, PROGRESS_EVERY_S, RSU_PROFILE_STAGE3_STEPS, DropSet,
                                 RSUTrainingConfig, _train_steps, build_model, drops_from_channels)
from v2xsim.training.vehicle import SensorSet, predict

#: stage-3 optimiser steps of the CPU profile (the paper profile: 30 000)
STAGE3_STEPS = RSU_PROFILE_STAGE3_STEPS["cpu"]


def stage3_config(stage1: RSUTrainingConfig, *, source: str, steps: int = STAGE3_STEPS) -> RSUTrainingConfig:
    """The stage-3 configuration that retrains ``stage1``'s network from ``source`` (names
    the data set and GBA-Vehicle checkpoint the predictions come from)."""
    if stage1.stage3_steps or stage1.stage3_feedback != "error_model":
        raise ValueError("stage3_config needs a stage-1 configuration (stage3_steps = 0)")
    if steps < 1:
        raise ValueError(f"stage 3 steps must be >= 1, got {steps}")
    return replace(stage1, stage3_steps=steps, stage3_feedback="vehicle", stage3_source=source)


def stage1_of(config: RSUTrainingConfig) -> RSUTrainingConfig:
    """The stage-1 configuration a stage-3 ``config`` retrains."""
    return replace(config, stage3_steps=0, stage3_feedback="error_model", stage3_source="")


def vehicle_drops(data_config: FlashLikeConfig, vehicle_model: torch.nn.Module, *, store: ModelStore) -> DropSet:
    """Every snapshot of the FLASH-like data set of ``data_config`` as one graph (S, K):
    true channels and feedback, and the feedback ``vehicle_model`` predicts from each
    car's own sensors (those the sample has)."""
    root = dataset_dir(data_config, store.directory)
    generate_flash_like(root, data_config, quiet=store.quiet or silenced())
    episodes = load_flash_like(root)
    trials = np.unique(episodes[min(episodes)]["trial"])
    index, snapshots = snapshot_rows(episodes, trials)
    samples = SensorSet.from_episodes(episodes, index)
    predicted = (predict(vehicle_model, samples) > 0.5).astype(np.float32)[snapshots]
    channels = np.concatenate([episodes[e]["channel"][index[e]] for e in sorted(episodes)])[snapshots]
    site = build.site(RoadConfig(**data_config.road), RadioConfig(**data_config.radio))
    radio = site.radio
    mask = np.ones(snapshots.shape, dtype=bool)
    return drops_from_channels(channels / np.sqrt(radio.noise_power), mask, radio, predicted=predicted)


def retrain_rsu(config: RSUTrainingConfig, base: torch.nn.Module, drops: DropSet | None = None, *,
                drops_factory=None, store: ModelStore | None = None, quiet: bool = False,
                stop_after: int | None = None) -> torch.nn.Module:
    """The stage-3 network of ``config`` (see :func:`stage3_config`) from the store, else
    retrained from ``base`` (the finished stage-1 network) on ``drops`` (which must hold
    GBA-Vehicle's predictions; or ``drops_factory()``, called only when training is needed)
    with AdamW at ``stage3_lr`` (constant, as the paper). Resumable like every training
    (``stop_after`` steps end a session early); returned in eval mode."""
    if config.stage3_feedback != "vehicle" or config.stage3_steps < 1:
        raise ValueError("retrain_rsu needs a stage-3 configuration from stage3_config")
    store = store or ModelStore()
    quiet = quiet or store.quiet or silenced()
    checkpoint = store.checkpoint("rsu", config.key())
    model = build_model(config, int(config.data.radio["num_beams"]))
    finished = checkpoint.finished()
    if finished is not None:
        model.load_state_dict(finished["model"])
        return model.eval()
    drops = drops if drops is not None else drops_factory()
    if drops.predicted is None:
        raise ValueError("stage-3 drops must hold GBA-Vehicle's predicted feedback")
    with torch_threads(TRAINING_TORCH_THREADS):
        model.load_state_dict(base.state_dict())
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.stage3_lr)
        generator = torch.Generator().manual_seed(config.seed + 3)
        step = checkpoint.restore_progress(model=model, optimizer=optimizer, generator=generator).get("step", 0)
        total = config.stage3_steps
        last = total if stop_after is None else min(total, stop_after)
        started, shown = time.perf_counter(), [0.0]

        def save(done: int) -> None:
            checkpoint.save_progress(model=model, optimizer=optimizer, generator=generator, step=done)

        def progress(done: int, rate: float) -> None:
            now = time.perf_counter()
            if not quiet and (now - shown[0] > report_every_s(PROGRESS_EVERY_S) or done == total):
                shown[0] = now
                left = (now - started) / max(done - step, 1) * (total - done)
                report(f"retraining GBA-RSU on GBA-Vehicle's feedback (stage 3): step {done}/{total}, batch sum "
                       f"rate {rate:.2f} bit/s/Hz, about {left:.0f} s left", last=done == total)

        model.train()
        if step < last:
            _train_steps(model, optimizer, None, drops, config, start=step, stop=last, generator=generator,
                         stage=3, save=save, progress=progress)
        if last == total:
            checkpoint.save_final({"model": model.state_dict(), "config": asdict(config), "format": CHECKPOINT_FORMAT})
    return model.eval()
