"""Coverage, handover and the shared back channel of the corridor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from corridor_toys import BACKCHANNEL_BPS, HALF_COVERAGE_M, events_of, fixed, toy
from v2xsim.errors import ConfigError
from v2xsim.sim.corridor.road import Corridor, place_cars
from v2xsim.sim.corridor.run import Point, run_point

NS = 1e-9


@pytest.mark.parametrize("loop", [False, True])
def test_crossings_are_exact_and_ordered(loop):
    corridor = Corridor(length_m=300.0, loop=loop, coverage=[(10.0, 50.0), (45.0, 90.0), (200.0, 240.0)])
    crossings = []
    for crossing in corridor.crossings(20.0, 7.0):
        crossings.append(crossing)
        if len(crossings) == 12:
            break
    times = [c.time_s for c in crossings]
    assert times == sorted(times)
    assert [(c.rsu, c.kind) for c in crossings[:6]] == [(1, "enter"), (0, "exit"), (1, "exit"), (2, "enter"),
                                                        (2, "exit"), (0, "enter")][:6 if loop else 5]
    assert crossings[0].time_s == (45.0 - 20.0) / 7.0
    if loop:
        assert crossings[5].time_s == (10.0 + 300.0 - 20.0) / 7.0  # next lap
    else:
        assert len(crossings) == 5


def test_coverage_outside_the_road_and_crowded_lanes_are_refused():
    with pytest.raises(ValueError, match="rsus\\[0\\]"):
        Corridor(length_m=100.0, loop=True, coverage=[(80.0, 120.0)])
    with pytest.raises(ValueError, match="traffic.vehicles"):
        place_cars(count=12, length_m=100.0, lanes=1, min_gap_m=10.0, rng=np.random.default_rng(0))
    x0, lane = place_cars(count=10, length_m=100.0, lanes=1, min_gap_m=10.0, rng=np.random.default_rng(0))
    gaps = np.diff(np.sort(x0))
    assert (gaps >= 10.0 - 1e-9).all() and np.sort(x0)[0] + 100.0 - np.sort(x0)[-1] >= 10.0 - 1e-9
    with pytest.raises(ConfigError, match="rsus\\[1\\]"):
        run_point(Point(toy(rsus=[{"x_m": 100.0}, {"x_m": 995.0}])), quiet=True, learner_factory=fixed())


def test_handover_moves_the_car_and_its_upload_to_the_next_rsu():
    """Two overlapping RSUs (poles 30 m apart): the car is served by RSU 0 until it leaves
    RSU 0's coverage (while it trains), then handed over to RSU 1, whose back channel
    carries its upload. A second round keeps the run going past the exit."""
    speed = 20.0
    start = 100.0 + HALF_COVERAGE_M - 0.5 * speed  # leaves RSU 0 at 0.5 s
    scenario = toy(rsus=[{"x_m": 100.0}, {"x_m": 130.0}], fl={"rounds": 2},
                   traffic={"vehicles": 1, "speed_kmh": speed * 3.6, "positions_m": [start]})
    engine = run_point(Point(scenario), quiet=True, learner_factory=fixed())["engine"]
    handover = events_of(engine, "handover")
    assert len(handover) == 1 and handover[0]["rsu"] == 1 and handover[0]["detail"] == "from RSU 0"
    assert handover[0]["time_s"] == pytest.approx((100.0 + HALF_COVERAGE_M - start) / speed, abs=NS)
    assert events_of(engine, "download")[0]["rsu"] == 0
    upload = events_of(engine, "upload request")[0]
    assert upload["rsu"] == 1 and upload["time_s"] > handover[0]["time_s"]
    exit_event = events_of(engine, "exit")[0]
    assert exit_event["rsu"] == 1
    assert exit_event["time_s"] == pytest.approx((130.0 + HALF_COVERAGE_M - start) / speed, abs=NS)
    assert engine.serving[0] is None
    assert engine.rounds[0]["completed"] == 1


def test_a_car_between_rsus_uploads_when_it_reaches_the_next_one():
    """Out of coverage when its training ends, the car waits and uploads on entering the
    next RSU's coverage (local training while driving, upload at the next RSU)."""
    speed = 20.0
    start = 110.0
    scenario = toy(rsus=[{"x_m": 100.0}, {"x_m": 200.0}],
                   traffic={"vehicles": 1, "speed_kmh": speed * 3.6, "positions_m": [start]},
                   fl={"deadline_s": 10.0})
    engine = run_point(Point(scenario), quiet=True, learner_factory=fixed())["engine"]
    enters = (200.0 - HALF_COVERAGE_M - start) / speed
    upload = events_of(engine, "upload request")[0]
    assert upload["rsu"] == 1 and upload["time_s"] == pytest.approx(enters, abs=NS)
    assert engine.rounds[0]["completed"] == 1


def _priority_point(priority: bool):
    """Two cars with a sweep scheme (34 feedback bits each per alignment), one of them
    uploading a 50 MB model (224 ms of back channel)."""
    scenario = toy(alignment={"scheme": "wmmse_cb", "mode": "full"}, duration_s=1.5,
                   traffic={"positions_m": [85.0, 86.0]}, fl={"deadline_s": 5.0, "priority": priority})
    return run_point(Point(scenario), quiet=True, learner_factory=fixed(bytes_up=50_000_000))


def test_feedback_waits_behind_a_model_upload_unless_it_has_priority():
    plain, prioritised = _priority_point(False), _priority_point(True)
    assert 8 * 50_000_000 / BACKCHANNEL_BPS > 0.2
    assert plain["feedback_waits_behind_upload"] > 0
    assert plain["mean_feedback_wait_s"] > 1e-3
    assert prioritised["feedback_waits_behind_upload"] == 0
    assert prioritised["engine"].rounds[0]["preemptions"] > 0
    # every message still waits behind the other car's feedback at most
    assert prioritised["mean_feedback_wait_s"] < 1e-6
    # the pre-empted uploads take the same airtime in all
    up = [p["engine"].rounds[0]["airtime_up_s"] for p in (plain, prioritised)]
    assert up[0] == pytest.approx(up[1], rel=1e-9)
    assert prioritised["effective_sum_rate"] > plain["effective_sum_rate"]
    assert math.isfinite(plain["effective_sum_rate"])


def test_cars_past_the_end_of_an_open_road_are_gone():
    import simpy

    from v2xsim.sim.corridor.run import build_engine

    scenario = toy(traffic={"speed_kmh": 72.0, "positions_m": [990.0, 85.0]})
    env = simpy.Environment()
    engine = build_engine(Point(scenario), env, learner_factory=fixed())
    positions, bodies = engine._scene(0, [1], 1.0)  # car 0 is at 1010 m: off the road
    assert set(bodies.owner.tolist()) == {1}
    assert positions[0, 0] == pytest.approx(85.0 + 20.0 - 100.0)
