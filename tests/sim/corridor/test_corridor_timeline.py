"""The round timeline of the corridor engine, computed by hand: model distribution over
the backhaul, download airtime, compute time, upload queueing on the back channel, the
deadline, and failures reaching the strategy."""

from __future__ import annotations

import pytest
import torch

from corridor_toys import (BACKCHANNEL_BPS, BACKHAUL_BPS, BACKHAUL_LATENCY_S, DOWNLINK_BPS, HALF_COVERAGE_M,
                           events_of, fixed, toy)
from v2xsim.fl.strategies import FedAvg
from v2xsim.registry import FL_STRATEGY
from v2xsim.sim.corridor.run import Point, run_point

NS = 1e-9
BITS = 8 * 1_000_000
BACKHAUL_S = BITS / BACKHAUL_BPS + BACKHAUL_LATENCY_S
DOWNLOAD_S = BITS / DOWNLINK_BPS
UPLOAD_S = BITS / BACKCHANNEL_BPS
COMPUTE_S = 1e9 * 100 * 1 / 100e9  # FLOPs per sample x samples x epochs / FLOP/s


class Recording(FedAvg):
    """FedAvg that keeps what every aggregation received."""

    seen: list = []

    def aggregate_fit(self, server_round, results, failures, current):
        Recording.seen.append(([r.client for r in results], [(f.client, f.reason) for f in failures]))
        return super().aggregate_fit(server_round, results, failures, current)


@pytest.fixture
def recording():
    Recording.seen = []
    FL_STRATEGY.register("recording")(Recording)
    yield Recording
    FL_STRATEGY.unregister("recording")


def test_two_car_round_matches_the_hand_computed_timeline(recording):
    """Both cars get the model (backhaul, then their own downlink), train 1 s, ask for the
    back channel at the same instant; car 0 uploads first, car 1 queues behind it and is
    still uploading at the deadline."""
    uploads_begin = BACKHAUL_S + DOWNLOAD_S + COMPUTE_S
    deadline = uploads_begin + UPLOAD_S + BACKHAUL_S + 1e-3  # car 1's upload would end at + 2 x UPLOAD_S
    assert uploads_begin + 2 * UPLOAD_S > deadline
    scenario = toy(fl={"deadline_s": deadline, "strategy": {"name": "recording"}})
    summary = run_point(Point(scenario), quiet=True, learner_factory=fixed())
    engine = summary.pop("engine")
    times = {(e["event"], e.get("car")): e["time_s"] for e in engine.events}
    expected = {
        ("round open", None): 0.0,
        ("selected", 0): 0.0, ("selected", 1): 0.0,
        ("download", 0): BACKHAUL_S, ("download", 1): BACKHAUL_S,
        ("compute", 0): BACKHAUL_S + DOWNLOAD_S, ("compute", 1): BACKHAUL_S + DOWNLOAD_S,
        ("upload request", 0): uploads_begin, ("upload request", 1): uploads_begin,
        ("uploaded", 0): uploads_begin + UPLOAD_S,
        ("result", 0): uploads_begin + UPLOAD_S + BACKHAUL_S,
        ("failure", 1): deadline,
        ("round close", None): deadline,
    }
    for key, value in expected.items():
        assert times[key] == pytest.approx(value, abs=NS), key
    assert ("uploaded", 1) not in times
    row = summary_row(summary, engine)
    assert row["completed"] == 1 and row["failed"] == 1
    assert row["upload_wait_s"] == pytest.approx(UPLOAD_S, abs=NS)  # car 1 queued behind car 0
    assert row["airtime_down_s"] == pytest.approx(2 * DOWNLOAD_S, abs=NS)
    assert row["compute_s"] == pytest.approx(2 * COMPUTE_S, abs=NS)
    assert recording.seen == [([0], [(1, "missed the deadline (upload)")])]
    assert torch.equal(engine.learner.global_state["w"], torch.ones(4))  # car 0's result only


def summary_row(summary, engine):
    assert summary["rounds_done"] == len(engine.rounds)
    return engine.rounds[-1]


def test_a_car_that_leaves_coverage_mid_upload_is_a_failure_given_to_aggregate(recording):
    """Car 0 drives out of the RSU's coverage halfway through its upload."""
    speed = 10.0  # m/s
    exit_x = 100.0 + HALF_COVERAGE_M
    uploads_begin = BACKHAUL_S + DOWNLOAD_S + COMPUTE_S
    leaves = uploads_begin + 0.5 * UPLOAD_S
    start = exit_x - speed * leaves
    scenario = toy(traffic={"speed_kmh": speed * 3.6, "positions_m": [start, 95.0]},
                   fl={"strategy": {"name": "recording"}})
    summary = run_point(Point(scenario), quiet=True, learner_factory=fixed())
    engine = summary.pop("engine")
    exit_event = events_of(engine, "exit")[0]
    assert exit_event["car"] == 0 and exit_event["time_s"] == pytest.approx(leaves, abs=NS)
    failure = events_of(engine, "failure")[0]
    assert (failure["car"], failure["detail"]) == (0, "left coverage during upload")
    assert failure["time_s"] == pytest.approx(leaves, abs=NS)
    # the back channel is free again at once: car 1 (queued) uploads from the exit on
    assert [e["time_s"] for e in events_of(engine, "uploaded") if e["car"] == 1] == \
        [pytest.approx(leaves + UPLOAD_S, abs=NS)]
    assert recording.seen == [([1], [(0, "left coverage during upload")])]


def test_flower_fault_tolerant_fedavg_rejects_a_round_below_its_completion_rate():
    pytest.importorskip("flwr")
    speed = 10.0
    leaves = BACKHAUL_S + DOWNLOAD_S + COMPUTE_S + 0.5 * UPLOAD_S
    start = 100.0 + HALF_COVERAGE_M - speed * leaves
    options = {"strategy": "FaultTolerantFedAvg",
               "options": {"min_completion_rate_fit": 0.75, "min_fit_clients": 1, "min_available_clients": 1}}
    scenario = toy(traffic={"speed_kmh": speed * 3.6, "positions_m": [start, 95.0]},
                   fl={"strategy": {"name": "flower", "options": options}})
    summary = run_point(Point(scenario), quiet=True, learner_factory=fixed())
    engine = summary.pop("engine")
    row = engine.rounds[0]
    assert (row["completed"], row["failed"], row["rejected"]) == (1, 1, 1)  # 1 of 2 < 0.75
    assert torch.equal(engine.learner.global_state["w"], torch.zeros(4))  # the global model stayed
    relaxed = {**options, "options": {**options["options"], "min_completion_rate_fit": 0.5}}
    scenario = toy(traffic={"speed_kmh": speed * 3.6, "positions_m": [start, 95.0]},
                   fl={"strategy": {"name": "flower", "options": relaxed}})
    engine = run_point(Point(scenario), quiet=True, learner_factory=fixed())["engine"]
    assert engine.rounds[0]["rejected"] == 0
    assert torch.equal(engine.learner.global_state["w"], torch.full((4,), 2.0))  # car 1's result


def test_a_round_waits_for_an_eligible_car_and_times_from_the_selection():
    """Nobody is covered at first: the round opens at 0, selects when car 0 enters."""
    speed = 10.0
    entry_x = 100.0 - HALF_COVERAGE_M
    scenario = toy(traffic={"vehicles": 1, "speed_kmh": speed * 3.6, "positions_m": [entry_x - 20.0]},
                   fl={"deadline_s": 3.0})
    engine = run_point(Point(scenario), quiet=True, learner_factory=fixed())["engine"]
    enters = 20.0 / speed
    assert events_of(engine, "enter")[0]["time_s"] == pytest.approx(enters, abs=NS)
    assert events_of(engine, "selected")[0]["time_s"] == pytest.approx(enters, abs=NS)
    assert engine.rounds[0]["open_s"] == 0.0
    assert engine.rounds[0]["deadline_s"] == pytest.approx(enters + 3.0, abs=NS)


def test_a_download_cut_by_leaving_coverage_counts_only_its_airtime():
    speed = 10.0
    leaves = BACKHAUL_S + 0.5 * DOWNLOAD_S
    start = 100.0 + HALF_COVERAGE_M - speed * leaves
    scenario = toy(traffic={"vehicles": 1, "speed_kmh": speed * 3.6, "positions_m": [start]})
    engine = run_point(Point(scenario), quiet=True, learner_factory=fixed())["engine"]
    failure = events_of(engine, "failure")[0]
    assert failure["detail"] == "left coverage during download"
    row = engine.rounds[0]
    assert row["airtime_down_s"] == pytest.approx(0.5 * DOWNLOAD_S, abs=NS)
    assert row["bytes_down"] == 500_000  # half of the 1 MB
    assert engine._downloads[0] == [[pytest.approx(BACKHAUL_S, abs=NS), pytest.approx(leaves, abs=NS)]]


def test_async_deadlines_fire_once_and_time_moves_on():
    """A car whose training outlasts the deadline fails at exactly its deadline, also when
    its dispatch time is an awkward float; the clock then runs to the horizon."""
    speed = 10.0
    entry = 100.0 - HALF_COVERAGE_M
    start = entry - speed * 0.1111111
    scenario = toy(duration_s=4.0, traffic={"vehicles": 1, "speed_kmh": speed * 3.6, "positions_m": [start]},
                   fl={"mode": "async", "deadline_s": 2.0, "buffer_size": 1, "concurrency": 1})
    summary = run_point(Point(scenario), quiet=True, learner_factory=fixed(flops=5e9))  # 5 s of training
    engine = summary.pop("engine")
    selected = events_of(engine, "selected")
    failures = events_of(engine, "failure")
    assert failures[0]["detail"] == "missed the deadline (compute)"
    assert failures[0]["time_s"] == pytest.approx(selected[0]["time_s"] + 2.0, abs=NS)
    assert summary["simulated_s"] == pytest.approx(4.0)
    assert len(selected) == 2  # re-dispatched after its failure; fails again after the horizon


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_strategy_that_selects_nobody_keeps_the_round_open(mode):
    """Flower's FedAvg samples nobody below two available clients: the round waits for a
    second car instead of closing empty (sync), and the dispatcher does not spin (async)."""
    pytest.importorskip("flwr")
    speed = 10.0
    entry = 100.0 - HALF_COVERAGE_M
    # car 0 is covered until 3.33 s, car 1 from 3 s on
    scenario = toy(duration_s=6.0, traffic={"speed_kmh": speed * 3.6, "positions_m": [84.0, entry - 30.0]},
                   fl={"mode": mode, "strategy": {"name": "flower", "options": {"strategy": "FedAvg"}},
                       "deadline_s": 1.5, "buffer_size": 1, "concurrency": 2})
    engine = run_point(Point(scenario), quiet=True, learner_factory=fixed())["engine"]
    second_enters = 30.0 / speed
    selected = events_of(engine, "selected")
    assert {e["car"] for e in selected[:2]} == {0, 1}
    assert all(e["time_s"] == pytest.approx(second_enters, abs=NS) for e in selected[:2])
    assert engine.rounds and engine.rounds[0]["rejected"] == 0
    assert engine.rounds[0]["completed"] == 1  # car 1; car 0 left coverage before it could upload
    assert len(engine.instructions_log) < 10  # asked again only when the eligible cars changed


def test_a_download_cut_by_the_deadline_counts_its_airtime_in_the_round():
    deadline = BACKHAUL_S + 0.5 * DOWNLOAD_S
    scenario = toy(traffic={"vehicles": 1, "positions_m": [95.0]}, fl={"deadline_s": deadline})
    engine = run_point(Point(scenario), quiet=True, learner_factory=fixed())["engine"]
    row = engine.rounds[0]
    assert row["failure_reasons"] == "missed the deadline: 1"
    assert events_of(engine, "failure")[0]["detail"] == "missed the deadline (download)"
    assert row["airtime_down_s"] == pytest.approx(0.5 * DOWNLOAD_S, abs=NS)
    assert row["bytes_down"] == 500_000


def test_async_with_fewer_slots_than_a_flower_minimum_still_trains():
    """Flower's FedAvg wants two available clients; with one free slot the strategy still
    sees both eligible cars and one of them is dispatched."""
    pytest.importorskip("flwr")
    scenario = toy(duration_s=3.0, traffic={"positions_m": [90.0, 95.0]},
                   fl={"mode": "async", "strategy": {"name": "flower", "options": {"strategy": "FedAvg"}},
                       "buffer_size": 1, "concurrency": 1})
    engine = run_point(Point(scenario), quiet=True, learner_factory=fixed())["engine"]
    first = events_of(engine, "selected")[0]
    assert first["time_s"] == 0.0
    assert len([e for e in engine.events if e["event"] == "selected" and e["time_s"] == 0.0]) == 1
    assert engine.rounds and engine.rounds[0]["completed"] == 1
