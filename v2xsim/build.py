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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from v2xsim.channel.base import ChannelModel
from v2xsim.channel.codebook import dft_codebook
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
from v2xsim.radio import Radio, noise_power_dbm
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


def link_budget(radio: RadioConfig, road: RoadConfig) -> Radio:
    """Codebook over the RSU's coverage sector, power budget, noise and feedback threshold."""
    codebook = dft_codebook(radio.num_antennas, radio.num_beams,
                            coverage_angle_rad=math.radians(road.coverage_angle_deg))
    with np.errstate(over="ignore", under="ignore"):
        p_max = float(dbm_to_watt(radio.tx_power_dbm))
        noise_power = float(dbm_to_watt(noise_power_dbm(radio.bandwidth_hz, radio.noise_figure_db)))
    # finite in dB but not in watts: 10^(x/10) overflows (or, for the power, underflows to 0)
    if not 0 < p_max < math.inf:
        raise ConfigError(f"radio.tx_power_dbm: {radio.tx_power_dbm:g} dBm is {p_max:g} W, not a usable power")
    if not math.isfinite(noise_power):
        raise ConfigError(f"radio.noise_figure_db: {radio.noise_figure_db:g} dB gives an infinite noise power")
    return Radio(codebook=codebook, p_max=p_max, noise_power=noise_power,
                 feedback_threshold=float(dbm_to_watt(radio.sensitivity_dbm)), bandwidth_hz=radio.bandwidth_hz)


def timing_model(timing: TimingConfig) -> TimingModel:
    """Alignment step durations of a ``[timing]`` section (ms / us / Gbit/s -> SI)."""
    return TimingModel(beam_slot_s=timing.beam_slot_ms * 1e-3, backchannel_rate_bps=timing.backchannel_rate_gbps * 1e9,
                       mac_access_s=timing.mac_access_us * 1e-6, sensing_s=timing.sensing_ms * 1e-3)


def site(road: RoadConfig, radio: RadioConfig, timing: TimingConfig | None = None) -> Site:
    """The :class:`Site` of a road and radio (timing defaults: Table I of seed 002)."""
    return Site(road_layout(road), link_budget(radio, road), timing_model(timing or TimingConfig()))


def scenario_site(scenario: Scenario) -> Site:
    return site(scenario.road, scenario.radio, scenario.timing)


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
                   base_dir: Path | None = None) -> MobilityModel:
    """The mobility model of a ``[mobility]`` section (lane speed limits reach it through
    the road layout at :meth:`~v2xsim.mobility.base.MobilityModel.reset`).

    A model whose constructor names them also gets ``seed`` (the run seed, unless its
    options set their own, e.g. SUMO's ``--seed``) and ``base_dir`` (the directory of the
    scenario file, against which its relative paths are resolved; None: the working
    directory)."""
    options = dict(mobility.options)
    accepted = MOBILITY.options(mobility.model) or []
    if seed is not None and "seed" in accepted:
        options = {"seed": seed, **options}
    engine = {"base_dir": base_dir} if "base_dir" in accepted else {}
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


def random_streams(seed: int) -> list[np.random.Generator]:
    """The run's generators, one per ``STREAM_*`` index, all from the run seed."""
    return [np.random.default_rng([seed, stream]) for stream in range(STREAM_SCHEMES + 1)]


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
    return SchemeContext(road=scenario.road, radio=scenario.radio, blockers=scenario.blockers,
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
