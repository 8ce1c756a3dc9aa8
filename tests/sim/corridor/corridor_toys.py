"""Small corridor scenarios and a learner with fixed payloads, so that timelines can be
computed by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from v2xsim.fl.base import ClientInfo, ClientUpdate
from v2xsim.sim.corridor.config import corridor_from_dict
from v2xsim.sim.corridor.learning import RoadData

#: Table I back channel [bit/s] and the defaults of [backhaul] and [fl]
BACKCHANNEL_BPS = 442 / 247 * 1e9
BACKHAUL_BPS = 10e9
BACKHAUL_LATENCY_S = 2e-3
DOWNLINK_BPS = 2.31e9
#: half the covered stretch of the default road (h = 10 m, 120 deg) [m]
HALF_COVERAGE_M = 10.0 * np.tan(np.radians(60.0))


def merged(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def toy(**sections: Any):
    """One RSU at x = 100 m on a 1 km straight road, two cars, a genie aligner without
    feedback (evaluated once), devices of exactly 100 GFLOP/s, no held-out evaluation."""
    data = {
        "duration_s": 5.0,
        "corridor": {"length_m": 1000.0, "loop": False},
        "rsus": [{"x_m": 100.0}],
        "traffic": {"vehicles": 2, "speed_kmh": 3.6, "positions_m": [90.0, 95.0]},
        "alignment": {"scheme": "oracle", "mode": "sampled", "sample_every": 100000, "compute_ms": 0.5},
        "devices": {"classes": [{"name": "exact", "gflops": 100.0, "share": 1.0}], "spread": 0.0},
        "fl": {"rounds": 1, "deadline_s": 5.0, "min_samples": 2},
        "evaluation": {"enabled": False},
    }
    for key, value in sections.items():
        data[key] = merged(data[key], value) if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    return corridor_from_dict(data)


class FixedLearner:
    """Every car has ``samples`` samples, downloads ``bytes_down`` and uploads ``bytes_up``
    bytes, and one sample costs ``flops`` FLOPs; a fit adds (car + 1) to the weights."""

    def __init__(self, available: np.ndarray, *, samples: int = 100, bytes_down: int = 1_000_000,
                 bytes_up: int = 1_000_000, flops: float = 1e9) -> None:
        self.samples, self.down, self.up, self.flops = samples, bytes_down, bytes_up, flops
        self.global_state = {"w": torch.zeros(4)}
        self.data = {car: RoadData(num_beams=34, max_samples=4, available=available[car])
                     for car in range(len(available))}
        self.fits: list[int] = []

    def modalities(self, car: int) -> tuple[str, ...]:
        return ("gps",)

    def num_samples(self, car: int) -> int:
        return self.samples

    def info(self, car: int) -> ClientInfo:
        return ClientInfo(client=car, modalities=("gps",), num_samples=self.samples)

    def bytes_down(self, car: int, config, state) -> int:
        return self.down

    def bytes_up(self, car: int, config) -> int:
        return self.up

    def model_bytes(self) -> int:
        return self.down

    def flops_per_sample(self, car: int) -> float:
        return self.flops

    def fit(self, car: int, base_state, config) -> ClientUpdate:
        self.fits.append(car)
        return ClientUpdate(client=car, state={"w": base_state["w"] + (car + 1)}, num_samples=self.samples)

    def evaluate(self) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {"global": self.global_state, "clients": {}}

    def load_state_dict(self, state) -> None:
        self.global_state = dict(state["global"])


def fixed(**options: Any):
    """A learner factory for :func:`v2xsim.sim.corridor.run.build_engine`."""
    return lambda available: FixedLearner(available, **options)


def events_of(engine, *names: str) -> list[dict]:
    return [e for e in engine.events if e["event"] in names]
