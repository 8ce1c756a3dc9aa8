import pytest

from v2xsim.config import load_scenario, scenario_from_dict
from v2xsim.errors import ConfigError

BASE = {"schemes": [{"name": "oracle"}]}


@pytest.mark.parametrize("data,key", [
    ({**BASE, "colour": "red"}, "colour: unknown key"),
    ({**BASE, "road": {"rsu_height": 10}}, "road.rsu_height: unknown key"),
    ({**BASE, "road": {"coverage_angle_deg": 180}}, "road.coverage_angle_deg"),
    ({**BASE, "road": {"lanes": []}}, "road.lanes"),
    ({**BASE, "traffic": {"speed_kmh": -5}}, "traffic.speed_kmh"),
    ({**BASE, "traffic": {"num_vehicles": -1}}, "traffic.num_vehicles"),
    ({**BASE, "traffic": {"num_vehicles": "ten"}}, "traffic.num_vehicles"),
    ({**BASE, "sweep": {"speed_kmh": [30, -1]}}, "sweep.speed_kmh"),
    ({**BASE, "sweep": {"num_vehicles": [4, -2]}}, "sweep.num_vehicles"),
    ({**BASE, "realignment": {"policy": "fixed"}}, "period_ms"),
    ({**BASE, "simulation": {"max_phase_step_deg": 0}}, "simulation.max_phase_step_deg"),
    ({**BASE, "simulation": {"max_phase_step_deg": 200}}, "simulation.max_phase_step_deg"),
    ({"schemes": []}, "schemes"),
    ({}, "schemes: required key is missing"),
])
def test_invalid_scenarios_name_the_key(data, key):
    with pytest.raises(ConfigError) as info:
        scenario_from_dict(data)
    assert key in str(info.value)
    assert "\n" not in str(info.value)


def test_overrides_are_parsed_as_toml(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[[schemes]]\nname = "oracle"\n')
    scenario = load_scenario(path, ["simulation.duration_s=0.5", "sweep.speed_kmh=[10, 20]",
                                    'mobility.model="idm"', "channel.aging=false"])
    assert scenario.simulation.duration_s == 0.5
    assert scenario.sweep.speed_kmh == [10.0, 20.0]
    assert scenario.mobility.model == "idm"
    assert scenario.channel.aging is False
    assert [p[0] for p in scenario.points()] == [10.0, 20.0]


def test_the_two_ray_phase_step_defaults_to_30_degrees():
    assert scenario_from_dict(BASE).simulation.max_phase_step_deg == 30.0
    assert scenario_from_dict({**BASE, "simulation": {"max_phase_step_deg": 15}}).simulation.max_phase_step_deg == 15.0


def test_missing_file_and_bad_toml_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml"):
        load_scenario(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="bad.toml: invalid TOML"):
        load_scenario(bad)


def test_shipped_scenarios_validate():
    import tomllib
    from pathlib import Path

    from v2xsim.fl.experiment import load_experiment
    from v2xsim.sim.corridor.config import load_corridor
    from v2xsim.studies.fl_imbalance import load_fl_study
    from v2xsim.studies.realignment import load_realignment_study
    from v2xsim.studies.rsu_ablation import load_study
    from v2xsim.studies.vehicle_deployment import load_vehicle_study

    paths = sorted((Path(__file__).parent.parent / "scenarios").glob("*.toml"))
    assert len(paths) >= 4
    for path in paths:
        data = tomllib.loads(path.read_text())
        if data.get("study") == "vehicle_deployment":
            load_vehicle_study(data, path)
        elif data.get("study") == "realignment":
            load_realignment_study(data, path)
        elif data.get("study") == "fl_imbalance":
            load_fl_study(data, path)
        elif data.get("experiment") == "fl":
            load_experiment(path)
        elif data.get("experiment") == "fl_road":
            load_corridor(path)
        elif "study" in data:
            load_study(path)
        else:
            load_scenario(path)
