"""Scheme ``gba``: on-vehicle feedback (W bits) and the GBA-RSU graph network.

Feedback modes: ``predicted`` (default) — every car senses the world with the sensors it
has, runs GBA-Vehicle and sends the predicted W bits; ``ground_truth`` — a perfect
predictor (the true binary feedback); ``error_model`` — the true feedback with random bit
flips. In ``predicted`` mode the first run generates FLASH-like data for the scenario's
road and radio and trains GBA-Vehicle on it (both cached).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from v2xsim import _validate as check
from v2xsim.agents.base import Allocation, Observation, Scheme
from v2xsim.registry import SCHEME
from v2xsim.timing import TimingModel

FEEDBACK_MODES = ("predicted", "ground_truth", "error_model")


def allocation_from_rows(rows: np.ndarray) -> Allocation:
    """Allocation from a network output (K, W) with at most one non-zero per row."""
    rows = np.asarray(rows, dtype=float)
    power = (rows ** 2).sum(axis=1)
    beams = np.where(power > 0, np.argmax(np.abs(rows), axis=1), -1)
    return Allocation(beams, power)


def _load_weights(model, path: str, option: str):
    """``model`` with the weights of checkpoint file ``path`` (named by ``option`` in errors)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
    except OSError as error:
        raise ValueError(f"gba {option} {path}: {error.strerror or error}") from None
    except (KeyError, RuntimeError, EOFError, ValueError) as error:
        raise ValueError(f"gba {option} {path}: not a matching checkpoint ({str(error).splitlines()[0]})") from None
    return model.eval()


@SCHEME.register("gba")
class GBA(Scheme):
    """GBA: GBA-Vehicle feedback prediction + a trained GBA-RSU (both cached by config).

    Args:
        feedback: "predicted" (GBA-Vehicle on the cars' sensors), "ground_truth" (perfect
            prediction) or "error_model" (true bits, each flipped with ``bit_error``).
        bit_error: bit-flip probability of the error model.
        training: overrides of :class:`v2xsim.agents.train_rsu.RSUTrainingConfig` fields
            (the data section follows the scenario's road, radio and blockers).
        checkpoint: a trained GBA-RSU checkpoint file to use instead of training.
        sensors: sensors every car has (subset of gps, image, lidar; GPS is needed).
        sensor_loss: probability that a car's RGB or LiDAR reading is missing at an
            alignment (each independently; the pruned network runs without it).
        deployment: "pruning" (paper), "sensor" (zero features) or "model" (zero inputs).
        vehicle_training: overrides of :class:`v2xsim.agents.train_vehicle.VehicleTrainingConfig`.
        data: overrides of :class:`v2xsim.data.flash_like.FlashLikeConfig` (road and radio
            follow the scenario).
        vehicle_checkpoint: a trained GBA-Vehicle checkpoint file instead of training.
    """

    name = "gba"
    acquisition = "sensing"

    def __init__(self, *, feedback: str = "predicted", bit_error: float = 0.05,
                 training: dict[str, Any] | None = None, checkpoint: str | None = None,
                 sensors: list[str] | tuple[str, ...] = ("gps", "image", "lidar"), sensor_loss: float = 0.0,
                 deployment: str = "pruning", vehicle_training: dict[str, Any] | None = None,
                 data: dict[str, Any] | None = None, vehicle_checkpoint: str | None = None) -> None:
        from v2xsim.agents.gba_vehicle import DEPLOYMENTS, MODALITIES

        if feedback not in FEEDBACK_MODES:
            raise ValueError(f"feedback must be one of {', '.join(FEEDBACK_MODES)}, got {feedback!r}")
        self.feedback_mode = feedback
        self.bit_error = check.non_negative("bit_error", bit_error)
        if self.bit_error >= 1:
            raise ValueError(f"bit_error must be < 1, got {bit_error}")
        self.training = dict(training or {})
        self.checkpoint = checkpoint
        self.sensors = tuple(sensors)
        if not self.sensors or any(s not in MODALITIES for s in self.sensors) or "gps" not in self.sensors:
            raise ValueError(f"sensors must be a subset of {', '.join(MODALITIES)} that includes gps, got {list(sensors)}")
        self.sensor_loss = check.non_negative("sensor_loss", sensor_loss)
        if self.sensor_loss > 1:
            raise ValueError(f"sensor_loss must be <= 1, got {sensor_loss}")
        if deployment not in DEPLOYMENTS:
            raise ValueError(f"deployment must be one of {', '.join(DEPLOYMENTS)}, got {deployment!r}")
        self.deployment = deployment
        self.vehicle_training = dict(vehicle_training or {})
        self.data = dict(data or {})
        self.vehicle_checkpoint = vehicle_checkpoint
        self.uses_sensors = feedback == "predicted"
        self.model = None
        self.vehicle_model = None
        self.vehicle_inference_s: list[float] = []

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

    def vehicle_configs(self, scenario: Any = None):
        """(FlashLikeConfig, VehicleTrainingConfig) of this scheme for ``scenario``."""
        from v2xsim.agents.train_vehicle import VehicleTrainingConfig
        from v2xsim.data.flash_like import FlashLikeConfig

        data = dict(self.data)
        if scenario is not None:
            data.setdefault("road", scenario.road.model_dump())
            data.setdefault("radio", scenario.radio.model_dump())
        try:
            return FlashLikeConfig(**data), VehicleTrainingConfig(**self.vehicle_training)
        except TypeError as error:
            raise ValueError(f"gba data / vehicle_training options: {error}") from None

    def prepare(self, scenario: Any) -> None:
        from v2xsim.agents.train_rsu import build_model, train_rsu

        config = self.training_config(scenario)
        if self.checkpoint is not None:
            self.model = _load_weights(build_model(config, scenario.radio.num_beams), self.checkpoint, "checkpoint")
        else:
            self.model = train_rsu(config)
        if self.feedback_mode == "predicted":
            self.vehicle_model = self._prepare_vehicle(scenario)

    def _prepare_vehicle(self, scenario: Any):
        from v2xsim.agents.train_rsu import cache_dir
        from v2xsim.agents.train_vehicle import SensorSet, build_vehicle_model, train_vehicle
        from v2xsim.data.flash_like import dataset_dir, generate_flash_like, load_flash_like

        data_config, vehicle_config = self.vehicle_configs(scenario)
        if self.vehicle_checkpoint is not None:
            return _load_weights(build_vehicle_model(vehicle_config, scenario.radio.num_beams),
                                 self.vehicle_checkpoint, "vehicle_checkpoint")
        root = dataset_dir(data_config, cache_dir())

        def samples() -> SensorSet:
            generate_flash_like(root, data_config)
            return SensorSet.from_episodes(load_flash_like(root))

        # the data set's folder name hashes its configuration: it names the checkpoint too
        return train_vehicle(vehicle_config, samples, data_key=root.name)

    @functools.cached_property
    def sensor_config(self):
        """The cars' sensors as in the training data (GPS noise, LiDAR dropout); built once."""
        from v2xsim.sensing import SensorConfig

        data_config, _ = self.vehicle_configs()
        return SensorConfig(gps_noise_m=data_config.gps_noise_m, lidar_dropout=data_config.lidar_dropout)

    def predict_feedback(self, sensors: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
        """Every car's GBA-Vehicle feedback (K, W) from its sensor readings."""
        import time

        import torch

        from v2xsim.agents.gba_vehicle import MODALITIES

        model = self.vehicle_model
        count = len(sensors["gps"])
        have = np.array([m in self.sensors for m in model.modalities])
        available = np.tile(have, (count, 1))
        if self.sensor_loss > 0:
            for column, m in enumerate(model.modalities):
                if m != "gps":
                    available[:, column] &= rng.random(count) >= self.sensor_loss
        inputs = {m: torch.from_numpy(np.ascontiguousarray(sensors[m])) for m in model.modalities
                  if m in self.sensors and m in MODALITIES}
        started = time.perf_counter()
        with torch.inference_mode():
            logits = model(inputs, available=torch.from_numpy(available), deployment=self.deployment)
        self.vehicle_inference_s.append((time.perf_counter() - started) / max(count, 1))
        return (logits > 0).numpy().astype(np.float32)

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
        if self.feedback_mode == "predicted":
            if observation.sensors is None or self.vehicle_model is None:
                raise ValueError("feedback 'predicted' needs the cars' sensor readings (observation.sensors) "
                                 "and a prepared GBA-Vehicle")
            feedback = self.predict_feedback(observation.sensors, observation.rng)
        if self.feedback_mode == "error_model" and self.bit_error > 0:
            flips = observation.rng.random(feedback.shape) < self.bit_error
            feedback = np.where(flips, 1.0 - feedback, feedback).astype(np.float32)
        with torch.inference_mode():
            rows = self.model(torch.from_numpy(feedback)[None], observation.p_max)[0].numpy()
        return allocation_from_rows(rows)
