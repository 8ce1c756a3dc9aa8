"""Composition root: the one place that reads a :class:`~v2xsim.config.Scenario` (or its
sections) and builds the objects a run needs.

Road geometry, link budget and timing model (:class:`Site`), channel backend, mobility
model, background blockers, traffic source, the scenario's random streams, the model
store and the scheme plug-ins all come from here. The engine, training, data generation
and the studies call these builders; nothing else turns configuration into objects.
"""

from __future__ import annotations

import importlib
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from v2xsim.channel.base import ChannelModel
from v2xsim.channel.codebook import dft_codebook, element_errors, hardware_codebook
from v2xsim.config import (
    BlockersConfig,
    ChannelConfig,
    MobilityConfig,
    RadioConfig,
    RealignmentConfig,
    RoadConfig,
    Scenario,
    SchemeConfig,
    TimingConfig,
    TrafficConfig,
)
from v2xsim.errors import ConfigError
from v2xsim.geometry import Boxes, RoadLayout, background_blockers
from v2xsim.mobility.base import MobilityModel
from v2xsim.mobility.traffic import Arrival, TrafficSource
from v2xsim.radio import Radio, SweepMeasurement, noise_power_dbm
from v2xsim.registry import CHANNEL, MOBILITY, SCHEME
from v2xsim.store import ModelStore
from v2xsim.timing import RealignmentPolicy, TimingModel
from v2xsim.units import dbm_to_watt, kmh_to_mps

# ------------------------------------------------------------------ plug-in modules
def load_plugins(modules: list[str] | tuple[str, ...]) -> None:
    """Import the modules that register a scenario's own plug-ins (``plugins = [...]``).

    Every process that builds a run calls this, so worker processes that never saw the
    user's script still know the plug-ins.
    """
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ConfigError(f"plugins: cannot import {name!r} ({error})") from None


# ------------------------------------------------------------------ static site
@dataclass(frozen=True)
class Site:
    """The static parts of a scenario: road geometry, link budget, alignment timing."""

    layout: RoadLayout
    radio: Radio
    timing: TimingModel


def road_layout(road: RoadConfig) -> RoadLayout:
    """Road geometry of a ``[road]`` section."""
    return RoadLayout(rsu_height_m=road.rsu_height_m, coverage_angle_rad=math.radians(road.coverage_angle_deg),
                      num_lanes=len(road.lanes), lane_width_m=road.lane_width_m,
                      rsu_setback_m=road.rsu_setback_m, sidewalk_m=road.sidewalk_m, buildings=road.buildings,
                      lane_speed_limits_kmh=tuple(lane.speed_limit_kmh for lane in road.lanes))


def link_budget(radio: RadioConfig, road: RoadConfig, *, seed: int | None = None, rsu: int = 0) -> Radio:
    """Codebook over the RSU's coverage sector, power budget, noise and feedback threshold,
    the array's real beams (``[radio.array]``) and the sweep measurement model
    (``[radio.measurement]``).

    A hardware array's element errors are drawn from ``radio.array.seed``, else ``seed``
    (the scenario seed), else 0, on a stream of its own (:func:`array_rng`)."""
    nominal = dft_codebook(radio.num_antennas, radio.num_beams,
                           coverage_angle_rad=math.radians(road.coverage_angle_deg))
    with np.errstate(over="ignore", under="ignore"):
        p_max = float(dbm_to_watt(radio.tx_power_dbm))
        noise_power = float(dbm_to_watt(noise_power_dbm(radio.bandwidth_hz, radio.noise_figure_db)))
    # finite in dB but not in watts: 10^(x/10) overflows (or, for the power, underflows to 0)
    if not 0 < p_max < math.inf:
        raise ConfigError(f"radio.tx_power_dbm: {radio.tx_power_dbm:g} dBm is {p_max:g} W, not a usable power")
    if not math.isfinite(noise_power):
        raise ConfigError(f"radio.noise_figure_db: {radio.noise_figure_db:g} dB gives an infinite noise power")
    array = radio.array
    codebook = nominal
    if not array.ideal:
        rng = array_rng(array_seed(radio, seed), rsu=rsu)
        errors = element_errors(radio.num_antennas, rng, amplitude_error_db=array.amplitude_error_db,
                                phase_error_deg=array.phase_error_deg, failed_elements=array.failed_elements)
        codebook = hardware_codebook(nominal, phase_bits=array.phase_bits, errors=errors)
    measurement = SweepMeasurement()
    if not radio.measurement.ideal:
        with np.errstate(over="ignore", under="ignore"):
            floor_w = float(dbm_to_watt(radio.measurement.floor_dbm))
        if not math.isfinite(floor_w):
            raise ConfigError(f"radio.measurement.floor_dbm: {radio.measurement.floor_dbm:g} dBm is not a usable power")
        measurement = SweepMeasurement(ideal=False, floor_w=floor_w,
                                       estimation_chips=radio.measurement.estimation_chips,
                                       quantise=radio.measurement.quantise)
    return Radio(codebook=codebook, p_max=p_max, noise_power=noise_power,
                 feedback_threshold=float(dbm_to_watt(radio.sensitivity_dbm)), bandwidth_hz=radio.bandwidth_hz,
                 nominal_codebook=nominal, calibrated=array.ideal or array.calibrated, measurement=measurement)


def array_seed(radio: RadioConfig, seed: int | None) -> int:
    """Seed of the RSU array's element errors: ``radio.array.seed``, else ``seed``, else 0."""
    if radio.array.seed is not None:
        return radio.array.seed
    return 0 if seed is None else int(seed)


def array_rng(seed: int, *, rsu: int = 0) -> np.random.Generator:
    """Generator of the element errors of RSU ``rsu`` (a stream of its own, apart from the
    run's :func:`random_streams`)."""
    return np.random.default_rng([seed, STREAM_ARRAY, rsu])


def with_array_seed(radio: RadioConfig, seed: int | None) -> RadioConfig:
    """``radio`` with an unset ``array.seed`` of a hardware array filled in from ``seed``,
    so whatever is built from this section elsewhere (training data, models) sees the same
    array as the run."""
    if radio.array.ideal or radio.array.seed is not None:
        return radio
    return radio.model_copy(update={"array": radio.array.model_copy(update={"seed": array_seed(radio, seed)})})


def timing_model(timing: TimingConfig) -> TimingModel:
    """Alignment step durations of a ``[timing]`` section (ms / us / Gbit/s -> SI)."""
    return TimingModel(beam_slot_s=timing.beam_slot_ms * 1e-3, backchannel_rate_bps=timing.backchannel_rate_gbps * 1e9,
                       mac_access_s=timing.mac_access_us * 1e-6, sensing_s=timing.sensing_ms * 1e-3)


def site(road: RoadConfig, radio: RadioConfig, timing: TimingConfig | None = None, *,
         seed: int | None = None) -> Site:
    """The :class:`Site` of a road and radio (timing defaults: Table I of seed 002);
    ``seed`` draws a hardware array's element errors unless ``radio.array.seed`` is set."""
    return Site(road_layout(road), link_budget(radio, road, seed=seed), timing_model(timing or TimingConfig()))


def scenario_site(scenario: Scenario) -> Site:
    """The :class:`Site` of a scenario (a hardware array drawn from the scenario seed)."""
    return site(scenario.road, scenario.radio, scenario.timing, seed=scenario.seed)


def realignment_policy(realignment: RealignmentConfig) -> RealignmentPolicy:
    return RealignmentPolicy(kind=realignment.policy,
                             period_s=None if realignment.period_ms is None else realignment.period_ms * 1e-3,
                             min_speed_mps=realignment.min_speed_mps)


# ------------------------------------------------------------------ plug-ins
def channel_backend(backend: str, options: dict[str, Any], *, layout: RoadLayout, radio: RadioConfig,
                    seed: int) -> ChannelModel:
    """The channel backend ``backend`` for a road and radio; ``options`` may set its own
    ``seed`` (else ``seed``). Unknown options are refused, naming the valid ones."""
    options = {"seed": seed, **options}
    return CHANNEL.create(backend, options, layout=layout, num_antennas=radio.num_antennas,
                          carrier_hz=radio.carrier_ghz * 1e9)


def scenario_channel(channel: ChannelConfig, *, layout: RoadLayout, radio: RadioConfig, seed: int) -> ChannelModel:
    return channel_backend(channel.backend, dict(channel.options), layout=layout, radio=radio, seed=seed)


def mobility_model(mobility: MobilityConfig, *, seed: int | None = None,
                   base_dir: Path | None = None, num_vehicles: int | None = None) -> MobilityModel:
    """The mobility model of a ``[mobility]`` section (lane speed limits reach it through
    the road layout at :meth:`~v2xsim.mobility.base.MobilityModel.reset`).

    A model whose constructor names them also gets ``seed`` (the run seed, unless its
    options set their own, e.g. SUMO's ``--seed``), ``base_dir`` (the directory of the
    scenario file, against which its relative paths are resolved; None: the working
    directory) and ``num_vehicles`` (the swept K of the point, e.g. SUMO's demand)."""
    options = dict(mobility.options)
    accepted = MOBILITY.options(mobility.model) or []
    if seed is not None and "seed" in accepted:
        options = {"seed": seed, **options}
    engine = {"base_dir": base_dir} if "base_dir" in accepted else {}
    if num_vehicles is not None and "num_vehicles" in accepted:
        engine["num_vehicles"] = num_vehicles
    return MOBILITY.create(mobility.model, options, **engine)


def blockers(config: BlockersConfig, layout: RoadLayout, rng: np.random.Generator) -> Boxes:
    """Background blockers of a ``[blockers]`` section: pedestrians on the far sidewalk and
    cars parked at the far kerb, at random positions along the covered stretch."""
    return background_blockers(layout, rng, pedestrians=config.pedestrians, parked_cars=config.parked_cars)


def traffic_source(traffic: TrafficConfig, layout: RoadLayout, *, num_vehicles: int, speed_kmh: float) -> TrafficSource:
    """The traffic source of a ``[traffic]`` section at one swept (K, speed) point."""
    for index, arrival in enumerate(traffic.arrivals):
        if arrival.lane >= layout.num_lanes:
            raise ConfigError(f"traffic.arrivals.{index}.lane: lane {arrival.lane} does not exist "
                              f"({layout.num_lanes} lanes)")
    source = TrafficSource(
        pattern=traffic.pattern, num_vehicles=num_vehicles, speed_mps=kmh_to_mps(speed_kmh),
        speed_spread=traffic.speed_spread, truck_share=traffic.truck_share, platoon_size=traffic.platoon_size,
        platoon_gap_m=traffic.platoon_gap_m, min_entry_gap_m=traffic.min_entry_gap_m,
        arrivals=[Arrival(time_s=a.time_s, lane=a.lane, speed_kmh=a.speed_kmh, kind=a.kind) for a in traffic.arrivals],
    )
    if traffic.pattern == "constant":
        # refused up front when the K cars (and their trucks) cannot fit on the road at all
        trucks = int(round(num_vehicles * traffic.truck_share))
        need = source.room_needed(["car"] * num_vehicles + ["truck"] * trucks)
        if need > layout.num_lanes * layout.coverage_length:
            raise ConfigError(
                f"traffic: {num_vehicles} cars and {trucks} trucks need {need:.1f} m of lane (length + "
                f"min_entry_gap_m each), but {layout.num_lanes} lanes of {layout.coverage_length:.1f} m hold "
                f"{layout.num_lanes * layout.coverage_length:.1f} m; lower num_vehicles or add lanes")
    return source


# ------------------------------------------------------------------ randomness
#: independent random streams of one run, derived from (seed, stream id)
STREAM_TRAFFIC, STREAM_MOBILITY, STREAM_BLOCKERS, STREAM_CHANNEL, STREAM_SCHEMES = range(5)
#: stream id of the RSU arrays' element errors (:func:`array_rng`; not one of the run's streams)
STREAM_ARRAY = 5


def random_streams(seed: int) -> list[np.random.Generator]:
    """The run's generators, one per ``STREAM_*`` index, all from the run seed."""
    return [np.random.default_rng([seed, stream]) for stream in range(STREAM_SCHEMES + 1)]


def scheme_rng(seed: int, label: str) -> np.random.Generator:
    """The generator of the scheme labelled ``label`` in a run of ``seed``: named by the
    label, so a scheme's draws (sensor noise, sweep measurement noise, its own choices) do
    not depend on which other schemes run or in which order."""
    return np.random.default_rng([seed, STREAM_SCHEMES, zlib.crc32(label.encode("utf-8"))])


# ------------------------------------------------------------------ schemes
@dataclass(frozen=True)
class SchemeContext:
    """What a scheme may use to prepare itself for a scenario.

    Attributes:
        road, radio, blockers: the scenario's sections (learned schemes train for them).
        site: the built road geometry, link budget and timing.
        store: where trained models are loaded from (and trained into on first use).
        training_seed: seed of every model a scheme trains (parameter initialisation and
            batch order); None = the scheme's own training options
            (``sweep.training_seeds`` sets it per world seed).
    """

    road: RoadConfig
    radio: RadioConfig
    blockers: BlockersConfig
    site: Site
    store: ModelStore
    training_seed: int | None = None


def scheme_context(scenario: Scenario, store: ModelStore, *, training_seed: int | None = None) -> SchemeContext:
    return SchemeContext(road=scenario.road, radio=with_array_seed(scenario.radio, scenario.seed),
                         blockers=scenario.blockers,
                         site=scenario_site(scenario), store=store, training_seed=training_seed)


def schemes(scenario: Scenario, store: ModelStore, *, training_seed: int | None = None) -> list[tuple[SchemeConfig, Any]]:
    """Every scheme of the scenario, created from the registry and prepared (learned
    schemes load their models from ``store``, training them on first use, with
    ``training_seed`` when given)."""
    context = scheme_context(scenario, store, training_seed=training_seed)
    built = []
    for spec in scenario.schemes:
        scheme = SCHEME.create(spec.name, dict(spec.options))
        scheme.prepare(context)
        built.append((spec, scheme))
    return built


def compute_time_s(scenario: Scenario, label: str) -> float | None:
    """Configured RSU computation time of a scheme [s], or None for measured wall time."""
    if scenario.timing.compute == "measured":
        return None
    return scenario.timing.compute_ms.get(label, 0.0) * 1e-3
