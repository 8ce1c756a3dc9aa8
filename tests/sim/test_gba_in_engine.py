"""Scheme ``gba`` inside the co-simulation (tiny RSU training, cached in a temp dir)."""

import pytest

from v2xsim.sim.engine import run_point

TINY = {"hidden": 16, "steps": 60, "batch_size": 64,
        "data": {"num_vehicles": [1, 2, 3, 4], "samples_per_k": 40}}
TINY_VEHICLE = {"features": {"gps": 16, "image": 16, "lidar": 16}, "hidden": 16, "image_width": 4, "epochs": 2,
                "batch_size": 32}
TINY_DATA = {"num_episodes": 3, "trials_per_category": 2, "samples_per_trial": 3}


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("V2XSIM_CACHE", str(tmp_path_factory.getbasetemp() / "v2xsim-cache"))


@pytest.mark.parametrize("feedback", ["ground_truth", "error_model"])
def test_gba_aligns_in_sensing_time_plus_34_bits_each(scenario_factory, feedback):
    scenario = scenario_factory(schemes=[{"name": "gba", "options": {"feedback": feedback, "training": TINY}},
                                         {"name": "zf_sweep"}])
    output = run_point(scenario, speed_kmh=250, num_vehicles=4, seed=0)
    rows = {row.scheme: row for row in output.rows}
    for cycle in output.cycles:
        if cycle["scheme"] == "gba":
            assert cycle["delay_s"] == pytest.approx(0.91e-3 + cycle["reporting"] * 34 / (442 / 247e-9), rel=1e-9)
    # at 250 km/h the 20 ms sweep outlives the 14.7 ms coherence time; 0.9 ms sensing does not
    assert rows["zf_sweep"].effective_sum_rate == 0.0
    assert rows["gba"].effective_sum_rate > 0.0
    assert rows["gba"].effective_sum_rate == pytest.approx(
        rows["gba"].sum_rate * (1 - rows["gba"].t_delay_s / rows["gba"].t_coherence_s), rel=0.2)


def test_gba_predicts_feedback_from_the_cars_own_sensors(scenario_factory):
    options = {"feedback": "predicted", "training": TINY, "vehicle_training": TINY_VEHICLE, "data": TINY_DATA,
               "sensors": ["gps", "lidar"]}
    scenario = scenario_factory(schemes=[{"name": "gba", "options": options}])
    output = run_point(scenario, speed_kmh=90, num_vehicles=3, seed=0)
    (row,) = output.rows
    assert row.scheme == "gba" and row.effective_sum_rate >= 0.0
    cycles = [c for c in output.cycles if c["scheme"] == "gba"]
    assert len(cycles) > 3
    again = run_point(scenario, speed_kmh=90, num_vehicles=3, seed=0)
    assert again.rows == output.rows  # sensing noise and prediction are seeded


def test_gba_predicted_sees_what_the_world_shows(scenario_factory, monkeypatch):
    """The runner hands every car's sensor readings of the alignment's snapshot to the scheme."""
    from v2xsim.schemes.gba import GBA

    seen = []
    original = GBA.predict_feedback

    def spy(self, sensors, rng):
        seen.append(sensors)
        return original(self, sensors, rng)

    monkeypatch.setattr(GBA, "predict_feedback", spy)
    options = {"training": TINY, "vehicle_training": TINY_VEHICLE, "data": TINY_DATA}
    scenario = scenario_factory(schemes=[{"name": "gba", "options": options}])
    run_point(scenario, speed_kmh=60, num_vehicles=3, seed=0)
    assert seen
    first = seen[0]
    assert first["image"].shape == (len(first["ids"]), 90, 160, 3)
    assert first["lidar"].shape == (len(first["ids"]), 20, 20, 20)
    # every car sees itself (-2) and the RSU (-1) in its LiDAR grid
    assert ((first["lidar"] == -2).reshape(len(first["ids"]), -1).sum(axis=1) == 1).all()


def test_gba_rejects_unknown_options(scenario_factory):
    from v2xsim.errors import ConfigError

    scenario = scenario_factory(schemes=[{"name": "gba", "options": {"feedbak": "x"}}])
    with pytest.raises(ConfigError, match="feedbak"):
        run_point(scenario, speed_kmh=60, num_vehicles=2, seed=0)
    scenario = scenario_factory(schemes=[{"name": "gba", "options": {"training": {"stepz": 3}}}])
    with pytest.raises(ValueError, match="stepz"):
        run_point(scenario, speed_kmh=60, num_vehicles=2, seed=0)
    scenario = scenario_factory(schemes=[{"name": "gba", "options": {"sensors": ["image"]}}])
    with pytest.raises(ValueError, match="sensors"):
        run_point(scenario, speed_kmh=60, num_vehicles=2, seed=0)
    scenario = scenario_factory(schemes=[{"name": "gba", "options": {"training": TINY, "data": {"trialz": 1}}}])
    with pytest.raises(ValueError, match="trialz"):
        run_point(scenario, speed_kmh=60, num_vehicles=2, seed=0)
