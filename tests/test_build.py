"""The composition root builds every run object from scenario sections."""

import math

import numpy as np
import pytest

from v2xsim import build
from v2xsim.config import BlockersConfig, RoadConfig, RadioConfig, scenario_from_dict
from v2xsim.errors import ConfigError
from v2xsim.metrics import user_rates
from v2xsim.units import dbm_to_watt


def test_site_follows_the_sections():
    road = RoadConfig(rsu_height_m=12.0, coverage_angle_deg=150.0, lanes=[{}, {"speed_limit_kmh": 50.0}])
    radio = RadioConfig(num_antennas=8, num_beams=12, tx_power_dbm=20.0, bandwidth_hz=1e9, noise_figure_db=5.0)
    site = build.site(road, radio)
    assert site.layout.rsu_height_m == 12.0 and site.layout.num_lanes == 2
    assert site.layout.coverage_angle_rad == pytest.approx(math.radians(150.0))
    assert site.layout.lane_speed_limits_kmh == (None, 50.0)
    assert site.radio.codebook.shape == (8, 12)
    assert site.radio.p_max == pytest.approx(0.1)
    assert site.radio.noise_power == pytest.approx(float(dbm_to_watt(-174 + 90 + 5)))
    assert site.timing.beam_slot_s == pytest.approx(20.31e-3 / 34)


def test_background_blockers_honour_the_section():
    layout = build.road_layout(RoadConfig())
    boxes = build.blockers(BlockersConfig(pedestrians=5, parked_cars=3), layout, np.random.default_rng(0))
    kinds = np.bincount(boxes.kind, minlength=4)
    assert kinds[2] == 5 and kinds[3] == 3 and kinds[:2].sum() == 0
    x_min, x_max = layout.x_range
    assert np.all((boxes.centre[:, 0] >= x_min) & (boxes.centre[:, 0] <= x_max))
    assert len(build.blockers(BlockersConfig(pedestrians=0, parked_cars=0), layout, np.random.default_rng(0))) == 0


def test_channel_backend_gets_the_engine_keywords_and_refuses_unknown_options():
    road, radio = RoadConfig(), RadioConfig()
    layout = build.road_layout(road)
    channel = build.channel_backend("geometric", {"num_scatterers": 0}, layout=layout, radio=radio, seed=3)
    assert channel.layout is layout and channel.num_antennas == 16 and channel.carrier_hz == 60e9
    assert channel.seed == 3 and len(channel.scatterers) == 0
    assert build.channel_backend("geometric", {"seed": 9}, layout=layout, radio=radio, seed=3).seed == 9
    with pytest.raises(ConfigError, match=r"unknown option 'scaterers'; valid: .*num_scatterers"):
        build.channel_backend("geometric", {"scaterers": 2}, layout=layout, radio=radio, seed=3)
    with pytest.raises(ConfigError, match="unknown channel backend 'ray'; valid: geometric, sionna_rt"):
        build.channel_backend("ray", {}, layout=layout, radio=radio, seed=3)
    with pytest.raises(ConfigError, match="channel backend 'geometric': .*oxygen_db_per_km"):
        build.channel_backend("geometric", {"oxygen_db_per_km": -1.0}, layout=layout, radio=radio, seed=3)


def test_random_streams_are_independent_and_seeded():
    first, again, other = build.random_streams(4), build.random_streams(4), build.random_streams(5)
    draws = [s.random(3) for s in first]
    assert all(np.array_equal(a, s.random(3)) for a, s in zip(draws, again))
    assert not np.array_equal(draws[0], other[0].random(3))
    assert len({tuple(d) for d in draws}) == len(draws)


def test_schemes_are_built_and_prepared_with_the_store(tmp_path):
    from v2xsim.store import ModelStore

    scenario = scenario_from_dict({"schemes": [{"name": "zf_sweep"}, {"name": "wmmse_ce", "label": "w",
                                                                      "options": {"max_paths": 2}}]})
    built = build.schemes(scenario, ModelStore(tmp_path))
    assert [spec.display for spec, _ in built] == ["zf_sweep", "w"]
    assert built[1][1].max_paths == 2


def test_plugins_must_import():
    build.load_plugins(["json"])
    with pytest.raises(ConfigError, match="plugins: cannot import 'no_such_module_v2x'"):
        build.load_plugins(["no_such_module_v2x"])


def test_a_traffic_arrival_in_a_missing_lane_is_refused_naming_the_key():
    from v2xsim.config import TrafficConfig

    traffic = TrafficConfig(pattern="fixed", arrivals=[{"time_s": 0.0, "lane": 5, "speed_kmh": 30.0}])
    with pytest.raises(ConfigError, match="traffic.arrivals.0.lane"):
        build.traffic_source(traffic, build.road_layout(RoadConfig()), num_vehicles=0, speed_kmh=30.0)


def test_link_budget_codebook_serves_the_coverage_sector():
    road, radio = RoadConfig(coverage_angle_deg=90.0), RadioConfig()
    site = build.site(road, radio)
    # a car straight below the RSU edge of coverage is best served by an edge beam
    h = np.ones((1, 16), dtype=complex)
    t = site.radio.codebook[:, [0]]
    assert user_rates(h, t, site.radio.noise_power).shape == (1,)
    angles = np.degrees(np.arcsin(np.angle(site.radio.codebook[1] / site.radio.codebook[0]) / np.pi))
    assert -45.0 < angles.min() and angles.max() < 45.0


def test_every_registered_backend_takes_the_engine_keywords():
    import inspect

    from v2xsim.registry import CHANNEL

    for name in CHANNEL.names():
        parameters = inspect.signature(CHANNEL.get(name)).parameters
        assert {"layout", "num_antennas", "carrier_hz", "seed"} <= set(parameters), name
        assert all(parameters[k].kind is inspect.Parameter.KEYWORD_ONLY for k in ("layout", "seed")), name
