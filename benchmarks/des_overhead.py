"""Discrete-event overhead of the v2xsim engine, measured side by side with bare SimPy.

1. A bare SimPy loop: one process yielding N timeouts.
2. A zero-work SimPy replica of the engine's event mix (1 ms tick process - the engine's
   world process also steps when a vehicle leaves, a few times per second -, per-scheme
   alignment processes with 34-slot sweeps, one feedback process per vehicle queueing on
   a capacity-1 resource, ``all_of``, compute and data-phase timeouts): the ceiling any
   engine with this structure can reach, since process starts, resource requests and
   condition events cost SimPy more than a plain timeout.
3. The v2xsim headline scenario point (K = 10, 60 km/h, three schemes): total events/s, and
   events/s of the engine alone, i.e. with the wall time spent inside the physics (channel
   snapshots, sweep measurements, rate evaluations, mobility steps and scheme solves,
   timed around each call) taken out.
4. Simulated seconds per wall second of the whole headline sweep (serial, one process).

Run: ``python benchmarks/des_overhead.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

import simpy

from v2xsim.config import load_scenario
from v2xsim.sim import engine

ROOT = Path(__file__).resolve().parent.parent


def bare_simpy(num_events: int) -> float:
    """Events per second of a bare SimPy process doing ``num_events`` timeouts."""
    env = simpy.Environment()

    def loop():
        for _ in range(num_events):
            yield env.timeout(1e-3)

    env.process(loop())
    start = time.perf_counter()
    env.run()
    return num_events / (time.perf_counter() - start)


def zero_work_replica(duration_s: float, *, num_vehicles: int = 10, num_beams: int = 34,
                      period_s: float = 0.061, schemes: tuple[str, ...] = ("genie", "sweep", "sweep")) -> tuple[int, float]:
    """(events, events/s) of the engine's event structure with no work between events."""
    env = engine.CountingEnvironment()

    def tick():
        while True:
            yield env.timeout(1e-3)

    def send(channel):
        with channel.request() as request:
            yield request
            yield env.timeout(2e-7)

    def sweep():
        for _ in range(num_beams):
            yield env.timeout(6e-4)

    def alignments(acquisition: str):
        channel = simpy.Resource(env, capacity=1)
        while True:
            start = env.now
            if acquisition == "sweep":
                yield env.process(sweep())
            yield env.all_of([env.process(send(channel)) for _ in range(num_vehicles)])
            yield env.timeout(1e-4)
            yield env.timeout(max(start + period_s - env.now, 0.0))

    env.process(tick())
    for acquisition in schemes:
        env.process(alignments(acquisition))
    start = time.perf_counter()
    env.run(until=duration_s)
    return env.processed_events, env.processed_events / (time.perf_counter() - start)


class PhysicsTimer:
    """Wraps a callable and adds its wall time to a shared total (outermost calls only, so
    a physics call made inside another is not counted twice)."""

    total = 0.0
    depth = 0

    def __init__(self, function):
        self.function = function

    def __call__(self, *args, **kwargs):
        if PhysicsTimer.depth:
            return self.function(*args, **kwargs)
        PhysicsTimer.depth += 1
        start = time.perf_counter()
        try:
            return self.function(*args, **kwargs)
        finally:
            PhysicsTimer.total += time.perf_counter() - start
            PhysicsTimer.depth -= 1


def timed_point(scenario, speed_kmh: float, num_vehicles: int) -> tuple[int, float, float]:
    """(events, wall s, physics s) of one point with every physics call timed: channel
    snapshots and the channel samples of a tick, sweep measurements, rate evaluations (one
    instant and all sub-steps of a tick), mobility steps and scheme solves."""
    from v2xsim.mobility.base import MobilityModel
    from v2xsim.registry import MOBILITY, SCHEME
    from v2xsim.sim.rsu import SchemeRunner
    from v2xsim.sim.world import World

    targets = [(World, "snapshot"), (World, "samples"), (SchemeRunner, "_rate_of"), (SchemeRunner, "_rates_along"),
               (SchemeRunner, "_measure_beam")]
    targets += [(SCHEME.get(name), "allocate") for name in SCHEME.names()]
    targets += [(MOBILITY.get(name), "step") for name in MOBILITY.names()]
    originals = {target: getattr(*target) for target in targets if target[0] is not MobilityModel}

    def make(function):
        timer = PhysicsTimer(function)
        return lambda self, *a, **k: timer(self, *a, **k)

    for (cls, method), function in originals.items():
        setattr(cls, method, make(function))
    PhysicsTimer.total = 0.0
    try:
        start = time.perf_counter()
        output = engine.run_point(scenario, speed_kmh=speed_kmh, num_vehicles=num_vehicles, seed=0)
        wall = time.perf_counter() - start
    finally:
        for (cls, method), function in originals.items():
            setattr(cls, method, function)
    return output.events, wall, PhysicsTimer.total


def main() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "speed_sweep.toml",
                             ['schemes=[{name="oracle"}, {name="zf_sweep"}, {name="wmmse_ce"}]'])
    engine.run_point(scenario, speed_kmh=60, num_vehicles=10, seed=0)  # warm-up (imports, caches)
    events, wall, physics = timed_point(scenario, 60, 10)
    bare = bare_simpy(events)
    replica_events, replica = zero_work_replica(scenario.simulation.duration_s)
    total_rate = events / wall
    engine_rate = events / max(wall - physics, 1e-9)
    print(f"events in one headline point (60 km/h, K=10, {scenario.simulation.duration_s:g} s): {events}")
    print(f"bare SimPy loop:                {bare:12,.0f} events/s")
    print(f"zero-work replica of the engine's event mix ({replica_events} events): {replica:,.0f} events/s   "
          f"ratio {replica / bare:.3f} (ceiling for this event structure)")
    print(f"v2xsim, everything:             {total_rate:12,.0f} events/s   ratio {total_rate / bare:.3f}")
    print(f"v2xsim, engine without physics: {engine_rate:12,.0f} events/s   ratio {engine_rate / bare:.3f}"
          f"   (physics = {100 * physics / wall:.0f} % of wall time)")
    start = time.perf_counter()
    simulated = 0.0
    for speed, count, seed in scenario.points():
        simulated += engine.run_point(scenario, speed_kmh=speed, num_vehicles=count, seed=seed).simulated_s
    wall = time.perf_counter() - start
    print(f"headline sweep, one process: {simulated:.1f} simulated s in {wall:.1f} wall s "
          f"= {simulated / wall:.2f} simulated s per wall s")


if __name__ == "__main__":
    main()
