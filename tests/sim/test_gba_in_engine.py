"""Scheme ``gba`` inside the co-simulation (tiny RSU training, cached in a temp dir)."""

import pytest

from v2xsim.sim.engine import run_point

TINY = {"hidden": 16, "steps": 60, "batch_size": 64,
        "data": {"num_vehicles": [1, 2, 3, 4], "samples_per_k": 40}}


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


def test_gba_rejects_unknown_options(scenario_factory):
    from v2xsim.errors import ConfigError

    scenario = scenario_factory(schemes=[{"name": "gba", "options": {"feedbak": "x"}}])
    with pytest.raises(ConfigError, match="feedbak"):
        run_point(scenario, speed_kmh=60, num_vehicles=2, seed=0)
    scenario = scenario_factory(schemes=[{"name": "gba", "options": {"training": {"stepz": 3}}}])
    with pytest.raises(ValueError, match="stepz"):
        run_point(scenario, speed_kmh=60, num_vehicles=2, seed=0)
