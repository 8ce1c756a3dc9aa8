"""Scheme ``gba``: on-vehicle feedback (W bits) and the GBA-RSU graph network.

Until GBA-Vehicle exists, the vehicles' predicted feedback is the true binary feedback at
the end of the sensing time, optionally passed through a bit-error model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from v2xsim import _validate as check
from v2xsim.agents.base import Allocation, Observation, Scheme
from v2xsim.registry import SCHEME
from v2xsim.timing import TimingModel

FEEDBACK_MODES = ("ground_truth", "error_model")


def allocation_from_rows(rows: np.ndarray) -> Allocation:
    """Allocation from a network output (K, W) with at most one non-zero per row."""
    rows = np.asarray(rows, dtype=float)
    power = (rows ** 2).sum(axis=1)
    beams = np.where(power > 0, np.argmax(np.abs(rows), axis=1), -1)
    return Allocation(beams, power)


@SCHEME.register("gba")
class GBA(Scheme):
    """GBA with a trained GBA-RSU (cached by training configuration).

    Args:
        feedback: "ground_truth" (perfect on-vehicle prediction) or "error_model" (each bit
            flipped with ``bit_error``).
        bit_error: bit-flip probability of the error model.
        training: overrides of :class:`v2xsim.agents.train_rsu.RSUTrainingConfig` fields
            (the data section follows the scenario's road, radio and blockers).
        checkpoint: a trained GBA-RSU checkpoint file to use instead of training.
    """

    name = "gba"
    acquisition = "sensing"

    def __init__(self, *, feedback: str = "ground_truth", bit_error: float = 0.05,
                 training: dict[str, Any] | None = None, checkpoint: str | None = None) -> None:
        if feedback not in FEEDBACK_MODES:
            raise ValueError(f"feedback must be one of {', '.join(FEEDBACK_MODES)}, got {feedback!r}")
        self.feedback_mode = feedback
        self.bit_error = check.non_negative("bit_error", bit_error)
        if self.bit_error >= 1:
            raise ValueError(f"bit_error must be < 1, got {bit_error}")
        self.training = dict(training or {})
        self.checkpoint = checkpoint
        self.model = None

    def training_config(self, scenario: Any = None):
        from v2xsim.agents.train_rsu import DataConfig, RSUTrainingConfig

        options = dict(self.training)
        data = dict(options.pop("data", {}))
        if scenario is not None:
            data.setdefault("road", scenario.road.model_dump())
            data.setdefault("radio", scenario.radio.model_dump())
            data.setdefault("blockers", scenario.blockers.model_dump())
        if "num_vehicles" in data:
            data["num_vehicles"] = tuple(data["num_vehicles"])
        try:
            return RSUTrainingConfig(data=DataConfig(**data), **options)
        except TypeError as error:
            raise ValueError(f"gba training options: {error}") from None

    def prepare(self, scenario: Any) -> None:
        import torch

        from v2xsim.agents.train_rsu import build_model, train_rsu

        config = self.training_config(scenario)
        if self.checkpoint is not None:
            model = build_model(config, scenario.radio.num_beams)
            try:
                state = torch.load(self.checkpoint, map_location="cpu", weights_only=False)
            except OSError as error:
                raise ValueError(f"gba checkpoint {self.checkpoint}: {error.strerror or error}") from None
            model.load_state_dict(state["model"])
            self.model = model.eval()
        else:
            self.model = train_rsu(config)

    def feedback_bits(self, num_beams: int, timing: TimingModel) -> int:
        return num_beams

    def allocate(self, observation: Observation) -> Allocation:
        import torch

        if observation.feedback is None:
            raise ValueError("observation.feedback is required by this scheme")
        if self.model is None:
            raise RuntimeError("scheme 'gba' was not prepared: call prepare(scenario) first")
        feedback = np.asarray(observation.feedback, dtype=np.float32)
        if len(feedback) == 0:
            return Allocation.empty()
        if self.feedback_mode == "error_model" and self.bit_error > 0:
            flips = observation.rng.random(feedback.shape) < self.bit_error
            feedback = np.where(flips, 1.0 - feedback, feedback).astype(np.float32)
        with torch.inference_mode():
            rows = self.model(torch.from_numpy(feedback)[None], observation.p_max)[0].numpy()
        return allocation_from_rows(rows)
