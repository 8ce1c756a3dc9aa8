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

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator,
                      model_serializer, model_validator)

from v2xsim.errors import ConfigError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def finite_options(value: dict[str, Any]) -> dict[str, Any]:
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
PluginOptions = Annotated[dict[str, Any], AfterValidator(finite_options)]


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


class MeasurementConfig(Section):
    """How a vehicle measures each beam slot of the sweep (docs/radio.md).

    ``ideal = false`` (default): the 802.11ad model -- the SSW frame of each sector is decoded only
    above the control-PHY sensitivity ``floor_dbm``, its power is estimated over
    ``estimation_chips`` chips of the preamble in thermal noise, and the result is reported
    as the SSW-Feedback SNR field (8 bits, -8 dB + 0.25 dB x value) when ``quantise``.
    ``ideal = true``: the vehicle knows the exact received power of every beam (the
    idealised radio of v2xsim before this model; the other keys are then ignored).
    """

    ideal: bool = False
    floor_dbm: float = -78.0
    estimation_chips: int = Field(1152, ge=1)
    quantise: bool = True


class ArrayConfig(Section):
    """Phased-array hardware of the RSU (docs/radio.md).

    ``ideal = false`` (default): the element phases are quantised to ``phase_bits`` bits and every
    element carries a static amplitude / phase error (and ``failed_elements`` are dead),
    drawn once per RSU from ``seed`` (unset: the scenario seed). The oracle and the
    measurements see the real beams; model-based estimators assume the nominal codebook
    unless ``calibrated``. ``ideal = true``: the array radiates the nominal DFT codebook
    exactly (the other keys are then ignored).
    """

    ideal: bool = False
    phase_bits: int = Field(2, ge=0, le=16)
    amplitude_error_db: float = Field(1.0, ge=0, le=20)
    phase_error_deg: float = Field(10.0, ge=0, le=180)
    failed_elements: int = Field(0, ge=0)
    calibrated: bool = False
    seed: int | None = None


class RadioConfig(Section):
    """RSU array, codebook and link budget.

    ``sensitivity_dbm`` is the RSS above which a vehicle reports a beam (feedback bit 1;
    with the ideal measurement also the sweep RSS it can measure). The default, -58 dBm,
    is the sensitivity of a mid-rate 802.11ad single-carrier MCS, so a reported beam can
    carry data; with the lowest data MCS (-68 dBm) a 16-element ULA's side lobes are heard
    too and a vehicle reports about 11 of 34 beams instead of about 4. The sweep's
    decoding floor is a different number (``measurement.floor_dbm``).

    The radio is realistic by default: the 802.11ad sweep measurement and a 2-bit phased
    array with element errors (``measurement`` and ``array``; docs/radio.md).
    ``measurement.ideal = true`` and ``array.ideal = true`` give the idealised radio; those
    sections are then left out of :meth:`model_dump`, so the dump of an ideal radio (and
    every cache key built from it) is what it was before these sections existed.
    """

    carrier_ghz: float = Field(60.0, gt=0)
    num_antennas: int = Field(16, ge=1)
    num_beams: int = Field(34, ge=1)
    tx_power_dbm: float = 30.0
    bandwidth_hz: float = Field(2.16e9, gt=0)
    noise_figure_db: float = Field(7.0, ge=0)
    sensitivity_dbm: float = -58.0
    measurement: MeasurementConfig = MeasurementConfig()
    array: ArrayConfig = ArrayConfig()

    @model_validator(mode="after")
    def _failures_leave_an_element(self) -> "RadioConfig":
        if self.array.failed_elements >= self.num_antennas:
            raise ValueError(f"array.failed_elements must be < num_antennas ({self.num_antennas}), "
                             f"got {self.array.failed_elements}")
        return self

    @model_serializer(mode="wrap")
    def _omit_default_hardware(self, handler):
        data = handler(self)
        if isinstance(data, dict):
            for key, ideal in (("measurement", MeasurementConfig(ideal=True)), ("array", ArrayConfig(ideal=True))):
                if getattr(self, key) == ideal:
                    data.pop(key, None)
        return data


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
    """Simulated time of one swept point and the time resolution of the world.

    The world process steps by ``tick_ms`` (vehicles move, enter and leave; blockage is
    decided). Between ticks, snapshots (alignments, sweep slots) are taken at their own
    instant and the data phase samples the channel at ``n`` equal sub-steps, ``n`` chosen
    from the fastest vehicle ``v`` [m/s] so that the phase between the direct path and
    the ground bounce moves by at most ``max_phase_step_deg`` per sub-step,
    ``tau = max_phase_step_deg lambda / (360 G v)`` with ``G`` the two-ray geometry factor
    of the site (:mod:`v2xsim.sim.resolution`).
    """

    duration_s: float = Field(2.0, gt=0)
    tick_ms: float = Field(1.0, gt=0)
    max_phase_step_deg: float = Field(30.0, gt=0, le=180)


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
    training_seeds: list[int] = Field(default_factory=list)

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
    """What a run writes. ``compare`` and ``baselines`` are scheme labels: for every swept
    point the run reports the paired difference (same seeds, same worlds) of ``compare``
    minus the best of ``baselines`` with its confidence interval."""

    plots: bool = True
    event_log: bool = True
    compare: str | None = "gba"
    baselines: list[str] = Field(default_factory=lambda: ["zf_sweep", "wmmse_ce", "wmmse_cb"])


class Scenario(Section):
    """A complete scenario file.

    :attr:`source_dir` (not a key) is the directory of the file the scenario was read from
    (None when built from a dict): plug-ins resolve the relative paths of their options
    against it (e.g. the ``sumo`` mobility model's ``config``). It takes no part in
    equality or in the scenario's hash.
    """

    _source_dir: Path | None = PrivateAttr(default=None)

    @property
    def source_dir(self) -> Path | None:
        """Directory of the scenario file (None: not read from a file)."""
        return self._source_dir

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Scenario):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = Section.__hash__

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

    @model_validator(mode="after")
    def _training_seed_per_seed(self) -> "Scenario":
        seeds = self.sweep.seeds or [self.seed]
        if self.sweep.training_seeds and len(self.sweep.training_seeds) != len(seeds):
            raise ValueError(f"sweep.training_seeds: give one training seed per world seed ({len(seeds)}: "
                             f"{seeds}), got {len(self.sweep.training_seeds)}")
        return self

    def training_seed_for(self, seed: int) -> int | None:
        """The seed of every model the schemes train for the world of ``seed`` (None: the
        schemes' own training options): world seed i of the sweep pairs with training
        seed i, so each replicate is an independent draw of world and training."""
        if not self.sweep.training_seeds:
            return None
        seeds = self.sweep.seeds or [self.seed]
        return int(self.sweep.training_seeds[seeds.index(seed)])

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


def read_toml(path: str | Path, *, what: str) -> dict[str, Any]:
    """The parsed TOML of ``path``; a missing, unreadable or invalid file raises ConfigError
    naming the file and ``what`` it should be (e.g. "scenario")."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read {what} ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read {what} (not UTF-8 text)") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML ({error})") from None


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Read and validate a TOML scenario file; errors name the file and the key."""
    path = Path(path)
    data = read_toml(path, what="scenario")
    if "study" in data:
        raise ConfigError(f"{path}: a study file (study = {data['study']!r}), not a scenario: "
                          f"run it with 'v2xsim study {path} --out DIR'")
    if data.get("experiment") == "fl_road":
        raise ConfigError(f"{path}: a corridor FL file (experiment = 'fl_road'), not a scenario: "
                          f"run it with 'v2xsim corridor {path} --out DIR'")
    if "experiment" in data:
        raise ConfigError(f"{path}: an FL experiment file (experiment = {data['experiment']!r}), not a scenario: "
                          f"run it with 'v2xsim fl {path} --out DIR'")
    data = apply_overrides(data, overrides or [])
    try:
        scenario = scenario_from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    scenario._source_dir = path.resolve().parent
    return scenario


# ---------------------------------------------------------------- key reference
def key_reference() -> str:
    """Markdown reference of every scenario key (``docs/scenario-reference.md``).

    Walks :class:`Scenario` and its nested section models: one table per section with
    key, type, default, unit (from the key's suffix), constraints (from the field
    metadata, plus the checks of the validators) and a one-line meaning.
    """
    import types
    import typing

    units = {"m": "m", "s": "s", "ms": "ms", "us": "µs", "kmh": "km/h", "mps": "m/s", "deg": "deg",
             "db": "dB", "dbm": "dBm", "hz": "Hz", "ghz": "GHz", "gbps": "Gbit/s"}
    sections = {
        "": "Keys at the top of the file, before any table.",
        "road": "RSU site geometry: the RSU pole beside a straight multi-lane road; the covered "
                "stretch is `2 rsu_height_m tan(coverage_angle_deg / 2)` long.",
        "road.lanes": "One entry per lane, all driving in +x, lane 0 nearest the RSU.",
        "radio": "RSU array, codebook and link budget.",
        "radio.measurement": "How a vehicle measures each beam slot of the sweep (docs/radio.md). `ideal = true` "
                             "(default): the exact received power. `ideal = false`: each sector's SSW frame is "
                             "decoded only above `floor_dbm`, its power estimated in thermal noise over "
                             "`estimation_chips` chips and reported as the 802.11ad SSW-Feedback SNR field; "
                             "the feedback bits still come from `radio.sensitivity_dbm`.",
        "radio.array": "Phased-array hardware of the RSU (docs/radio.md). `ideal = true` (default): the "
                       "nominal DFT codebook. `ideal = false`: quantised phase shifters, static per-element "
                       "amplitude / phase errors and failed elements, drawn once per RSU. The realistic radio "
                       "is `radio.measurement.ideal = false` plus `radio.array.ideal = false`.",
        "channel": "Channel backend (a `CHANNEL` plug-in) and how the data phase sees the channel.",
        "traffic": "How vehicles enter the covered stretch; `num_vehicles` and `speed_kmh` are the "
                   "defaults of the sweep.",
        "traffic.arrivals": "Scripted arrivals of the `fixed` pattern.",
        "blockers": "Static blockers placed at random along the stretch at the start of every run.",
        "mobility": "Mobility model (a `MOBILITY` plug-in).",
        "timing": "Durations of the alignment steps (defaults: Table I of the GBA paper: a 34-beam "
                  "sweep in 20.31 ms, 442 feedback bits in 247 ns, 0.91 ms on-vehicle sensing).",
        "realignment": "When the RSU starts the next alignment.",
        "simulation": "Simulated time of one swept point and the time resolution of the world. The world "
                      "process steps by `tick_ms`: vehicles move, enter and leave, blockage is decided. "
                      "Between ticks vehicles drive on at their speed: every snapshot (an alignment, each "
                      "slot of a sweep) has the vehicles and channels of its own instant, and the data "
                      "phase samples the channel at the midpoints of `n` equal sub-steps of the tick (one "
                      "vectorised evaluation per tick), `n` chosen at every change of the world from its "
                      "fastest vehicle `v` [m/s] so that the phase between the direct path and the ground "
                      "bounce moves by at most `max_phase_step_deg` per sub-step: "
                      "`tau = max_phase_step_deg lambda / (360 deg G v)` [s] (`lambda` the wavelength [m], "
                      "`G = max_rho rho (1/sqrt(rho^2 + a^2) - 1/sqrt(rho^2 + b^2))` with `a = |h - h_r|`, "
                      "`b = h + h_r`, `h` the RSU and `h_r` the vehicle antenna height [m]; G = 0.124 for "
                      "the default site, tau = 49 µs at 250 km/h). Channel backends that cannot evaluate "
                      "many instants at once (`sionna_rt`, plug-ins by default) are evaluated once per "
                      "tick instead.",
        "schemes": "The beam-alignment schemes (`SCHEME` plug-ins), all run on the same world.",
        "sweep": "Swept values; every combination of speed, vehicle count and seed is one point. "
                 "An empty list falls back to the traffic default (or the scenario seed).",
        "output": "What a run writes besides results.csv, summary.json and timing.json.",
    }
    meanings = {
        "name": "scenario name (progress bar, summary.json, plot titles)",
        "description": "free text, copied to summary.json",
        "seed": "run seed; every random stream of a point derives from it (unless `sweep.seeds` is set)",
        "plugins": "modules imported before the scenario is built, in every process; they register "
                   "the scenario's own plug-ins",
        "schemes": "the schemes, one `[[schemes]]` table each",
        "road.rsu_height_m": "height `h` of the RSU array",
        "road.coverage_angle_deg": "coverage angle `phi` of the RSU sector",
        "road.lanes": "the lanes, one `[[road.lanes]]` table each (`lanes = [{}, {}]`: two lanes)",
        "road.lane_width_m": "lane width",
        "road.rsu_setback_m": "distance of the RSU pole from the road edge",
        "road.sidewalk_m": "sidewalk width on both sides; building walls stand behind it",
        "road.buildings": "street-side building walls reflect (image method)",
        "road.lanes.speed_limit_kmh": "speed limit of the lane (used by `idm`); unset: no limit",
        "radio.carrier_ghz": "carrier frequency",
        "radio.num_antennas": "elements of the RSU's uniform linear array",
        "radio.num_beams": "beams `W` of the DFT codebook spread over the coverage sector",
        "radio.tx_power_dbm": "total RSU transmit power `p_max`",
        "radio.bandwidth_hz": "signal bandwidth (noise power, delivered bits)",
        "radio.noise_figure_db": "receiver noise figure",
        "radio.sensitivity_dbm": "a vehicle reports (feedback bit 1) a beam whose RSS exceeds this (with the "
                                 "ideal measurement it also measures only those); -58 dBm: a mid-rate 802.11ad MCS",
        "radio.measurement.ideal": "true: the vehicle knows each beam's exact received power (v2xsim before "
                                   "the model); false: the 802.11ad sweep measurement below",
        "radio.measurement.floor_dbm": "SSW frames received weaker are not decoded (reported 0); -78 dBm: "
                                       "control-PHY (MCS 0) sensitivity, IEEE 802.11ad-2012 clause 21",
        "radio.measurement.estimation_chips": "chips the frame-power estimate averages over (its error shrinks as "
                                              "1/sqrt of this); 1152: the channel estimation field of the preamble",
        "radio.measurement.quantise": "report the SNR as the SSW-Feedback SNR field: 8 bits, -8 dB + 0.25 dB x "
                                      "value (-8 to 55.75 dB), IEEE 802.11ad-2012 §8.4a.3",
        "radio.array.ideal": "true: the array radiates the nominal DFT codebook; false: the hardware model below",
        "radio.array.phase_bits": "phase-shifter resolution (0: continuous); 2: the Talon AD7200's QCA9500",
        "radio.array.amplitude_error_db": "standard deviation of each element's static gain error (an "
                                          "assumption for uncalibrated arrays, docs/radio.md)",
        "radio.array.phase_error_deg": "standard deviation of each element's static phase error (an "
                                       "assumption for uncalibrated arrays, docs/radio.md)",
        "radio.array.failed_elements": "dead elements, picked at random",
        "radio.array.calibrated": "model-based estimators (`wmmse_ce`, `wmmse_cb`) know the real beam patterns; false: "
                                  "they assume the nominal codebook",
        "radio.array.seed": "seed of the element errors and failures; unset: the scenario seed (one draw per "
                            "RSU, the same for every swept point)",
        "channel.backend": "channel backend: `geometric`, `sionna_rt` or a registered plug-in",
        "channel.aging": "follow the channel at every sub-step while beams serve (see `[simulation]`); "
                         "false: hold the rate of the alignment instant (frozen channel)",
        "channel.options": "keyword arguments of the backend (e.g. `scene` for `sionna_rt`; `blockage_db`, "
                           "`vehicle_reflections`, `reflection_db` for `geometric`, docs/radio.md §5); unknown "
                           "ones are refused",
        "traffic.pattern": "`constant`: exactly K cars (a car leaving re-enters at the start of its "
                           "lane); `poisson` / `platoon`: random arrivals with mean K; `fixed`: `arrivals`",
        "traffic.num_vehicles": "cars K in coverage (exact for `constant`, mean otherwise)",
        "traffic.speed_kmh": "nominal speed",
        "traffic.speed_spread": "relative spread of the drivers' desired speeds (log-normal, mean 1)",
        "traffic.truck_share": "trucks per car; trucks drive along as blockers and are not served",
        "traffic.platoon_size": "cars per platoon (`platoon`)",
        "traffic.platoon_gap_m": "bumper-to-bumper gap inside a platoon",
        "traffic.min_entry_gap_m": "free road a vehicle needs at the lane entry before it enters",
        "traffic.arrivals": "scripted arrivals, one `[[traffic.arrivals]]` table each (`fixed`)",
        "traffic.arrivals.time_s": "simulated time of the arrival",
        "traffic.arrivals.lane": "lane index (0 nearest the RSU)",
        "traffic.arrivals.speed_kmh": "speed of the arriving vehicle",
        "traffic.arrivals.kind": "`car` (served) or `truck` (blocker only)",
        "blockers.pedestrians": "pedestrians on the far sidewalk",
        "blockers.parked_cars": "cars parked at the far kerb",
        "mobility.model": "mobility model: `constant_velocity`, `idm`, `sumo` (SUMO traffic in lock-step, "
                          "needs the `sumo` extra), `trace` (a recorded SUMO FCD or CSV trace) or a registered "
                          "plug-in; `sumo` and `trace` bring their own vehicles: `[traffic]` and the swept speed "
                          "and K then add none (docs/sumo.md)",
        "mobility.options": "keyword arguments of the model (e.g. `time_headway` for `idm`, `config` for "
                            "`sumo`, `path` for `trace`; relative paths are relative to the scenario file); "
                            "unknown ones are refused",
        "timing.beam_slot_ms": "sweep time per codebook beam (20.31 ms / 34)",
        "timing.backchannel_rate_gbps": "back-channel bit rate (442 bits / 247 ns)",
        "timing.mac_access_us": "medium-access overhead added to every feedback message",
        "timing.sensing_ms": "on-vehicle sensing, prediction and bit preparation of sensing schemes",
        "timing.compute": "RSU computation time: `configured` (`compute_ms`) or `measured` wall time "
                          "of the scheme's call (not bit-reproducible)",
        "timing.compute_ms": "configured RSU computation time per scheme label; missing labels: 0",
        "realignment.policy": "`coherence`: after the shortest beam coherence time `T_contact / W` "
                              "among the vehicles; `fixed`: every `period_ms`",
        "realignment.period_ms": "realignment period of the `fixed` policy",
        "realignment.min_speed_mps": "slower vehicles count as this speed in the coherence time",
        "simulation.duration_s": "simulated time per swept point",
        "simulation.tick_ms": "world tick: vehicles move, enter and leave, blockage is decided; also the "
                              "longest sub-step of the data phase",
        "simulation.max_phase_step_deg": "largest change of the direct / ground-bounce phase of the "
                                         "fastest vehicle within one sub-step of the data phase",
        "schemes.name": "scheme: `oracle`, `zf_sweep`, `wmmse_ce`, `wmmse_cb`, `gba` or a registered plug-in",
        "schemes.label": "name in the results (default: `name`); lets one scheme appear twice",
        "schemes.options": "keyword arguments of the scheme (e.g. `feedback` for `gba`); unknown ones "
                           "are refused",
        "sweep.speed_kmh": "speeds to sweep (default: `traffic.speed_kmh`)",
        "sweep.num_vehicles": "vehicle counts K to sweep (default: `traffic.num_vehicles`)",
        "sweep.seeds": "seeds to sweep (default: `seed`)",
        "sweep.training_seeds": "one training seed per world seed: world seed i runs with every learned scheme's "
                                "models trained with training seed i (parameter initialisation and batch order), so "
                                "the confidence intervals cover training as well as worlds (each new seed trains "
                                "its models once, ~3 min cold); empty: the schemes' own training options",
        "output.plots": "write the plots",
        "output.event_log": "write events.csv (one row per alignment cycle)",
        "output.compare": "scheme label compared seed by seed with the best baseline (paired.csv)",
        "output.baselines": "scheme labels that count as baselines in that comparison",
    }
    checks = {
        "radio.array.failed_elements": "< `radio.num_antennas`",
        "schemes.label": "unique among the schemes",
        "channel.options": "numbers finite",
        "mobility.options": "numbers finite",
        "schemes.options": "numbers finite",
        "timing.compute_ms": "every value ≥ 0",
        "realignment.period_ms": 'required when policy = "fixed"',
        "sweep.speed_kmh": "every value > 0",
        "sweep.num_vehicles": "every value ≥ 0",
        "traffic.arrivals.lane": "< number of lanes",
    }

    def is_model(annotation: Any) -> bool:
        return isinstance(annotation, type) and issubclass(annotation, BaseModel)

    def item_model(annotation: Any) -> Any:
        """The model of a ``list[Model]`` annotation, else None."""
        if typing.get_origin(annotation) is list:
            (item,) = typing.get_args(annotation)
            if is_model(item):
                return item
        return None

    def type_name(annotation: Any) -> str:
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if origin is Annotated:
            return type_name(args[0])
        if origin is Literal:
            return " \\| ".join(f'`"{value}"`' for value in args)
        if origin in (typing.Union, types.UnionType):
            rest = [arg for arg in args if arg is not type(None)]
            name = " or ".join(type_name(arg) for arg in rest)
            return f"{name} (optional)" if len(rest) < len(args) else name
        if origin is list:
            return "array of tables" if is_model(args[0]) else f"array of {type_name(args[0])}"
        if origin is dict:
            return "table" if args[1] is Any else f"table of {type_name(args[1])}"
        if is_model(annotation):
            return "table"
        return {bool: "boolean", int: "integer", float: "float", str: "string"}.get(annotation, str(annotation))

    def literal(value: Any) -> str:
        """A default as it would be written in TOML."""
        if value is None:
            return "unset"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return f'"{value}"'
        if isinstance(value, float):
            text = repr(value)
            if len(text) > 8:
                text = f"{value:.6g}".replace("e+0", "e").replace("e+", "e")
            return text
        if isinstance(value, BaseModel):
            return literal(value.model_dump(exclude_defaults=True))
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(literal(item) for item in value) + "]"
        if isinstance(value, dict):
            if not value:
                return "{}"
            return "{ " + ", ".join(f"{key} = {literal(item)}" for key, item in value.items()) + " }"
        return str(value)

    def default_of(field: Any) -> str:
        if field.is_required():
            return "required"
        value = field.default_factory() if field.default_factory is not None else field.default
        return f"`{literal(value)}`" if value is not None else "unset"

    def constraints_of(path: str, field: Any) -> str:
        found = []
        for meta in field.metadata:
            for attribute, symbol in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
                bound = getattr(meta, attribute, None)
                if bound is not None:
                    found.append(f"{symbol} {bound:g}")
            if getattr(meta, "min_length", None) is not None:
                found.append(f"at least {meta.min_length} {'entry' if meta.min_length == 1 else 'entries'}")
            if getattr(meta, "max_length", None) is not None:
                found.append(f"at most {meta.max_length} entries")
        if path in checks:
            found.append(checks[path])
        return ", ".join(found)

    def unit_of(key: str) -> str:
        return units.get(key.rsplit("_", 1)[-1], "") if "_" in key else ""

    out = [
        "# Scenario file reference",
        "",
        "Generated by `v2xsim.config.key_reference()` from the scenario schema in `v2xsim/config.py`;",
        "`tests/test_docs.py` keeps this file in sync. Regenerate it with",
        "",
        "```bash",
        "python -c \"from v2xsim.config import key_reference; print(key_reference(), end='')\" > docs/scenario-reference.md",
        "```",
        "",
        "A scenario is one TOML file. Every table refuses unknown keys and every number must be",
        "finite (`inf` and `nan` are refused, also inside plug-in `options`). Any key can be",
        "overridden on the command line with `--set section.key=value` (the value is read as TOML).",
        "Units follow the key's suffix. Plug-in `options` tables are passed to the plug-in's",
        "constructor as keyword arguments; the error for an unknown option lists the valid ones.",
    ]

    def section(model: type[BaseModel], path: str, *, array: bool = False, note: str = "") -> None:
        heading = "Top-level keys" if not path else (f"`[[{path}]]`" if array else f"`[{path}]`")
        out.extend(["", f"## {heading}", "", sections.get(path) or (model.__doc__ or "").strip().split("\n")[0]])
        if note:
            out[-1] += f" {note}"
        out.extend(["", "| key | type | default | unit | constraints | meaning |", "|---|---|---|---|---|---|"])
        nested = []
        for key, field in model.model_fields.items():
            dotted = f"{path}.{key}" if path else key
            annotation = field.annotation
            if is_model(annotation):
                nested.append((annotation, dotted, False, ""))
                continue
            item = item_model(annotation)
            if item is not None:
                note = "Required" if field.is_required() else f"Default: {default_of(field)}"
                least = [m.min_length for m in field.metadata if getattr(m, "min_length", None)]
                if least:
                    note += f", at least {least[0]} {'entry' if least[0] == 1 else 'entries'}"
                nested.append((item, dotted, True, note + "."))
            out.append(f"| `{key}` | {type_name(annotation)} | {default_of(field)} | {unit_of(key)} | "
                       f"{constraints_of(dotted, field)} | {meanings.get(dotted, field.description or '')} |")
        for child, dotted, child_array, child_note in nested:
            section(child, dotted, array=child_array, note=child_note)

    section(Scenario, "")
    return "\n".join(out) + "\n"
