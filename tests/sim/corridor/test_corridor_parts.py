"""Device model, FLOP counting, configuration errors and the road evaluation bed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from corridor_toys import fixed, toy
from v2xsim.errors import ConfigError
from v2xsim.sim.corridor.config import corridor_from_dict, load_corridor
from v2xsim.sim.corridor.devices import Device, DeviceClass, draw_devices, training_flops_per_sample
from v2xsim.sim.corridor.run import Point, run_point
from v2xsim.training.vehicle import VehicleTrainingConfig, build_vehicle_model


def test_device_draws_follow_the_shares_and_the_seed():
    classes = [DeviceClass(name="slow", gflops=10.0, share=1.0), DeviceClass(name="fast", gflops=100.0, share=3.0)]
    first = draw_devices(4000, classes, spread=0.0, rng=np.random.default_rng(5))
    again = draw_devices(4000, classes, spread=0.0, rng=np.random.default_rng(5))
    assert first == again
    fast = sum(d.name == "fast" for d in first) / len(first)
    assert fast == pytest.approx(0.75, abs=0.03)
    assert {d.flops_per_s for d in first} == {10e9, 100e9}
    spread = draw_devices(4000, classes[:1], spread=0.5, rng=np.random.default_rng(5))
    logs = np.log([d.flops_per_s / 10e9 for d in spread])
    assert logs.std() == pytest.approx(0.5, rel=0.05) and abs(logs.mean()) < 0.03


def test_training_time_is_flops_times_samples_times_epochs_over_throughput():
    device = Device(name="x", flops_per_s=2e11)
    assert device.training_time_s(flops_per_sample=3e8, samples=50, epochs=4) == pytest.approx(3e8 * 200 / 2e11)


def test_a_measured_device_class_takes_its_time_per_sample():
    measured = DeviceClass(name="orin", sample_ms=4.0, share=1.0)
    (device,) = draw_devices(1, [measured], spread=0.0, rng=np.random.default_rng(0))
    assert device.training_time_s(flops_per_sample=1e12, samples=50, epochs=2) == pytest.approx(4e-3 * 100)
    with pytest.raises(ValueError, match="exactly one of gflops and sample_ms"):
        DeviceClass(name="both", gflops=10.0, sample_ms=4.0, share=1.0)
    with pytest.raises(ConfigError, match="exactly one of gflops and sample_ms"):
        corridor_from_dict({"devices": {"classes": [{"name": "none", "share": 1.0}]}})


def test_a_measured_device_sets_the_compute_time_of_the_timeline():
    from corridor_toys import BACKHAUL_BPS, BACKHAUL_LATENCY_S, DOWNLINK_BPS

    scenario = toy(devices={"classes": [{"name": "measured", "sample_ms": 5.0, "share": 1.0}], "spread": 0.0})
    engine = run_point(Point(scenario), quiet=True, learner_factory=fixed())["engine"]
    compute = [e for e in engine.events if e["event"] == "compute"]
    requests = [e for e in engine.events if e["event"] == "upload request"]
    assert requests[0]["time_s"] - compute[0]["time_s"] == pytest.approx(5e-3 * 100, abs=1e-9)
    backhaul = 8e6 / BACKHAUL_BPS + BACKHAUL_LATENCY_S
    assert compute[0]["time_s"] == pytest.approx(backhaul + 8e6 / DOWNLINK_BPS, abs=1e-9)


def test_the_flop_count_of_a_pruned_network_is_smaller():
    model = build_vehicle_model(VehicleTrainingConfig(hidden=32, features={"gps": 16, "image": 16, "lidar": 16}), 34)
    inputs = {"gps": torch.zeros(2, 2), "image": torch.zeros(2, 90, 160, 3, dtype=torch.uint8),
              "lidar": torch.zeros(2, 20, 20, 20, dtype=torch.int8)}
    everything = training_flops_per_sample(model, inputs, available=torch.ones(2, 3, dtype=torch.bool))
    gps_only = training_flops_per_sample(model, {"gps": inputs["gps"]},
                                         available=torch.tensor([[True, False, False]] * 2))
    assert 0 < gps_only < everything
    assert training_flops_per_sample(model, inputs, available=torch.ones(2, 3, dtype=torch.bool)) == everything


@pytest.mark.parametrize("sections, message", [
    ({"alignment": {"scheme": "nope"}}, "alignment.scheme: unknown scheme 'nope'; valid: "),
    ({"fl": {"strategy": {"name": "nope"}}}, "fl.strategy.name: unknown FL strategy 'nope'; valid: "),
    ({"fl": {"deadline_s": -1}}, "fl.deadline_s"),
    ({"fl": {"warm_start": True}, "evaluation": {"enabled": False}}, "fl.warm_start needs evaluation.enabled"),
    ({"sweep": {"metric": "loss"}}, "sweep.metric"),
    ({"rsus": []}, "rsus"),
    ({"duration_s": float("inf")}, "duration_s"),
    ({"seed": -1}, "seed"),
    ({"sweep": {"vehicles": [0]}}, "sweep.vehicles"),
    ({"devices": {"spread": 50.0}}, "devices.spread"),
    ({"fl": {"min_samples": 300, "max_samples": 200}}, "no car could ever take part"),
])
def test_bad_corridor_files_are_refused_naming_the_key(sections, message):
    with pytest.raises(ConfigError, match=message.replace("(", "\\(").replace("'", "'")):
        corridor_from_dict(sections)


@pytest.mark.parametrize("options, message", [
    ({"alignment": {"scheme": "gba"}}, "aligns from on-vehicle sensing"),
    ({"fl": {"strategy": {"name": "centralized"}}}, "pools every car's raw data"),
    ({"fl": {"strategy": {"name": "da"}}}, "'da' needs evaluation.enabled"),
    ({"traffic": {"positions_m": [1.0]}}, "traffic.positions_m: 1 positions for 2 cars"),
    ({"fl": {"strategy": {"name": "flash", "options": {"policy": [1.0]}}}}, "fl.strategy: FL strategy .flash.: policy must be 4"),
])
def test_impossible_runs_are_refused_before_they_start(options, message):
    with pytest.raises(ConfigError, match=message):
        run_point(Point(toy(**options)), quiet=True, learner_factory=fixed())


def test_files_of_other_kinds_name_the_right_command(tmp_path):
    from v2xsim.config import load_scenario

    corridor = tmp_path / "c.toml"
    corridor.write_text('experiment = "fl_road"\n')
    with pytest.raises(ConfigError, match="v2xsim corridor"):
        load_scenario(corridor)
    scenario = tmp_path / "s.toml"
    scenario.write_text('name = "x"\n')
    with pytest.raises(ConfigError, match="not a corridor FL file"):
        load_corridor(scenario)


def test_cli_bad_corridor_file_exits_2_with_one_line(tmp_path, capsys):
    from v2xsim.cli import main

    bad = tmp_path / "c.toml"
    bad.write_text('experiment = "fl_road"\n[fl]\nrounds = 0\n')
    assert main(["corridor", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fl.rounds" in err[0]


def test_the_road_bed_is_a_survey_of_the_corridor_and_scores_models():
    """The survey records every 2nd alignment of a fleet of its own; the metrics of a model
    are finite, deterministic, and the bed does not depend on the run's seed."""
    from v2xsim.sim.corridor.evaluation import evaluate_on_road
    from v2xsim.sim.corridor.run import prepare_learning, survey

    scenario = corridor_from_dict({
        "corridor": {"length_m": 200.0}, "rsus": [{"x_m": 50.0}, {"x_m": 120.0}],
        "traffic": {"vehicles": 6, "speed_kmh": 60.0},
        "evaluation": {"survey_s": 3.0, "record_every": 2, "rsu": {"hidden": 16, "steps": 20}},
        "model": {"hidden": 32, "features": {"gps": 16, "image": 16, "lidar": 16}}})
    first, second = survey(scenario), survey(scenario)
    assert len(first.rows) == len(second.rows) > 0
    assert np.array_equal(first.sensor_set().feedback, second.sensor_set().feedback)
    assert all(len(g.rows) == len(g.channels) for g in first.groups)
    assert sum(len(g.rows) for g in first.groups) == len(first.rows)
    a = prepare_learning(Point(scenario, seed=0), store=None, quiet=True)
    b = prepare_learning(Point(scenario, seed=1), store=None, quiet=True)
    assert a.evaluate is b.evaluate  # one bed per scenario
    c = prepare_learning(Point(scenario, vehicles=9), store=None, quiet=True)
    assert (a.server.num_vehicles, c.server.num_vehicles) == (6, 9)  # DA's K is each run's fleet
    assert not all(torch.equal(x, y) for x, y in zip(a.initial_model.state_dict().values(),
                                                       b.initial_model.state_dict().values()))
    metrics = a.evaluate(a.initial_model)
    assert metrics == a.evaluate(a.initial_model)
    assert all(np.isfinite(v) for v in metrics.values() if v is not None)
    assert 0.0 <= metrics["bit_accuracy"] <= 1.0 and metrics["sum_rate"] >= 0.0
    assert evaluate_on_road  # the function the bed's evaluate calls


def test_warm_start_gives_every_car_flash_like_samples_before_it_drives():
    from v2xsim.sim.corridor.learning import Learner
    from v2xsim.sim.corridor.run import prepare_learning

    scenario = corridor_from_dict({
        "corridor": {"length_m": 200.0}, "rsus": [{"x_m": 50.0}], "traffic": {"vehicles": 3},
        "fl": {"warm_start": True},
        "evaluation": {"survey_s": 2.0, "rsu": {"hidden": 16, "steps": 20},
                       "data": {"num_episodes": 2, "trials_per_category": 1, "samples_per_trial": 2}},
        "model": {"hidden": 32, "features": {"gps": 16, "image": 16, "lidar": 16}}})
    preparation = prepare_learning(Point(scenario), store=None, quiet=True)
    assert preparation.warm is not None and len(preparation.warm) == 2
    learner = Learner(scenario=scenario, preparation=preparation, available=np.ones((3, 3), bool), seed=0)
    sizes = [learner.num_samples(car) for car in range(3)]
    assert sizes == [len(preparation.warm[0]), len(preparation.warm[1]), len(preparation.warm[0])]
    assert min(sizes) > 0


def test_evaluating_the_global_model_does_not_change_where_new_clients_start():
    from v2xsim.sim.corridor.learning import Learner, Preparation

    scenario = corridor_from_dict({"evaluation": {"enabled": False}, "traffic": {"vehicles": 2}})
    model = build_vehicle_model(VehicleTrainingConfig(hidden=16, features={"gps": 8, "image": 8, "lidar": 8}), 34)
    calls = []
    learner = Learner(scenario=scenario, preparation=Preparation(initial_model=model, evaluate=calls.append),
                      available=np.ones((2, 3), bool), seed=0)
    learner.global_state = {k: v + 1.0 if v.is_floating_point() else v for k, v in learner.global_state.items()}
    learner.evaluate()
    assert calls and calls[0] is learner.model
    for car in range(2):
        learner.data[car].add(gps=np.zeros(2), image=np.zeros((90, 160, 3), np.uint8),
                              lidar=np.zeros((20, 20, 20), np.int8), rss=np.zeros(34), feedback=np.zeros(34))
    start = learner.client(0).model.state_dict()
    assert all(torch.equal(start[k], v) for k, v in model.state_dict().items())
