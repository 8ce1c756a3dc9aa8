import pytest

from v2xsim.config import scenario_from_dict


def make_scenario(**sections):
    """A small, fast scenario: 4 cars, 0.6 s, all three classical schemes."""
    data = {
        "schemes": [{"name": "oracle"}, {"name": "zf_sweep"}, {"name": "wmmse_ce"}],
        "traffic": {"num_vehicles": 4},
        "simulation": {"duration_s": 0.6, "tick_ms": 1.0},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return scenario_from_dict(data)


@pytest.fixture
def scenario_factory():
    return make_scenario
