"""Builds one SimPy run per swept point and measures every scheme on the same world."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import simpy

from v2xsim.channel.codebook import dft_codebook
from v2xsim.config import Scenario
from v2xsim.metrics import dbm_to_watt
from v2xsim.registry import CHANNEL, MOBILITY, SCHEME
from v2xsim.sim.rsu import Cycle, RealignmentPolicy, SchemeRunner
from v2xsim.sim.traffic import Arrival, TrafficSource
from v2xsim.sim.world import Radio, World
from v2xsim.timing import TimingModel, beam_coherence_time
from v2xsim.world import Boxes, RoadLayout, on_ground

BOLTZMANN_DBM_PER_HZ = -174.0

# independent random streams of one run, derived from (seed, stream id)
STREAM_TRAFFIC, STREAM_MOBILITY, STREAM_BLOCKERS, STREAM_CHANNEL, STREAM_SCHEMES = range(5)


def layout_of(scenario: Scenario) -> RoadLayout:
    road = scenario.road
    return RoadLayout(rsu_height_m=road.rsu_height_m, coverage_angle_rad=scenario.coverage_angle_rad,
                      num_lanes=len(road.lanes), lane_width_m=road.lane_width_m,
                      rsu_setback_m=road.rsu_setback_m, sidewalk_m=road.sidewalk_m, buildings=road.buildings)


def radio_of(scenario: Scenario) -> Radio:
    r = scenario.radio
    noise_dbm = BOLTZMANN_DBM_PER_HZ + 10 * math.log10(r.bandwidth_hz) + r.noise_figure_db
    codebook = dft_codebook(r.num_antennas, r.num_beams, coverage_angle_rad=scenario.coverage_angle_rad)
    return Radio(codebook=codebook, p_max=float(dbm_to_watt(r.tx_power_dbm)),
                 noise_power=float(dbm_to_watt(noise_dbm)),
                 feedback_threshold=float(dbm_to_watt(r.sensitivity_dbm)), bandwidth_hz=r.bandwidth_hz)


def timing_of(scenario: Scenario) -> TimingModel:
    t = scenario.timing
    return TimingModel(beam_slot_s=t.beam_slot_ms * 1e-3, backchannel_rate_bps=t.backchannel_rate_gbps * 1e9,
                       mac_access_s=t.mac_access_us * 1e-6, sensing_s=t.sensing_ms * 1e-3)


def static_blockers(scenario: Scenario, layout: RoadLayout, rng: np.random.Generator) -> Boxes:
    """Pedestrians on the far sidewalk and cars parked at the far kerb."""
    x_min, x_max = layout.x_range
    b = scenario.blockers
    pedestrians = on_ground("pedestrian", rng.uniform(x_min, x_max, b.pedestrians),
                            np.full(b.pedestrians, layout.road_width + layout.sidewalk_m / 2))
    parked = on_ground("parked_car", rng.uniform(x_min, x_max, b.parked_cars),
                       np.full(b.parked_cars, layout.road_width + 0.9))
    return Boxes.concat(pedestrians, parked)


class CountingEnvironment(simpy.Environment):
    """A SimPy environment that counts the events it processes."""

    def __init__(self, initial_time: float = 0) -> None:
        super().__init__(initial_time)
        self.processed_events = 0

    def step(self) -> None:
        self.processed_events += 1
        super().step()


@dataclass
class PointResult:
    """One row of results.csv: one scheme at one swept point."""

    scheme: str
    speed_kmh: float
    num_vehicles: int
    seed: int
    t_coherence_s: float
    t_delay_s: float
    sum_rate: float
    effective_sum_rate: float
    formula_effective_sum_rate: float
    overhead_share: float
    alignments: int
    mean_vehicles: float
    mean_served: float
    paper_t_coherence_s: float
    simulated_s: float
    channel: str
    aging: bool

    def as_row(self) -> dict[str, object]:
        return asdict(self)


def summarise(label: str, cycles: list[Cycle], *, speed_kmh: float, num_vehicles: int, seed: int,
              paper_t_coherence_s: float, channel: str, aging: bool) -> PointResult:
    """Reduce the completed cycles of one scheme to a result row (no NaN: empty -> 0)."""
    total = sum(c.length_s for c in cycles)
    data = sum(c.data_time_s for c in cycles)
    bits = sum(c.bits for c in cycles)
    n = len(cycles)
    t_coh = sum(c.period_s for c in cycles) / n if n else 0.0
    t_delay = sum(c.delay_s for c in cycles) / n if n else 0.0
    # mean instantaneous sum rate while beams serve; if stale beams never served, the rate
    # they would have given at the alignment instant
    if data > 0:
        rate = bits / data
    else:
        rate = sum(c.apply_sum_rate for c in cycles) / n if n else 0.0
    effective = bits / total if total > 0 else 0.0
    formula = rate * max(0.0, 1.0 - t_delay / t_coh) if t_coh > 0 else 0.0
    return PointResult(
        scheme=label, speed_kmh=speed_kmh, num_vehicles=num_vehicles, seed=seed,
        t_coherence_s=t_coh, t_delay_s=t_delay, sum_rate=rate, effective_sum_rate=effective,
        formula_effective_sum_rate=formula,
        overhead_share=(sum(min(c.delay_s, c.length_s) for c in cycles) / total) if total > 0 else 0.0,
        alignments=n, mean_vehicles=(sum(c.vehicles for c in cycles) / n) if n else 0.0,
        mean_served=(sum(c.served for c in cycles) / n) if n else 0.0,
        paper_t_coherence_s=paper_t_coherence_s, simulated_s=total, channel=channel, aging=aging,
    )


@dataclass
class RunOutput:
    rows: list[PointResult]
    cycles: list[dict[str, object]]
    events: int
    wall_s: float
    simulated_s: float


def run_point(scenario: Scenario, *, speed_kmh: float, num_vehicles: int, seed: int) -> RunOutput:
    """Simulate every scheme of ``scenario`` at one (speed, K, seed) on one shared world."""
    wall_start = time.perf_counter()
    streams = [np.random.default_rng([seed, stream]) for stream in range(STREAM_SCHEMES + 1)]
    layout = layout_of(scenario)
    radio = radio_of(scenario)
    timing = timing_of(scenario)
    channel_options = dict(scenario.channel.options)
    channel_options.setdefault("seed", int(streams[STREAM_CHANNEL].integers(2**31)))
    channel = CHANNEL.create(scenario.channel.backend, layout=layout, num_antennas=scenario.radio.num_antennas,
                             carrier_hz=scenario.radio.carrier_ghz * 1e9, **channel_options)
    mobility_options = dict(scenario.mobility.options)
    limits = [lane.speed_limit_kmh for lane in scenario.road.lanes]
    if scenario.mobility.model == "idm" and any(v is not None for v in limits):
        mobility_options.setdefault("lane_speed_limits_kmh", [v if v is not None else 1e9 for v in limits])
    mobility = MOBILITY.create(scenario.mobility.model, **mobility_options)

    env = CountingEnvironment()
    world = World(layout=layout, mobility=mobility, channel=channel, radio=radio,
                  static_blockers=static_blockers(scenario, layout, streams[STREAM_BLOCKERS]),
                  rng=streams[STREAM_MOBILITY])
    tr = scenario.traffic
    traffic = TrafficSource(
        pattern=tr.pattern, num_vehicles=num_vehicles, speed_mps=speed_kmh / 3.6, speed_spread=tr.speed_spread,
        truck_share=tr.truck_share, platoon_size=tr.platoon_size, platoon_gap_m=tr.platoon_gap_m,
        min_entry_gap_m=tr.min_entry_gap_m,
        arrivals=[Arrival(time_s=a.time_s, lane=a.lane, speed_kmh=a.speed_kmh, kind=a.kind) for a in tr.arrivals],
    )
    for arrival in tr.arrivals:
        if arrival.lane >= layout.num_lanes:
            raise ValueError(f"traffic.arrivals: lane {arrival.lane} does not exist ({layout.num_lanes} lanes)")
    traffic.populate(world, streams[STREAM_TRAFFIC])
    env.process(traffic.run(env, world, streams[STREAM_TRAFFIC]))

    rl = scenario.realignment
    policy = RealignmentPolicy(kind=rl.policy, period_s=None if rl.period_ms is None else rl.period_ms * 1e-3,
                               min_speed_mps=rl.min_speed_mps)
    runners = []
    scheme_seeds = streams[STREAM_SCHEMES].integers(2**31, size=len(scenario.schemes))
    for spec, scheme_seed in zip(scenario.schemes, scheme_seeds):
        scheme = SCHEME.create(spec.name, **spec.options)
        scheme.prepare(scenario)
        compute_s = None if scenario.timing.compute == "measured" else scenario.timing.compute_ms.get(
            spec.display, 0.0) * 1e-3
        runners.append(SchemeRunner(env=env, world=world, scheme=scheme, label=spec.display, timing=timing,
                                    policy=policy, aging=scenario.channel.aging, compute_s=compute_s,
                                    rng=np.random.default_rng(int(scheme_seed))))

    tick = scenario.simulation.tick_ms * 1e-3

    def world_tick():
        """Mobility tick: move the traffic, then let every scheme integrate and re-rate."""
        while True:
            yield env.timeout(tick)
            for runner in runners:
                runner.accrue()
            world.advance(tick)
            for runner in runners:
                runner.world_changed()

    env.process(world_tick())
    duration = scenario.simulation.duration_s
    env.run(until=duration)
    paper_t_coh = beam_coherence_time(layout.rsu_height_m, layout.coverage_angle_rad, speed_kmh / 3.6,
                                      radio.num_beams)
    rows, cycles = [], []
    for runner in runners:
        rows.append(summarise(runner.label, runner.cycles, speed_kmh=speed_kmh, num_vehicles=num_vehicles,
                              seed=seed, paper_t_coherence_s=paper_t_coh, channel=scenario.channel.backend,
                              aging=scenario.channel.aging))
        for c in runner.cycles:
            cycles.append({"speed_kmh": speed_kmh, "num_vehicles": num_vehicles, "seed": seed, **asdict(c)})
    return RunOutput(rows=rows, cycles=cycles, events=env.processed_events, wall_s=time.perf_counter() - wall_start,
                     simulated_s=duration)


def run_scenario(scenario: Scenario, *, progress: Callable[[int, int, str], None] | None = None) -> list[RunOutput]:
    """Run every swept point in order; ``progress(done, total, label)`` after each."""
    points = scenario.points()
    outputs = []
    for index, (speed, count, seed) in enumerate(points):
        outputs.append(run_point(scenario, speed_kmh=speed, num_vehicles=count, seed=seed))
        if progress is not None:
            progress(index + 1, len(points), f"{speed:g} km/h, K={count}, seed {seed}")
    return outputs


__all__ = ["run_point", "run_scenario", "PointResult", "RunOutput"]
