"""Scenario files: TOML -> validated pydantic objects, errors that name the key.

Every section rejects unknown keys, and every number must be finite (TOML's ``inf`` and
``nan`` are refused, also inside plug-in ``options``). ``load_scenario(path, overrides)``
applies ``--set a.b=value`` overrides (values parsed as TOML, else taken as strings)
before validation. ``docs/scenario-reference.md`` lists every key with its unit and
default (generated from these classes by :func:`key_reference`).
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from v2xsim.errors import ConfigError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _finite_options(value: dict[str, Any]) -> dict[str, Any]:
    """Refuse non-finite numbers anywhere inside a plug-in ``options`` table."""
    def walk(item: Any, path: str) -> None:
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{path}: {item} is not a finite number")
        if isinstance(item, dict):
            for key, child in item.items():
                walk(child, f"{path}.{key}" if path else str(key))
        elif isinstance(item, (list, tuple)):
            for index, child in enumerate(item):
                walk(child, f"{path}.{index}" if path else str(index))

    walk(value, "")
    return value


#: a plug-in's own options: any TOML table, every number finite
PluginOptions = Annotated[dict[str, Any], AfterValidator(_finite_options)]


class LaneConfig(Section):
    """One lane (all lanes drive in +x, lane 0 nearest the RSU)."""

    speed_limit_kmh: float | None = Field(None, gt=0)


class RoadConfig(Section):
    """RSU site geometry."""

    rsu_height_m: float = Field(10.0, gt=0)
    coverage_angle_deg: float = Field(120.0, gt=0, lt=180)
    lanes: list[LaneConfig] = Field(default_factory=lambda: [LaneConfig()] * 3, min_length=1)
    lane_width_m: float = Field(3.5, gt=0)
    rsu_setback_m: float = Field(1.0, ge=0)
    sidewalk_m: float = Field(3.0, ge=0)
    buildings: bool = True


class RadioConfig(Section):
    """RSU array, codebook and link budget.

    ``sensitivity_dbm`` is the RSS above which a vehicle reports a beam (feedback bit 1,
    and the sweep RSS it can measure). The default, -58 dBm, is the sensitivity of a
    mid-rate 802.11ad single-carrier MCS, so a reported beam can carry data; with the
    lowest data MCS (-68 dBm) a 16-element ULA's side lobes are heard too and a vehicle
    reports about 11 of 34 beams instead of about 4.
    """

    carrier_ghz: float = Field(60.0, gt=0)
    num_antennas: int = Field(16, ge=1)
    num_beams: int = Field(34, ge=1)
    tx_power_dbm: float = 30.0
    bandwidth_hz: float = Field(2.16e9, gt=0)
    noise_figure_db: float = Field(7.0, ge=0)
    sensitivity_dbm: float = -58.0


class ChannelConfig(Section):
    """Channel backend and how the data phase sees it."""

    backend: str = "geometric"
    aging: bool = True
    options: PluginOptions = Field(default_factory=dict)


class ArrivalConfig(Section):
    time_s: float = Field(ge=0)
    lane: int = Field(ge=0)
    speed_kmh: float = Field(gt=0)
    kind: Literal["car", "truck"] = "car"


class TrafficConfig(Section):
    """How vehicles enter; ``num_vehicles`` and ``speed_kmh`` are the sweep defaults."""

    pattern: Literal["constant", "poisson", "platoon", "fixed"] = "constant"
    num_vehicles: int = Field(10, ge=0)
    speed_kmh: float = Field(60.0, gt=0)
    speed_spread: float = Field(0.0, ge=0)
    truck_share: float = Field(0.0, ge=0)
    platoon_size: int = Field(4, ge=1)
    platoon_gap_m: float = Field(8.0, ge=0)
    min_entry_gap_m: float = Field(2.0, ge=0)
    arrivals: list[ArrivalConfig] = Field(default_factory=list)


class BlockersConfig(Section):
    """Static blockers placed at random at the start of every run."""

    pedestrians: int = Field(2, ge=0)
    parked_cars: int = Field(1, ge=0)


class MobilityConfig(Section):
    model: str = "constant_velocity"
    options: PluginOptions = Field(default_factory=dict)


class TimingConfig(Section):
    """Alignment step durations (defaults: Table I of seed 002)."""

    beam_slot_ms: float = Field(20.31 / 34, ge=0)
    backchannel_rate_gbps: float = Field(442 / 247, gt=0)
    mac_access_us: float = Field(0.0, ge=0)
    sensing_ms: float = Field(0.91, ge=0)
    compute: Literal["configured", "measured"] = "configured"
    compute_ms: dict[str, float] = Field(default_factory=dict)

    @field_validator("compute_ms")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        for name, ms in value.items():
            if not ms >= 0:
                raise ValueError(f"compute_ms.{name} must be >= 0")
        return value


class RealignmentConfig(Section):
    policy: Literal["coherence", "fixed"] = "coherence"
    period_ms: float | None = Field(None, gt=0)
    min_speed_mps: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _fixed_needs_period(self) -> "RealignmentConfig":
        if self.policy == "fixed" and self.period_ms is None:
            raise ValueError("period_ms is required when policy = 'fixed'")
        return self


class SimulationConfig(Section):
    duration_s: float = Field(2.0, gt=0)
    tick_ms: float = Field(1.0, gt=0)


class SchemeConfig(Section):
    name: str
    label: str | None = None
    options: PluginOptions = Field(default_factory=dict)

    @property
    def display(self) -> str:
        return self.label or self.name


class SweepConfig(Section):
    """Swept values; empty lists fall back to the traffic defaults / the scenario seed."""

    speed_kmh: list[float] = Field(default_factory=list)
    num_vehicles: list[int] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=list)

    @field_validator("speed_kmh")
    @classmethod
    def _speeds_positive(cls, value: list[float]) -> list[float]:
        for speed in value:
            if not speed > 0:
                raise ValueError(f"every speed must be > 0, got {speed}")
        return value

    @field_validator("num_vehicles")
    @classmethod
    def _counts_non_negative(cls, value: list[int]) -> list[int]:
        for count in value:
            if count < 0:
                raise ValueError(f"every vehicle count must be >= 0, got {count}")
        return value


class OutputConfig(Section):
    plots: bool = True
    event_log: bool = True


class Scenario(Section):
    """A complete scenario file."""

    name: str = "scenario"
    description: str = ""
    seed: int = 0
    plugins: list[str] = Field(default_factory=list)
    road: RoadConfig = RoadConfig()
    radio: RadioConfig = RadioConfig()
    channel: ChannelConfig = ChannelConfig()
    traffic: TrafficConfig = TrafficConfig()
    blockers: BlockersConfig = BlockersConfig()
    mobility: MobilityConfig = MobilityConfig()
    timing: TimingConfig = TimingConfig()
    realignment: RealignmentConfig = RealignmentConfig()
    simulation: SimulationConfig = SimulationConfig()
    schemes: list[SchemeConfig] = Field(min_length=1)
    sweep: SweepConfig = SweepConfig()
    output: OutputConfig = OutputConfig()

    @model_validator(mode="after")
    def _unique_labels(self) -> "Scenario":
        labels = [s.display for s in self.schemes]
        if len(set(labels)) != len(labels):
            raise ValueError("schemes: two schemes share a label; give one a distinct 'label'")
        return self

    @property
    def coverage_angle_rad(self) -> float:
        return math.radians(self.road.coverage_angle_deg)

    def points(self) -> list[tuple[float, int, int]]:
        """Every (speed_kmh, num_vehicles, seed) of the sweep, in run order."""
        speeds = self.sweep.speed_kmh or [self.traffic.speed_kmh]
        counts = self.sweep.num_vehicles or [self.traffic.num_vehicles]
        seeds = self.sweep.seeds or [self.seed]
        return [(s, k, seed) for seed in seeds for k in counts for s in speeds]


# ---------------------------------------------------------------- loading
def format_validation_error(error: ValidationError) -> str:
    """One line naming the first offending key of a pydantic validation error."""
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(scenario)"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "missing":
        message = "required key is missing"
    elif first["type"] == "value_error":
        message = message.removeprefix("Value error, ")
    return f"{key}: {message}"


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=value"`` -> (["a", "b"], parsed value)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    path = [part for part in key.strip().split(".") if part]
    if not path:
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return path, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {part} is not a table")
            node = child
        node[path[-1]] = value
    return data


def scenario_from_dict(data: dict[str, Any]) -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error)) from None


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Read and validate a TOML scenario file; errors name the file and the key."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read scenario ({error.strerror or error})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML ({error})") from None
    data = apply_overrides(data, overrides or [])
    try:
        return scenario_from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
