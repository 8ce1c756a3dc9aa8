"""How long a car computes its local training: a device model.

``compute time = FLOPs per training sample x samples x epochs / device FLOP/s``: the FLOPs
of one sample's forward and backward pass are counted on the real network by PyTorch's
``FlopCounterMode`` (for the sensors the car has); each car's device belongs to a class
(drawn by the classes' shares from the scenario seed) and runs at the class's effective
throughput times a log-normal spread ``exp(N(0, spread^2))`` (thermal state, load,
software). The class throughputs are assumptions: effective training throughput of
embedded GPUs is far below their peak. A class may instead give its measured training
time per sample (``sample_ms``), which then holds for every car of the class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch


@dataclass(frozen=True, kw_only=True)
class DeviceClass:
    """A class of on-board computers, by throughput or by measurement.

    Attributes:
        name: label in logs. share: relative share of the fleet.
        gflops: effective training throughput [GFLOP/s] (the compute time then follows the
            FLOPs of each car's network), or
        sample_ms: measured training time of one sample (one pass, forward and backward)
            of the model on this device [ms]; it holds for every car of the class,
            whatever sensors it has.
    """

    name: str
    share: float
    gflops: float | None = None
    sample_ms: float | None = None

    def __post_init__(self) -> None:
        if (self.gflops is None) == (self.sample_ms is None):
            raise ValueError(f"device class {self.name!r}: give exactly one of gflops and sample_ms")
        for label, value in (("gflops", self.gflops), ("sample_ms", self.sample_ms)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"device class {self.name!r}: {label} must be a positive number, got {value}")


#: default fleet: assumed effective training throughputs (not vendor peaks)
DEFAULT_CLASSES: tuple[DeviceClass, ...] = (
    DeviceClass(name="low", gflops=20.0, share=0.3),
    DeviceClass(name="mid", gflops=100.0, share=0.5),
    DeviceClass(name="high", gflops=500.0, share=0.2),
)


@dataclass(frozen=True, kw_only=True)
class Device:
    """One car's computer: its class and its throughput [FLOP/s], or its measured time
    per training sample [s]."""

    name: str
    flops_per_s: float | None = None
    seconds_per_sample: float | None = None

    def training_time_s(self, *, flops_per_sample: float, samples: int, epochs: int) -> float:
        """Local training time [s] of ``samples`` x ``epochs`` passes."""
        if self.seconds_per_sample is not None:
            return self.seconds_per_sample * samples * epochs
        return flops_per_sample * samples * epochs / self.flops_per_s


def draw_devices(count: int, classes: Sequence[DeviceClass], *, spread: float,
                 rng: np.random.Generator) -> list[Device]:
    """``count`` devices: a class by share, then the log-normal spread (in that order)."""
    shares = np.array([c.share for c in classes], dtype=float)
    picks = rng.choice(len(classes), size=count, p=shares / shares.sum())
    factors = np.exp(rng.normal(0.0, spread, size=count)) if spread > 0 else np.ones(count)
    devices = []
    for pick, factor in zip(picks, factors):
        chosen = classes[int(pick)]
        if chosen.sample_ms is not None:  # a faster device (factor > 1) takes less time
            devices.append(Device(name=chosen.name, seconds_per_sample=chosen.sample_ms * 1e-3 / float(factor)))
        else:
            devices.append(Device(name=chosen.name, flops_per_s=chosen.gflops * 1e9 * float(factor)))
    return devices


def training_flops_per_sample(model: torch.nn.Module, inputs: dict[str, torch.Tensor], *,
                              available: torch.Tensor | None = None) -> float:
    """FLOPs of one training sample (forward + backward of the mean output) of ``model``
    on ``inputs`` (a batch of B >= 2 samples, BatchNorm needs two; the count is divided by
    B), counted by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.train()
    counter = FlopCounterMode(display=False)
    try:
        with counter:
            out = model(inputs, available=available)
            out.float().mean().backward()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    batch = len(next(iter(inputs.values())))
    flops = float(counter.get_total_flops()) / batch
    if not math.isfinite(flops) or flops <= 0:
        raise RuntimeError("the FLOP counter saw no operations of the vehicle model")
    return flops


__all__ = ["DEFAULT_CLASSES", "Device", "DeviceClass", "draw_devices", "training_flops_per_sample"]
