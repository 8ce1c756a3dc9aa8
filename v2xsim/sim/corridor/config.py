"""A corridor FL scenario file (``v2xsim corridor FILE --out DIR``): RSUs along a road,
a fleet of cars, the beam-alignment loop of every RSU, and federated rounds of
GBA-Vehicle in the same simulated time (docs/fl-corridor.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from v2xsim.config import (ChannelConfig, PluginOptions, RadioConfig, RealignmentConfig, RoadConfig, Section,
                           TimingConfig, apply_overrides, format_validation_error, read_toml)
from v2xsim.errors import ConfigError
from v2xsim.fl.experiment import StrategySection


class RSUSection(Section):
    """``[[rsus]]``: one RSU; its pole at ``x_m`` along the road, covering the road's
    coverage stretch of ``[road]`` around it."""

    x_m: float
    name: str | None = None


class CorridorSection(Section):
    """``[corridor]``: the road's length and whether cars loop back to its start."""

    length_m: float = Field(600.0, gt=0)
    loop: bool = True


class BackhaulSection(Section):
    """``[backhaul]``: RSU <-> edge aggregator links (one per RSU)."""

    latency_ms: float = Field(2.0, ge=0)
    rate_gbps: float = Field(10.0, gt=0)


class TrafficSection(Section):
    """``[traffic]``: the fleet (constant speed, one lane each, dealt to lanes in turn)."""

    vehicles: int = Field(30, ge=1)
    speed_kmh: float = Field(60.0, gt=0)
    min_gap_m: float = Field(10.0, gt=0)
    #: explicit start positions along the road [m] (one per car, lanes dealt in turn);
    #: None: random, at least ``min_gap_m`` apart
    positions_m: list[float] | None = None
    #: shares of the fleet with a camera / a LiDAR (every car has GPS)
    image_share: float = Field(1.0, ge=0, le=1)
    lidar_share: float = Field(1.0, ge=0, le=1)


class AlignmentSection(Section):
    """``[alignment]``: the beam-alignment loop every RSU runs (a sweep-based scheme)."""

    scheme: str = "wmmse_cb"
    options: PluginOptions = Field(default_factory=dict)
    #: "full": channel, allocation and rate at every alignment; "sampled": at every
    #: ``sample_every``-th alignment of each RSU (the timeline is the same either way)
    mode: Literal["full", "sampled"] = "full"
    sample_every: int = Field(10, ge=1)
    #: cars record a training sample at every ``record_every``-th alignment
    record_every: int = Field(1, ge=1)
    compute_ms: float = Field(0.5, ge=0)


class DeviceClassSection(Section):
    """One device class: ``gflops`` (effective training throughput [GFLOP/s]) or
    ``sample_ms`` (measured training time per sample on the device [ms])."""

    name: str
    share: float = Field(gt=0)
    gflops: float | None = Field(None, gt=0)
    sample_ms: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_measure(self) -> "DeviceClassSection":
        if (self.gflops is None) == (self.sample_ms is None):
            raise ValueError(f"device class {self.name!r}: give exactly one of gflops and sample_ms")
        return self


class DevicesSection(Section):
    """``[devices]``: on-board computers (see :mod:`v2xsim.sim.corridor.devices`)."""

    classes: list[DeviceClassSection] | None = None
    spread: float = Field(0.2, ge=0, le=2)


class FLSection(Section):
    """``[fl]``: the federated rounds."""

    enabled: bool = True
    strategy: StrategySection = Field(default_factory=StrategySection)
    mode: Literal["sync", "async"] = "sync"
    rounds: int = Field(10, ge=1)
    #: which cars in coverage train: all, a random ``fraction``, or over-commitment:
    #: ``ceil(target x (1 + overcommit))`` cars with the most time left in coverage, the
    #: round closing once ``target`` results are in
    selection: Literal["all", "fraction", "overcommit"] = "all"
    fraction: float = Field(0.5, gt=0, le=1)
    target: int = Field(5, ge=1)
    overcommit: float = Field(0.3, ge=0)
    deadline_s: float = Field(10.0, gt=0)
    #: a car takes part once it has recorded this many samples
    min_samples: int = Field(8, ge=2)
    #: feedback pre-empts model uploads on the back channel
    priority: bool = False
    downlink_rate_gbps: float = Field(2.31, gt=0)
    gap_s: float = Field(0.0, ge=0)
    #: asynchronous (FedBuff-style) mode: aggregate every ``buffer_size`` results, keep
    #: ``concurrency`` cars training, weight a result of staleness s by (1 + s)^-exponent
    buffer_size: int = Field(5, ge=1)
    concurrency: int = Field(10, ge=1)
    staleness_exponent: float = Field(0.5, ge=0)
    #: the newest samples a car keeps for training
    max_samples: int = Field(200, ge=2)
    #: start each car with the FLASH-like training data of one vehicle (needs evaluation)
    warm_start: bool = False
    local_epochs: int = Field(1, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    modality_dropout: float = Field(0.25, ge=0, lt=1)
    evaluate_every: int = Field(1, ge=1)


class EvaluationSection(Section):
    """``[evaluation]``: the held-out bed the global model is scored on after each round
    (accuracy, and the sum rate of GBA-RSU on the predicted feedback; see
    :mod:`v2xsim.sim.corridor.evaluation`). Disabled: no accuracy columns."""

    enabled: bool = True
    #: "road": a survey fleet's samples of this corridor; "flash_like": a FLASH-like set
    bed: Literal["road", "flash_like"] = "road"
    #: survey length [s] and its recording period (every n-th alignment of each RSU)
    survey_s: float = Field(30.0, gt=0)
    record_every: int = Field(2, ge=1)
    #: the FLASH-like bed's data options (bed = "flash_like"; warm-start data)
    data: PluginOptions = Field(default_factory=dict)
    #: GBA-RSU's training options, as in an FL experiment file
    rsu: PluginOptions = Field(default_factory=dict)
    test_fraction: float = Field(0.2, gt=0, lt=1)


class SweepSection(Section):
    """``[sweep]``: what the corridor study runs (every combination)."""

    speeds_kmh: list[Annotated[float, Field(gt=0)]] = Field(default_factory=list)
    vehicles: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list)
    seeds: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list)
    strategies: list[str] = Field(default_factory=list)
    #: add a run without FL per (speed, vehicles, seed): the same world, no FL traffic
    baseline: bool = True
    #: add a run of the first strategy with the other ``fl.priority``
    priority_comparison: bool = True
    #: held-out metric of the accuracy curves and the time-to-accuracy target
    metric: Literal["exact_match", "top1_beam_hit", "bit_accuracy", "sum_rate"] = "top1_beam_hit"
    target: float = 0.5


class CorridorScenario(BaseModel):
    """A corridor FL scenario file."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    experiment: Literal["fl_road"] = "fl_road"
    name: str = "fl_corridor"
    description: str = ""
    seed: int = Field(0, ge=0)
    #: simulated horizon [s]; the run ends earlier once the last round closes
    duration_s: float = Field(120.0, gt=0)
    road: RoadConfig = Field(default_factory=RoadConfig)
    radio: RadioConfig = Field(default_factory=RadioConfig)
    timing: TimingConfig = Field(default_factory=TimingConfig)
    channel: ChannelConfig = Field(default_factory=ChannelConfig)
    realignment: RealignmentConfig = Field(default_factory=RealignmentConfig)
    corridor: CorridorSection = Field(default_factory=CorridorSection)
    rsus: list[RSUSection] = Field(default_factory=lambda: [RSUSection(x_m=100.0)], min_length=1)
    backhaul: BackhaulSection = Field(default_factory=BackhaulSection)
    traffic: TrafficSection = Field(default_factory=TrafficSection)
    alignment: AlignmentSection = Field(default_factory=AlignmentSection)
    devices: DevicesSection = Field(default_factory=DevicesSection)
    fl: FLSection = Field(default_factory=FLSection)
    model: PluginOptions = Field(default_factory=dict)
    da: PluginOptions = Field(default_factory=dict)
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    sweep: SweepSection = Field(default_factory=SweepSection)
    #: where relative paths are resolved (the file's directory); not in the file
    source_dir: str | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _consistent(self) -> "CorridorScenario":
        if self.fl.warm_start and not self.evaluation.enabled:
            raise ValueError("fl.warm_start needs evaluation.enabled (the warm-start data is its FLASH-like set)")
        if self.fl.min_samples > self.fl.max_samples and not self.fl.warm_start:
            raise ValueError(f"fl.min_samples = {self.fl.min_samples} exceeds fl.max_samples = "
                             f"{self.fl.max_samples}: no car could ever take part")
        return self


def corridor_from_dict(data: dict[str, Any], path: str | Path = "<corridor>") -> CorridorScenario:
    """Validate a parsed corridor file (unknown keys, schemes, strategies and their
    options, and RSUs outside the road are refused, naming them)."""
    from v2xsim.registry import FL_STRATEGY, SCHEME

    try:
        scenario = CorridorScenario.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{path}: {format_validation_error(error)}") from None
    for label, registry, name in (("alignment.scheme", SCHEME, scenario.alignment.scheme),
                                  ("fl.strategy.name", FL_STRATEGY, scenario.fl.strategy.name)):
        try:
            registry.get(name)
        except ConfigError as error:
            raise ConfigError(f"{path}: {label}: {error}") from None
    for strategy in scenario.sweep.strategies:
        try:
            FL_STRATEGY.get(strategy)
        except ConfigError as error:
            raise ConfigError(f"{path}: sweep.strategies: {error}") from None
    return scenario


def load_corridor(path: str | Path, overrides: list[str] | None = None) -> CorridorScenario:
    """Read and validate a corridor file (``--set`` overrides applied)."""
    path = Path(path)
    data = read_toml(path, what="the corridor scenario")
    if data.get("experiment") != "fl_road":
        kind = f"study = {data['study']!r}" if "study" in data else (
            f"experiment = {data['experiment']!r}" if "experiment" in data else "no experiment = 'fl_road'")
        raise ConfigError(f"{path}: not a corridor FL file ({kind}); corridor files start with experiment = 'fl_road'")
    scenario = corridor_from_dict(apply_overrides(data, overrides or []), path)
    return scenario.model_copy(update={"source_dir": str(path.parent)})


__all__ = ["CorridorScenario", "corridor_from_dict", "load_corridor"]
