"""Traffic sources: every seed of a feasible scenario places its vehicles; infeasible
scenarios are refused up front, naming the numbers."""

import numpy as np
import pytest

from v2xsim import build
from v2xsim.config import RoadConfig, TrafficConfig, load_scenario
from v2xsim.errors import ConfigError
from v2xsim.geometry import DEFAULT_SIZES
from v2xsim.sim.engine import run_point


class Road:
    """The slice of the world a traffic source uses, recording what it adds."""

    def __init__(self, road: RoadConfig):
        self.layout = build.road_layout(road)
        self.departure_listeners = []
        self.added = []

    def add_vehicle(self, *, x, lane, speed, desired_speed=None, kind="car"):
        self.added.append((x, lane, kind))
        return len(self.added) - 1

    def lane_tail(self, lane):
        return min([x - DEFAULT_SIZES[k][0] / 2 for x, l, k in self.added if l == lane], default=np.inf)


def test_the_headline_runs_for_every_seed():
    scenario = load_scenario("scenarios/speed_sweep.toml", ["simulation.duration_s=0.002",
                                                            'schemes=[{name="zf_sweep"}]'])
    for seed in range(50):
        output = run_point(scenario, speed_kmh=60, num_vehicles=10, seed=seed)
        assert output.rows[0].scheme == "zf_sweep"


@pytest.mark.parametrize("seed", range(20))
def test_initial_vehicles_fit_without_overlap(seed):
    road = Road(RoadConfig())
    source = build.traffic_source(TrafficConfig(truck_share=0.2), road.layout, num_vehicles=10, speed_kmh=60.0)
    source.populate(road, np.random.default_rng([seed, 0]))
    assert sorted(k for _, _, k in road.added) == ["car"] * 10 + ["truck"] * 2
    x_min, x_max = road.layout.x_range
    for lane in range(road.layout.num_lanes):
        bodies = sorted((x - DEFAULT_SIZES[k][0] / 2, x + DEFAULT_SIZES[k][0] / 2) for x, l, k in road.added if l == lane)
        for (_, front), (rear, _) in zip(bodies, bodies[1:]):
            assert rear - front >= 2.0 - 1e-9  # min_entry_gap_m
        assert all(x_min <= rear and front <= x_max for rear, front in bodies)


def test_a_constant_road_that_cannot_hold_k_cars_is_refused_naming_the_numbers():
    road = RoadConfig(lanes=[{}])
    layout = build.road_layout(road)
    with pytest.raises(ConfigError, match=r"traffic: 8 cars and 0 trucks need 52.0 m .* 1 lanes of 34.6 m"):
        build.traffic_source(TrafficConfig(), layout, num_vehicles=8, speed_kmh=60.0)
    build.traffic_source(TrafficConfig(), layout, num_vehicles=5, speed_kmh=60.0)  # 32.5 m fits


def test_random_traffic_beyond_the_road_waits_at_the_entry():
    road = Road(RoadConfig(lanes=[{}]))
    source = build.traffic_source(TrafficConfig(pattern="poisson"), road.layout, num_vehicles=9, speed_kmh=60.0)
    source.populate(road, np.random.default_rng(1))
    assert len(road.added) == 5  # 5 x 6.5 m fill the 34.6 m lane
    assert source._waiting and all(kind == "car" for _, kind in source._waiting)
