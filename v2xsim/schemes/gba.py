"""Scheme ``gba``: on-vehicle W-bit feedback and the GBA-RSU graph network.

Vehicle side (:meth:`GBA.vehicle_feedback`), by ``feedback`` mode:

- ``predicted`` (default): every car senses the road with the sensors it has and runs
  GBA-Vehicle on its own readings; the RSU receives only the predicted bits.
- ``ground_truth``: a perfect predictor, the true binary feedback.
- ``error_model``: the true feedback with each bit flipped with probability ``bit_error``.

RSU side (:meth:`GBA.allocate`): GBA-RSU turns the feedback graph into beams and powers.
Both networks come from the model store (:class:`v2xsim.store.ModelStore`), trained for
the scenario's road, radio and blockers on first use (``v2xsim train`` does it ahead).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from v2xsim import checks as check
from v2xsim.errors import ConfigError
from v2xsim.formats import MODALITIES
from v2xsim.registry import SCHEME
from v2xsim.schemes.base import Allocation, Observation, Scheme, VehicleInputs
from v2xsim.sensing import SensorConfig

if TYPE_CHECKING:  # pragma: no cover - types only
    from v2xsim.build import SchemeContext

FEEDBACK_MODES = ("predicted", "ground_truth", "error_model")


def _load_weights(model, path: str, option: str):
    """``model`` with the weights of checkpoint file ``path`` (named by ``option`` in errors)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
    except OSError as error:
        raise ConfigError(f"gba {option} {path}: {error.strerror or error}") from None
    except (KeyError, RuntimeError, EOFError, ValueError) as error:
        raise ConfigError(f"gba {option} {path}: not a matching checkpoint ({str(error).splitlines()[0]})") from None
    return model.eval()


@SCHEME.register("gba")
class GBA(Scheme):
    """GBA: GBA-Vehicle feedback prediction + a trained GBA-RSU.

    Args:
        feedback: "predicted" (GBA-Vehicle on the cars' sensors), "ground_truth" (perfect
            prediction) or "error_model" (true bits, each flipped with ``bit_error``).
        bit_error: bit-flip probability of the error model.
        training: overrides of :class:`v2xsim.training.rsu.RSUTrainingConfig` fields
            (its ``data`` section follows the scenario's road, radio and blockers), and
            ``profile``: "cpu" (default) or "paper" (:data:`~v2xsim.training.rsu.RSU_PROFILES`).
        checkpoint: a trained GBA-RSU checkpoint file to use instead of training.
        sensors: sensors every car has (subset of gps, image, lidar; GPS is needed).
        sensor_loss: probability that a car's RGB or LiDAR reading is missing at an
            alignment (each independently; the pruned network runs without it).
        deployment: "pruning" (paper), "sensor" (zero features) or "model" (zero inputs).
        vehicle_training: overrides of :class:`v2xsim.training.vehicle.VehicleTrainingConfig`.
        data: overrides of :class:`v2xsim.data.flash_like.FlashLikeConfig` (road, radio and
            blockers follow the scenario).
        vehicle_checkpoint: a trained GBA-Vehicle checkpoint file instead of training.
        stage3_steps: with predicted feedback, GBA-RSU is retrained after GBA-Vehicle
            (seed 002 stage 3, :mod:`v2xsim.training.stage3`) for this many steps on the
            vehicles' own snapshots with GBA-Vehicle's predicted feedback (default 1000;
            30 000 with ``training = {profile = "paper"}``); 0 = stage 1 only (also used
            whenever ``checkpoint`` gives GBA-RSU).
    """

    name = "gba"
    acquisition = "sensing"

    def __init__(self, *, feedback: str = "predicted", bit_error: float = 0.05,
                 training: dict[str, Any] | None = None, checkpoint: str | None = None,
                 sensors: list[str] | tuple[str, ...] = MODALITIES, sensor_loss: float = 0.0,
                 deployment: str = "pruning", vehicle_training: dict[str, Any] | None = None,
                 data: dict[str, Any] | None = None, vehicle_checkpoint: str | None = None,
                 stage3_steps: int | None = None) -> None:
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
        from v2xsim.models.gba_vehicle import DEPLOYMENTS

        if deployment not in DEPLOYMENTS:
            raise ValueError(f"deployment must be one of {', '.join(DEPLOYMENTS)}, got {deployment!r}")
        self.deployment = deployment
        self.vehicle_training = dict(vehicle_training or {})
        self.data = dict(data or {})
        self.vehicle_checkpoint = vehicle_checkpoint
        from v2xsim.training.rsu import RSU_PROFILE_STAGE3_STEPS, rsu_training_options

        try:
            rsu_training_options(self.training)
        except ValueError as error:
            raise ConfigError(f"gba training options: {error}") from None
        profile = self.training.get("profile", "cpu")
        self.stage3_steps = RSU_PROFILE_STAGE3_STEPS[profile] if stage3_steps is None else \
            check.non_negative_int("stage3_steps", stage3_steps)
        # declared capabilities (read by the engine)
        self.uses_sensors = feedback == "predicted"
        self.knows_true_feedback = not self.uses_sensors
        data_config, _ = self.vehicle_configs()  # validates the data / vehicle_training options now
        # the cars' sensors are those of the training data (GPS noise, LiDAR dropout)
        self.sensor_config = SensorConfig(gps_noise_m=data_config.gps_noise_m, lidar_dropout=data_config.lidar_dropout)
        self.model = None
        self.vehicle_model = None
        #: wall time of GBA-Vehicle per car at each alignment [s]
        self.vehicle_inference_s: list[float] = []

    # ------------------------------------------------------------ configurations
    def training_config(self, context: "SchemeContext | None" = None):
        """The GBA-RSU training configuration for the road and radio of ``context``."""
        from v2xsim.training.rsu import DataConfig, RSUTrainingConfig, rsu_training_options

        options = rsu_training_options(self.training)
        if context is not None and context.training_seed is not None:
            options["seed"] = context.training_seed
        data = dict(options.pop("data", {}))
        if context is not None:
            data.setdefault("road", context.road.model_dump())
            data.setdefault("radio", context.radio.model_dump())
            data.setdefault("blockers", context.blockers.model_dump())
        if "num_vehicles" in data:
            data["num_vehicles"] = tuple(data["num_vehicles"])
        try:
            return RSUTrainingConfig(data=DataConfig(**data), **options)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"gba training options: {error}") from None

    def vehicle_configs(self, context: "SchemeContext | None" = None):
        """(FlashLikeConfig, VehicleTrainingConfig) of this scheme for ``context``."""
        from v2xsim.data.flash_like import FlashLikeConfig
        from v2xsim.training.vehicle import VehicleTrainingConfig

        data = dict(self.data)
        if context is not None:
            data.setdefault("road", context.road.model_dump())
            data.setdefault("radio", context.radio.model_dump())
            data.setdefault("blockers", context.blockers.model_dump())
        try:
            vehicle_training = dict(self.vehicle_training)
            if context is not None and context.training_seed is not None:
                vehicle_training["seed"] = context.training_seed
            return FlashLikeConfig(**data), VehicleTrainingConfig(**vehicle_training)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"gba data / vehicle_training options: {error}") from None

    def training_jobs(self, context: "SchemeContext") -> list:
        """GBA-RSU's training (with its drops), and when predicting GBA-Vehicle's (with the
        generation of its FLASH-like data set): independent, so they can run side by side."""
        from v2xsim.training.jobs import job
        from v2xsim.training.rsu import rsu_checkpoint, train_rsu

        store = context.store
        jobs = []
        if self.checkpoint is None:
            config = self.training_config(context)
            checkpoint = rsu_checkpoint(config, store)
            if not checkpoint.final.exists():
                jobs.append(job("GBA-RSU", str(checkpoint.final), train_rsu, config, store=store))
        if self.feedback_mode == "predicted" and self.vehicle_checkpoint is None:
            from v2xsim.training.vehicle import trained_vehicle_model, vehicle_checkpoint

            data_config, vehicle_config = self.vehicle_configs(context)
            checkpoint = vehicle_checkpoint(data_config, vehicle_config, store)
            if not checkpoint.final.exists():
                jobs.append(job("GBA-Vehicle", str(checkpoint.final), trained_vehicle_model, data_config,
                                vehicle_config, store=store))
        return jobs

    def prepare(self, context: "SchemeContext") -> None:
        """Load GBA-RSU (and, when predicting, GBA-Vehicle) from the store or the given
        checkpoint files; the store trains them on first use."""
        from v2xsim.training.rsu import build_model, train_rsu

        config = self.training_config(context)
        if self.checkpoint is not None:
            self.model = _load_weights(build_model(config, context.radio.num_beams), self.checkpoint, "checkpoint")
            context.store.record(f"gba checkpoint {self.checkpoint}", self.checkpoint)
        else:
            self.model = train_rsu(config, store=context.store)
        if self.feedback_mode == "predicted":
            from v2xsim.training.vehicle import build_vehicle_model, trained_vehicle_model

            data_config, vehicle_config = self.vehicle_configs(context)
            if self.vehicle_checkpoint is not None:
                self.vehicle_model = _load_weights(build_vehicle_model(vehicle_config, context.radio.num_beams),
                                                   self.vehicle_checkpoint, "vehicle_checkpoint")
                context.store.record(f"gba vehicle_checkpoint {self.vehicle_checkpoint}", self.vehicle_checkpoint)
            else:
                self.vehicle_model = trained_vehicle_model(data_config, vehicle_config, store=context.store)
            if self.stage3_steps and self.checkpoint is None:
                self.model = self._retrained_rsu(context, config, data_config, vehicle_config)

    def _retrained_rsu(self, context: "SchemeContext", stage1, data_config, vehicle_config):
        """GBA-RSU after stage 3 on GBA-Vehicle's predictions (trained on first use)."""
        from v2xsim.data.flash_like import dataset_dir
        from v2xsim.store import file_digest
        from v2xsim.training.stage3 import retrain_rsu, stage3_config, vehicle_drops
        from v2xsim.training.vehicle import vehicle_checkpoint

        if self.vehicle_checkpoint is not None:
            vehicle = f"file-{file_digest(Path(self.vehicle_checkpoint))[:16]}"
        else:
            vehicle = vehicle_checkpoint(data_config, vehicle_config, context.store).final.stem
        vehicle = f"{dataset_dir(data_config, context.store.directory).name}/{vehicle}"
        config = stage3_config(stage1, source=vehicle, steps=self.stage3_steps)
        return retrain_rsu(config, self.model, store=context.store,
                           drops_factory=lambda: vehicle_drops(data_config, self.vehicle_model, store=context.store))

    # ------------------------------------------------------------ vehicle side
    def feedback_bits(self, num_beams: int) -> int:
        return num_beams

    def predict_feedback(self, sensors: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
        """Every car's GBA-Vehicle feedback (K, W) from its own sensor readings."""
        import torch

        model = self.vehicle_model
        if model is None:
            raise RuntimeError("scheme 'gba' was not prepared: call prepare(context) first")
        count = len(sensors["gps"])
        have = np.array([m in self.sensors for m in model.modalities])
        available = np.tile(have, (count, 1))
        if self.sensor_loss > 0:
            for column, m in enumerate(model.modalities):
                if m != "gps":
                    available[:, column] &= rng.random(count) >= self.sensor_loss
        inputs = {m: torch.from_numpy(np.ascontiguousarray(sensors[m])) for m in model.modalities if m in self.sensors}
        started = time.perf_counter()
        with torch.inference_mode():
            logits = model(inputs, available=torch.from_numpy(available), deployment=self.deployment)
        self.vehicle_inference_s.append((time.perf_counter() - started) / max(count, 1))
        return (logits > 0).numpy().astype(np.float32)

    def vehicle_feedback(self, inputs: VehicleInputs) -> np.ndarray:
        """The bits each car sends: predicted from its sensors, or its true feedback
        (optionally through the bit-error model)."""
        if self.feedback_mode == "predicted":
            if inputs.sensors is None:
                raise RuntimeError("feedback 'predicted' needs the cars' sensor readings")
            return self.predict_feedback(inputs.sensors, inputs.rng)
        feedback = super().vehicle_feedback(inputs)
        if self.feedback_mode == "error_model" and self.bit_error > 0:
            flips = inputs.rng.random(feedback.shape) < self.bit_error
            feedback = np.where(flips, 1.0 - feedback, feedback).astype(np.float32)
        return feedback

    # ------------------------------------------------------------ RSU side
    def allocate(self, observation: Observation) -> Allocation:
        import torch

        if observation.feedback is None:
            raise ValueError("observation.feedback is required by this scheme")
        if self.model is None:
            raise RuntimeError("scheme 'gba' was not prepared: call prepare(context) first")
        feedback = np.asarray(observation.feedback, dtype=np.float32)
        if len(feedback) == 0:
            return Allocation.empty()
        with torch.inference_mode():
            rows = self.model(torch.from_numpy(feedback)[None], observation.p_max)[0].numpy()
        return Allocation.from_rows(rows)
