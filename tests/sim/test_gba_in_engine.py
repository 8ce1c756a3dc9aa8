"""Scheme ``gba`` inside the co-simulation (tiny RSU training, cached in a temp dir)."""

import numpy as np
import pytest

from v2xsim.sim.engine import run_point

pytestmark = pytest.mark.slow  # trains tiny GBA networks

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
    assert row.scheme == "gba"
    assert row.alignments > 3 and row.t_delay_s == pytest.approx(0.91e-3 + 3 * 34 / (442 / 247e-9), rel=0.05)
    assert np.isfinite(row.effective_sum_rate) and row.effective_sum_rate >= 0.0
    again = run_point(scenario, speed_kmh=90, num_vehicles=3, seed=0)
    assert again.rows == output.rows  # sensing noise and prediction are seeded


def spy_on(monkeypatch, cls, name, record):
    original = getattr(cls, name)

    def spy(self, argument):
        result = original(self, argument)
        record.append((argument, result))
        return result

    monkeypatch.setattr(cls, name, spy)


def test_rsu_side_sees_only_what_the_vehicles_sent(scenario_factory, monkeypatch):
    """Predicted mode: the vehicle side gets each car's own sensor readings (no true
    feedback); the RSU side gets exactly the predicted bits, no sensors, no channels."""
    from v2xsim.schemes.base import Observation
    from v2xsim.schemes.gba import GBA

    vehicle, rsu = [], []
    spy_on(monkeypatch, GBA, "vehicle_feedback", vehicle)
    spy_on(monkeypatch, GBA, "allocate", rsu)
    options = {"training": TINY, "vehicle_training": TINY_VEHICLE, "data": TINY_DATA}
    scenario = scenario_factory(schemes=[{"name": "gba", "options": options}])
    run_point(scenario, speed_kmh=60, num_vehicles=3, seed=0)
    assert vehicle and len(vehicle) == len(rsu)
    assert "sensors" not in {f.name for f in Observation.__dataclass_fields__.values()}
    for (inputs, sent), (observation, _) in zip(vehicle, rsu):
        assert inputs.true_rss is None  # predicting cars do not know their true feedback
        k = len(inputs.ids)
        assert inputs.sensors["image"].shape == (k, 90, 160, 3)
        assert inputs.sensors["lidar"].shape == (k, 20, 20, 20)
        # every car sees itself (-2) and the RSU (-1) once in its own LiDAR grid
        assert ((inputs.sensors["lidar"] == -2).reshape(k, -1).sum(axis=1) == 1).all()
        assert observation.channels is None and observation.rss is None
        np.testing.assert_array_equal(observation.feedback, sent)
        assert sent.shape == (k, 34) and set(np.unique(sent)) <= {0.0, 1.0}


def test_ground_truth_mode_sends_the_true_feedback_of_the_alignment_instant(scenario_factory, monkeypatch):
    from v2xsim.metrics import binary_feedback
    from v2xsim.schemes.gba import GBA

    vehicle = []
    spy_on(monkeypatch, GBA, "vehicle_feedback", vehicle)
    scenario = scenario_factory(schemes=[{"name": "gba", "options": {"feedback": "ground_truth", "training": TINY}}])
    run_point(scenario, speed_kmh=60, num_vehicles=3, seed=0)
    assert vehicle
    for inputs, sent in vehicle:
        assert inputs.sensors is None and inputs.true_rss is not None
        np.testing.assert_array_equal(sent, binary_feedback(inputs.true_rss, inputs.feedback_threshold))


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


def test_training_seeds_pair_each_world_seed_with_its_own_trained_models(scenario_factory, tmp_path):
    """sweep.training_seeds: world seed i runs with models trained with training seed i;
    results.csv says which, and the models of both training seeds are recorded."""
    from v2xsim.sim.runner import prepare_models, run_to_directory

    scenario = scenario_factory(schemes=[{"name": "gba", "options": {"feedback": "ground_truth", "training": TINY}}],
                                sweep={"speed_kmh": [90.0], "num_vehicles": [3], "seeds": [0, 1],
                                       "training_seeds": [5, 6]}, output={"plots": False, "compare": None})
    assert [scenario.training_seed_for(s) for s in (0, 1)] == [5, 6]
    models = prepare_models(scenario, quiet=True)
    assert len([name for name in models if name.startswith("rsu-")]) == 2
    summary = run_to_directory(scenario, tmp_path, quiet=True, workers=1)
    lines = (tmp_path / "results.csv").read_text().splitlines()
    assert lines[0].endswith(",training_seed")
    assert [line.rsplit(",", 1)[1] for line in lines[1:]] == ["5", "6"]
    # the same world with the other training seed gives another trained GBA-RSU
    swapped = scenario.model_copy(update={"sweep": scenario.sweep.model_copy(update={"training_seeds": [6, 5]})})
    first = run_point(scenario, speed_kmh=90, num_vehicles=3, seed=0).rows[0]
    other = run_point(swapped, speed_kmh=90, num_vehicles=3, seed=0).rows[0]
    assert first.training_seed == 5 and other.training_seed == 6
    assert summary["provenance"]["models"] == models


def test_training_seeds_need_one_per_world_seed(scenario_factory):
    from v2xsim.errors import ConfigError

    with pytest.raises((ConfigError, ValueError), match="one training seed per world seed"):
        scenario_factory(sweep={"seeds": [0, 1, 2], "training_seeds": [4]})


def test_networks_trained_side_by_side_equal_those_trained_in_this_process(scenario_factory, tmp_path):
    """prepare_models trains GBA-RSU and GBA-Vehicle in two worker processes at once; the
    checkpoints hold exactly the weights that training in this process gives."""
    from pathlib import Path

    import torch

    from v2xsim import build
    from v2xsim.sim.runner import train_side_by_side
    from v2xsim.store import ModelStore

    options = {"training": TINY, "vehicle_training": TINY_VEHICLE, "data": TINY_DATA}
    scenario = scenario_factory(schemes=[{"name": "gba", "options": options}])
    parallel = ModelStore(tmp_path / "parallel", quiet=True)
    written = train_side_by_side(scenario, parallel, [None], quiet=True, workers=2)
    assert sorted(Path(path).name.split("-")[0] for path in written) == ["rsu", "vehicle"]
    assert train_side_by_side(scenario, parallel, [None], quiet=True, workers=2) == []  # nothing left to train
    serial = ModelStore(tmp_path / "serial", quiet=True)
    assert train_side_by_side(scenario, serial, [None], quiet=True, workers=1) == []  # one core: prepare trains
    build.schemes(scenario, serial)
    for path in written:
        name = Path(path).name
        mine, theirs = torch.load(serial.path(name)), torch.load(path)
        assert mine["model"].keys() == theirs["model"].keys()
        for key, value in mine["model"].items():
            assert torch.equal(value, theirs["model"][key]), (name, key)


def test_predicted_mode_retrains_gba_rsu_on_gba_vehicles_feedback(scenario_factory):
    """Stage 3 by default: after both networks, GBA-RSU is retrained on the FLASH-like
    snapshots with GBA-Vehicle's predicted bits; stage3_steps = 0 keeps stage 1."""
    import torch

    from v2xsim import build
    from v2xsim.store import ModelStore
    from v2xsim.training.stage3 import vehicle_drops

    options = {"training": TINY, "vehicle_training": TINY_VEHICLE, "data": TINY_DATA, "stage3_steps": 20}
    scenario = scenario_factory(schemes=[{"name": "gba", "options": options}])
    store = ModelStore(quiet=True)
    (_, scheme), = build.schemes(scenario, store)
    names = [name for name in store.used if name.startswith("rsu-")]
    assert len(names) == 2  # stage 1, then stage 3 from it
    final = torch.load(store.path(names[-1] + ".pt"), weights_only=False)
    assert final["config"]["stage3_feedback"] == "vehicle" and final["config"]["stage3_steps"] == 20
    assert final["config"]["stage3_source"].startswith("flashlike-")
    for key, value in scheme.model.state_dict().items():
        assert torch.equal(value, final["model"][key])
    data_config, _ = scheme.vehicle_configs(build.scheme_context(scenario, store))
    drops = vehicle_drops(data_config, scheme.vehicle_model, store=store)
    assert drops.predicted.shape == drops.feedback.shape == (len(drops.mask), TINY_DATA["num_episodes"], 34)
    assert drops.mask.all() and set(np.unique(drops.predicted)) <= {0.0, 1.0}
    plain = scenario_factory(schemes=[{"name": "gba", "options": {**options, "stage3_steps": 0}}])
    store = ModelStore(quiet=True)
    build.schemes(plain, store)
    assert len([name for name in store.used if name.startswith("rsu-")]) == 1
