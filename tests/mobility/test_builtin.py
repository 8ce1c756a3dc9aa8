import numpy as np
import pytest

from v2xsim.errors import ConfigError
from v2xsim.mobility.builtin import ConstantVelocity, IntelligentDriverModel
from v2xsim.registry import MOBILITY
from v2xsim.geometry import RoadLayout

LAYOUT = RoadLayout()


def test_registry_knows_the_builtins_and_lists_them_on_a_typo():
    assert MOBILITY.get("constant_velocity") is ConstantVelocity
    assert MOBILITY.get("idm") is IntelligentDriverModel
    with pytest.raises(ConfigError, match="constant_velocity, idm"):
        MOBILITY.get("idn")


def test_constant_velocity_moves_v_dt_and_reports_departures():
    model = ConstantVelocity()
    model.reset(layout=LAYOUT, rng=np.random.default_rng(0))
    x_min, x_max = LAYOUT.x_range
    model.add(vehicle_id=1, x=x_min, lane=0, speed=10.0)
    model.add(vehicle_id=2, x=x_max - 1.0, lane=1, speed=20.0)
    assert list(model.advance(0.1)) == []
    np.testing.assert_allclose(model.x, [x_min + 1.0, x_max + 1.0])
    left = model.advance(0.2)  # vehicle 2's rear passes the exit
    assert list(left) == [2]
    assert list(model.ids) == [1]
    np.testing.assert_allclose(model.positions, [[x_min + 3.0, LAYOUT.lane_centres[0], LAYOUT.antenna_height_m]])


def idm_with_queue(speeds, gaps, **kwargs):
    model = IntelligentDriverModel(**kwargs)
    model.reset(layout=LAYOUT, rng=np.random.default_rng(0))
    x = LAYOUT.x_range[0]
    for index, (speed, gap) in enumerate(zip(speeds, gaps)):
        model.add(vehicle_id=index, x=x, lane=0, speed=speed)
        x += 4.5 + gap
    return model


def test_idm_follower_brakes_behind_a_slow_leader_and_never_collides():
    model = idm_with_queue([25.0, 2.0], [15.0, 0.0])
    for _ in range(400):
        model.advance(0.01)
        gap, _ = model.gap_to_leader()
        assert np.all(gap > 0)
    assert model.speed[0] < 10.0  # slowed down towards the leader's speed


def test_idm_free_road_approaches_desired_speed_and_lane_limit():
    model = IntelligentDriverModel(lane_speed_limits_kmh=[36.0, 200.0, 200.0])
    model.reset(layout=LAYOUT, rng=np.random.default_rng(0))
    model.add(vehicle_id=0, x=-2000.0, lane=0, speed=5.0, desired_speed=30.0)
    model.add(vehicle_id=1, x=-2000.0, lane=1, speed=5.0, desired_speed=30.0)
    for _ in range(3000):
        model.advance(0.01)
    assert model.speed[0] == pytest.approx(10.0, rel=0.05)  # capped by the 36 km/h limit
    assert model.speed[1] == pytest.approx(30.0, rel=0.05)


def test_idm_rejects_bad_parameters():
    with pytest.raises(ValueError, match="time_headway"):
        IntelligentDriverModel(time_headway=-1.0)
    model = IntelligentDriverModel(lane_speed_limits_kmh=[50.0])
    with pytest.raises(ValueError, match="lane_speed_limits_kmh"):
        model.reset(layout=LAYOUT, rng=np.random.default_rng(0))
