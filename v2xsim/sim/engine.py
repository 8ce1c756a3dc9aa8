"""One SimPy run per swept point: every scheme measured on the same world.

The composition root (:mod:`v2xsim.build`) builds the road, link budget, timing, channel,
mobility, blockers, traffic and schemes; this module wires them into one event loop:
a world tick process (mobility), the traffic source, and one alignment process per scheme.

Time resolution: the world process steps by ``simulation.tick_ms`` (mobility, arrivals,
departures, blockage). Between ticks every snapshot (an alignment, each slot of a sweep)
is taken at its own instant, and the data phase follows the channel at sub-steps short
enough that the two-ray phase of the fastest vehicle moves by at most
``simulation.max_phase_step_deg`` (:mod:`v2xsim.sim.resolution`, :mod:`v2xsim.sim.world`).
Backends that cannot evaluate many instants at once (``vectorised_tracks`` false, e.g. ray
tracing) are evaluated once per tick, as before.

Traffic states: when the mobility model names the state of the traffic
(:meth:`~v2xsim.mobility.base.MobilityModel.state_label`, e.g. ``sumo``'s traffic-light
phase), every step of the world process is attributed to the label of the state it starts
from: the simulated time, the bits each scheme delivered in it and the cars in coverage
(time-weighted). :attr:`RunOutput.states` then has one row per scheme and label with the
effective sum rate within that state, ``delivered bits / (time in the state x
bandwidth)`` [bit/s/Hz]; the rows of all labels add up to the scheme's whole window.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import simpy

from v2xsim import build
from v2xsim.config import Scenario
from v2xsim.mobility.base import MobilityModel
from v2xsim.sim.resolution import TimeResolution
from v2xsim.sim.rsu import Cycle, SchemeRunner
from v2xsim.sim.world import World
from v2xsim.store import ModelStore
from v2xsim.timing import beam_coherence_time
from v2xsim.units import kmh_to_mps


#: the world steps this long after the instant a vehicle's rear reaches the exit (or a
#: spawning model's vehicle reaches the entry) [s]
DEPARTURE_MARGIN_S = 1e-9


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
    #: seed of the trained models (``sweep.training_seeds``); None = the schemes' own
    training_seed: int | None = None

    def as_row(self) -> dict[str, object]:
        return asdict(self)


def summarise(label: str, cycles: list[Cycle], *, delivered: float, serving_s: float, aligning_s: float,
              window_s: float, speed_kmh: float, num_vehicles: int, seed: int, paper_t_coherence_s: float,
              channel: str, aging: bool) -> PointResult:
    """One scheme's result row (no NaN: nothing measured -> 0).

    The measurement window is the whole simulated time ``[0, window_s]``: time with an
    empty road and the last, unfinished cycle included. ``delivered`` [bit/s/Hz x s],
    ``serving_s`` and ``aligning_s`` [s] are the runner's whole-window totals; the mean
    realignment period, alignment delay, vehicles and served vehicles are averages over
    the completed cycles.
    """
    cycles = [c for c in cycles if c.complete]
    n = len(cycles)
    t_coh = sum(c.period_s for c in cycles) / n if n else 0.0
    t_delay = sum(c.delay_s for c in cycles) / n if n else 0.0
    # mean instantaneous sum rate while beams serve; if stale beams never served, the rate
    # they would have given at the alignment instant
    if serving_s > 0:
        rate = delivered / serving_s
    else:
        rate = sum(c.apply_sum_rate for c in cycles) / n if n else 0.0
    formula = rate * max(0.0, 1.0 - t_delay / t_coh) if t_coh > 0 else 0.0
    return PointResult(
        scheme=label, speed_kmh=speed_kmh, num_vehicles=num_vehicles, seed=seed,
        t_coherence_s=t_coh, t_delay_s=t_delay, sum_rate=rate, effective_sum_rate=delivered / window_s,
        formula_effective_sum_rate=formula, overhead_share=aligning_s / window_s,
        alignments=n, mean_vehicles=(sum(c.vehicles for c in cycles) / n) if n else 0.0,
        mean_served=(sum(c.served for c in cycles) / n) if n else 0.0,
        paper_t_coherence_s=paper_t_coherence_s, simulated_s=window_s, channel=channel, aging=aging,
    )


@dataclass
class RunOutput:
    """What one swept point gives: result rows, alignment cycles, events processed, wall
    and simulated time [s], and the per-traffic-state rows (empty when the mobility model
    names no states; see the module doc)."""

    rows: list[PointResult]
    cycles: list[dict[str, object]]
    events: int
    wall_s: float
    simulated_s: float
    states: list[dict[str, object]] = field(default_factory=list)


class StateAccount:
    """Time, delivered bits per scheme and car-seconds per traffic-state label.

    Args:
        labels: the schemes' labels.
    """

    def __init__(self, *, labels: list[str]) -> None:
        self.labels = labels
        self.time_s: dict[str, float] = {}
        self.car_s: dict[str, float] = {}
        self.bits: dict[str, dict[str, float]] = {}
        self._last = [0.0] * len(labels)

    def add(self, state: str, *, duration_s: float, cars: int, delivered: list[float]) -> None:
        """Attribute ``duration_s`` [s] with ``cars`` in coverage and what each scheme
        delivered since the last call (running totals ``delivered`` [bit/s/Hz x s])."""
        self.time_s[state] = self.time_s.get(state, 0.0) + duration_s
        self.car_s[state] = self.car_s.get(state, 0.0) + cars * duration_s
        bits = self.bits.setdefault(state, dict.fromkeys(self.labels, 0.0))
        for index, (label, total) in enumerate(zip(self.labels, delivered)):
            bits[label] += total - self._last[index]
            self._last[index] = total

    def rows(self, **point: object) -> list[dict[str, object]]:
        """One row per scheme and state (states in order of first appearance)."""
        return [{"scheme": label, **point, "state": state, "time_s": time_s,
                 "effective_sum_rate": self.bits[state][label] / time_s if time_s > 0 else 0.0,
                 "mean_vehicles": self.car_s[state] / time_s if time_s > 0 else 0.0}
                for label in self.labels for state, time_s in self.time_s.items()]


def run_point(scenario: Scenario, *, speed_kmh: float, num_vehicles: int, seed: int,
              store: ModelStore | None = None) -> RunOutput:
    """Simulate every scheme of ``scenario`` at one (speed, K, seed) on one shared world;
    learned schemes load their models from ``store`` (default: the v2xsim cache). The
    mobility model is closed at the end, also on error (a SUMO run is ended)."""
    opened: list[MobilityModel] = []
    try:
        return _run_point(scenario, speed_kmh=speed_kmh, num_vehicles=num_vehicles, seed=seed, store=store,
                          opened=opened)
    finally:
        for model in opened:
            model.close()


def _run_point(scenario: Scenario, *, speed_kmh: float, num_vehicles: int, seed: int, store: ModelStore | None,
               opened: list[MobilityModel]) -> RunOutput:
    wall_start = time.perf_counter()
    build.load_plugins(scenario.plugins)
    streams = build.random_streams(seed)
    site = build.scenario_site(scenario)
    layout, radio, timing = site.layout, site.radio, site.timing
    channel = build.scenario_channel(scenario.channel, layout=layout, radio=scenario.radio,
                                     seed=int(streams[build.STREAM_CHANNEL].integers(2**31)))
    mobility = build.mobility_model(scenario.mobility, seed=seed, base_dir=scenario.source_dir,
                                    num_vehicles=num_vehicles)
    opened.append(mobility)

    tick = scenario.simulation.tick_ms * 1e-3
    fine = channel.vectorised_tracks
    resolution = TimeResolution(
        tick_s=tick, carrier_hz=channel.carrier_hz, rsu_height_m=layout.rsu_height_m,
        antenna_height_m=layout.antenna_height_m,
        max_phase_step_deg=scenario.simulation.max_phase_step_deg if fine else None)

    env = CountingEnvironment()
    world = World(layout=layout, mobility=mobility, channel=channel, radio=radio,
                  static_blockers=build.blockers(scenario.blockers, layout, streams[build.STREAM_BLOCKERS]),
                  rng=streams[build.STREAM_MOBILITY], resolution=resolution, clock=lambda: env.now)
    if not mobility.spawns_vehicles:  # else the model puts the vehicles on the road (SUMO, a trace)
        traffic = build.traffic_source(scenario.traffic, layout, num_vehicles=num_vehicles, speed_kmh=speed_kmh)
        traffic.populate(world, streams[build.STREAM_TRAFFIC])
        env.process(traffic.run(env, world, streams[build.STREAM_TRAFFIC]))

    policy = build.realignment_policy(scenario.realignment)
    runners = []
    schemes = build.schemes(scenario, store or ModelStore(), training_seed=scenario.training_seed_for(seed))
    for spec, scheme in schemes:
        runners.append(SchemeRunner(env=env, world=world, scheme=scheme, label=spec.display, timing=timing,
                                    policy=policy, aging=scenario.channel.aging,
                                    compute_s=build.compute_time_s(scenario, spec.display),
                                    rng=build.scheme_rng(seed, spec.display)))

    account = StateAccount(labels=[runner.label for runner in runners])

    def attribute(state: str | None, duration_s: float, cars: int) -> None:
        if state is not None:
            account.add(state, duration_s=duration_s, cars=cars, delivered=[r.delivered for r in runners])

    def world_tick():
        """Mobility tick: move the traffic, then let every scheme integrate and re-rate
        (on the new tick's samples). When the world follows the vehicles between ticks,
        it also steps at the instant a vehicle leaves (see :meth:`World.next_departure_s`)
        and at the instant a spawning mobility model puts one on the road
        (:meth:`World.next_entry_s`)."""
        ticks = 0
        while True:
            step, at_tick = tick, True
            if resolution.follows_between_ticks:
                # DEPARTURE_MARGIN_S past the predicted instant, so the rear is past the exit
                # (the front past the entry) beyond rounding
                departure = world.time + min(world.next_departure_s(), world.next_entry_s()) + DEPARTURE_MARGIN_S
                at_tick = (ticks + 1) * tick <= departure
                step = (ticks + 1) * tick - world.time if at_tick else departure - world.time
            state = mobility.state_label()
            cars = world.car_count() if state is not None else 0
            yield env.timeout(step)
            for runner in runners:
                runner.accrue()
            attribute(state, step, cars)
            world.advance(step)
            ticks += at_tick
            for runner in runners:
                runner.world_changed()

    env.process(world_tick())
    duration = scenario.simulation.duration_s
    env.run(until=duration)
    paper_t_coh = beam_coherence_time(layout.rsu_height_m, layout.coverage_angle_rad, kmh_to_mps(speed_kmh),
                                      radio.num_beams)
    rows, cycles = [], []
    training_seed = scenario.training_seed_for(seed)
    state, since = mobility.state_label(), duration - world.time
    cars = world.car_count() if state is not None else 0
    for runner in runners:
        runner.finish()  # close the window at `duration`: the last, unfinished cycle counts too
    if since > 0:
        attribute(state, since, cars)
    for runner in runners:
        rows.append(summarise(runner.label, runner.cycles, delivered=runner.delivered, serving_s=runner.serving_s,
                              aligning_s=runner.aligning_s, window_s=duration, speed_kmh=speed_kmh,
                              num_vehicles=num_vehicles, seed=seed, paper_t_coherence_s=paper_t_coh,
                              channel=scenario.channel.backend, aging=scenario.channel.aging))
        rows[-1].training_seed = training_seed
        for c in runner.cycles:
            cycles.append({"speed_kmh": speed_kmh, "num_vehicles": num_vehicles, "seed": seed, **asdict(c)})
    states = account.rows(speed_kmh=speed_kmh, num_vehicles=num_vehicles, seed=seed)
    return RunOutput(rows=rows, cycles=cycles, events=env.processed_events, wall_s=time.perf_counter() - wall_start,
                     simulated_s=duration, states=states)


__all__ = ["CountingEnvironment", "PointResult", "RunOutput", "StateAccount", "run_point", "summarise"]
