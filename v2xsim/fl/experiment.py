"""An FL experiment file (``v2xsim fl FILE --out DIR``): the data, the imbalance setting,
the model, the strategy and the rounds.

Imbalance settings (Table II of seed 002, on FLASH-like data, built with the generator's
knobs; every setting is label-imbalanced as FLASH is):

=======================  ===============================================================
``balanced``             every vehicle drives the whole road (no imbalance; a reference)
``label``                each vehicle keeps one lane and its own 5 % stretch of the road
``sensor_type``          ``label`` + whole vehicles lack RGB or LiDAR (kappa_R = kappa_L = 0.8)
``sensor_performance``   ``label`` + RGB and LiDAR missing in random samples (kappa = 0.8)
=======================  ===============================================================

Profiles: ``cpu`` (default) fits a few minutes per strategy on 2 cores; ``paper`` is the
paper's schedule (Section V-B: 200 / 120 / 250 global rounds for the three settings, 5
local epochs, AdamW lr 1e-4, batch 256, and a wider ResNet image branch), hours on 2 cores.
Any ``[training]`` value given explicitly overrides the profile.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from v2xsim.config import PluginOptions, apply_overrides, format_validation_error, read_toml
from v2xsim.errors import ConfigError

SETTINGS: dict[str, dict[str, Any]] = {
    "balanced": {},
    "label": {"segment_fraction": 0.05, "fixed_lanes": True},
    "sensor_type": {"segment_fraction": 0.05, "fixed_lanes": True, "image_completeness": 0.8,
                    "lidar_completeness": 0.8, "missing": "vehicles"},
    "sensor_performance": {"segment_fraction": 0.05, "fixed_lanes": True, "image_completeness": 0.8,
                           "lidar_completeness": 0.8, "missing": "samples"},
}
#: the paper's global rounds per setting (Section V-B)
PAPER_ROUNDS = {"balanced": 200, "label": 200, "sensor_type": 120, "sensor_performance": 250}
PROFILES: dict[str, dict[str, Any]] = {
    "cpu": {"local_epochs": 1, "batch_size": 64, "lr": 1e-3, "image_width": 8},
    "paper": {"local_epochs": 5, "batch_size": 256, "lr": 1e-4, "image_width": 16},
}
CPU_ROUNDS = 20


class StrategySection(BaseModel):
    """``[strategy]``: a registered FL strategy and its options."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = "fedavg"
    options: PluginOptions = Field(default_factory=dict)


class TrainingSection(BaseModel):
    """``[training]``: rounds and local training (None = the profile's value)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    rounds: int | None = Field(None, ge=1)
    local_epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=2)
    lr: float | None = Field(None, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    modality_dropout: float = Field(0.25, ge=0, lt=1)
    evaluate_every: int = Field(1, ge=1)


class FLExperiment(BaseModel):
    """An FL experiment file."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    #: marks an FL experiment file (``v2xsim run`` refuses it, naming ``v2xsim fl``)
    experiment: Literal["fl"] = "fl"
    name: str = "fl"
    description: str = ""
    seed: int = 0
    setting: str = "label"
    profile: str = "cpu"
    road: PluginOptions = Field(default_factory=dict)
    radio: PluginOptions = Field(default_factory=dict)
    data: PluginOptions = Field(default_factory=dict)
    model: PluginOptions = Field(default_factory=dict)
    rsu: PluginOptions = Field(default_factory=dict)
    strategy: StrategySection = Field(default_factory=StrategySection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    da: PluginOptions = Field(default_factory=dict)
    test_fraction: float = Field(0.2, gt=0, lt=1)

    def resolved_training(self) -> dict[str, Any]:
        """Rounds and local-training values after the profile (what really runs)."""
        profile = PROFILES[self.profile]
        rounds = self.training.rounds or (PAPER_ROUNDS[self.setting] if self.profile == "paper" else CPU_ROUNDS)
        out = {"rounds": rounds}
        for name in ("local_epochs", "batch_size", "lr"):
            value = getattr(self.training, name)
            out[name] = profile[name] if value is None else value
        out.update(weight_decay=self.training.weight_decay, modality_dropout=self.training.modality_dropout,
                   evaluate_every=self.training.evaluate_every)
        return out


def load_experiment(path: str | Path, overrides: list[str] | None = None) -> FLExperiment:
    """Read and validate an FL experiment file (``--set`` overrides applied)."""
    path = Path(path)
    data = read_toml(path, what="the FL experiment")
    if data.get("experiment") == "fl_road":
        raise ConfigError(f"{path}: a corridor FL file (experiment = 'fl_road'): run it with "
                          f"'v2xsim corridor {path} --out DIR'")
    return experiment_from_dict(apply_overrides(data, overrides or []), path)


def experiment_from_dict(data: dict[str, Any], path: str | Path = "<experiment>") -> FLExperiment:
    """Validate parsed TOML (refuses unknown keys, settings, profiles, strategies and
    options of the data generator, the model, DA and the strategy, naming them)."""
    from v2xsim.config import RadioConfig, RoadConfig
    from v2xsim.data.flash_like import FlashLikeConfig
    from v2xsim.fl.client import DAOptions
    from v2xsim.registry import FL_STRATEGY

    try:
        experiment = FLExperiment.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{path}: {format_validation_error(error)}") from None
    if experiment.setting not in SETTINGS:
        raise ConfigError(f"{path}: setting: unknown {experiment.setting!r}; valid: {', '.join(SETTINGS)}")
    if experiment.profile not in PROFILES:
        raise ConfigError(f"{path}: profile: unknown {experiment.profile!r}; valid: {', '.join(PROFILES)}")
    for key, table, section in (("road", experiment.road, RoadConfig), ("radio", experiment.radio, RadioConfig)):
        try:
            section.model_validate(table)
        except ValidationError as error:
            raise ConfigError(f"{path}: {key}.{format_validation_error(error)}") from None
    _check_names(path, "data", experiment.data, [f.name for f in fields(FlashLikeConfig)
                                                 if f.name not in ("road", "radio", "seed")])
    _check_names(path, "model", experiment.model, list(MODEL_OPTIONS))
    _check_names(path, "da", experiment.da, [f.name for f in fields(DAOptions)])
    try:
        FL_STRATEGY.get(experiment.strategy.name)  # an unknown name lists the valid ones
    except ConfigError as error:
        raise ConfigError(f"{path}: strategy.name: {error}") from None
    return experiment


#: GBA-Vehicle options an experiment may set (see VehicleTrainingConfig)
MODEL_OPTIONS = ("features", "hidden", "fusion", "image_width", "modalities")


def _check_names(path: str | Path, section: str, table: dict[str, Any], valid: list[str]) -> None:
    for key in table:
        if key not in valid:
            raise ConfigError(f"{path}: {section}.{key}: unknown option; valid: {', '.join(valid)}")
