"""Time resolution: the two-ray step bound, snapshots at their own instant, traffic that
does not depend on the tick, and an effective rate that does not depend on the step."""

import math

import numpy as np
import pytest

from v2xsim.channel.geometric import GeometricChannel
from v2xsim.geometry import Boxes, RoadLayout
from v2xsim.sim.engine import run_point
from v2xsim.sim.resolution import TimeResolution, two_ray_geometry_factor, two_ray_phase_step_s
from v2xsim.sim.rsu import SchemeRunner
from v2xsim.sim.world import Samples, World
from v2xsim.units import kmh_to_mps

WAVELENGTH = 299_792_458.0 / 60e9


# ---------------------------------------------------------------- the step bound
@pytest.mark.parametrize("h_t,h_r", [(10.0, 1.6), (12.0, 1.6), (6.0, 1.0), (3.0, 2.5), (1.0, 2.0)])
def test_geometry_factor_is_the_largest_slope_of_the_path_difference(h_t, h_r):
    """G = max over the ground distance of d(L_gr - L_los)/d rho, closed form against a
    dense grid of the two path lengths."""
    rho = np.linspace(0.0, 200.0, 2_000_001)
    a, b = abs(h_t - h_r), h_t + h_r
    slope = rho / np.hypot(rho, a) - rho / np.hypot(rho, b)
    assert two_ray_geometry_factor(h_t, h_r) == pytest.approx(slope.max(), rel=1e-9)


def test_geometry_factor_of_the_headline_site_and_the_degenerate_one():
    # a = 8.4 m, b = 11.6 m: k = (b/a)^(2/3) = 1.2400, rho* = a k / sqrt(1 + k) = 6.960 m,
    # G = rho*/sqrt(rho*^2 + a^2) - rho*/sqrt(rho*^2 + b^2) = 0.6380 - 0.5145
    assert two_ray_geometry_factor(10.0, 1.6) == pytest.approx(0.1235, abs=1e-4)
    assert two_ray_geometry_factor(2.0, 2.0) == 1.0  # horizontal direct path


@pytest.mark.parametrize("speed_kmh", [10.0, 60.0, 250.0])
def test_step_is_the_wavelength_share_over_the_rate_of_the_path_difference(speed_kmh):
    v = kmh_to_mps(speed_kmh)
    tau = two_ray_phase_step_s(v, carrier_hz=60e9, rsu_height_m=10.0, antenna_height_m=1.6, max_phase_deg=30.0)
    assert tau == pytest.approx(30.0 / 360.0 * WAVELENGTH / (0.12352 * v), rel=1e-4)
    # 250 km/h: 48.5 us; 60 km/h: 202 us; 10 km/h: 1.21 ms
    assert tau == pytest.approx({10.0: 1.2135e-3, 60.0: 2.0225e-4, 250.0: 4.854e-5}[speed_kmh], rel=1e-3)
    assert two_ray_phase_step_s(0.0, carrier_hz=60e9, rsu_height_m=10.0, antenna_height_m=1.6,
                                max_phase_deg=30.0) == math.inf


@pytest.mark.parametrize("layout,tightness", [
    (RoadLayout(), 0.9),  # the worst ground distance 6.96 m is met 2.75 m beside the RSU: 0.92
    (RoadLayout(rsu_setback_m=0.0, lane_width_m=1.0, num_lanes=1), 0.99),  # a lane nearly under the RSU
    (RoadLayout(rsu_height_m=5.0, coverage_angle_rad=math.radians(150.0)), 0.7)],  # rho* = 3.3 m, x/rho = 0.56
    ids=["headline", "lane-under-the-rsu", "low-wide"])
@pytest.mark.parametrize("max_phase_deg", [30.0, 10.0])
def test_at_the_derived_step_the_channels_own_two_ray_phase_moves_at_most_the_bound(layout, tightness,
                                                                                      max_phase_deg):
    """Cars at every position of every lane drive on for one step: the phase between the
    geometric channel's own direct and ground-reflected paths moves by at most the
    configured degrees. The bound takes the worst ground distance and |d rho/dt| = v; how
    close a road comes to it depends on how far its lanes are from the RSU."""
    channel = GeometricChannel(layout=layout, num_scatterers=0)
    v = kmh_to_mps(250.0)
    tau = two_ray_phase_step_s(v, carrier_hz=channel.carrier_hz, rsu_height_m=layout.rsu_height_m,
                               antenna_height_m=layout.antenna_height_m, max_phase_deg=max_phase_deg)
    x_min, x_max = layout.x_range
    x = np.linspace(2 * x_min, 2 * x_max, 4001)
    start = np.stack([np.tile(x, layout.num_lanes), np.repeat(layout.lane_centres, len(x)),
                      np.full(len(x) * layout.num_lanes, layout.antenna_height_m)], axis=1)
    moved = start + np.array([v * tau, 0.0, 0.0])
    los, ground = (channel.paths(start).names.index(name) for name in ("los", "ground"))

    def difference(rx):
        length = channel.paths(rx).length
        return length[:, ground] - length[:, los]

    turned_deg = 360.0 * np.abs(difference(moved) - difference(start)) / channel.wavelength
    assert turned_deg.max() <= max_phase_deg * (1 + 1e-9)
    assert turned_deg.max() >= tightness * max_phase_deg


def test_substeps_per_tick_follow_the_fastest_vehicle():
    resolution = TimeResolution(tick_s=1e-3, carrier_hz=60e9, rsu_height_m=10.0, antenna_height_m=1.6,
                                max_phase_step_deg=30.0)
    # ceil(1 ms / tau): tau = 48.5 us, 202 us, 1.21 ms (above)
    assert [resolution.substeps(kmh_to_mps(v)) for v in (250.0, 60.0, 10.0, 0.0)] == [21, 5, 1, 1]
    assert TimeResolution(tick_s=1e-3).substeps(kmh_to_mps(250.0)) == 1  # no phase bound: held per tick
    with pytest.raises(ValueError, match="max_phase_step_deg"):
        TimeResolution(tick_s=1e-3, max_phase_step_deg=0.0)


def test_sub_steps_integrate_a_piecewise_constant_rate_exactly():
    samples = Samples(start_s=1.0, step_s=0.25, times=1.0 + 0.25 * (np.arange(4) + 0.5), ids=np.zeros(0),
                      channels=np.zeros((4, 0, 16)))
    assert samples.overlaps(1.1, 1.6) == pytest.approx([0.15, 0.25, 0.1, 0.0])
    assert samples.overlaps(0.9, 2.2) == pytest.approx([0.35, 0.25, 0.25, 0.45])  # the ends are open
    assert samples.overlaps(1.3, 1.3).sum() == 0.0
    rates = np.array([1.0, 2.0, 4.0, 8.0])
    for start, end in ((1.1, 1.6), (0.9, 2.2), (1.3, 1.3), (1.26, 1.74), (1.0, 2.0)):
        assert samples.integral(rates, start, end) == pytest.approx(rates @ samples.overlaps(start, end), abs=1e-15)


# ---------------------------------------------------------------- the world between ticks
def one_car_scenario(scenario_factory, *, speed_kmh, enter_s=0.0, **sections):
    return scenario_factory(
        traffic={"pattern": "fixed", "num_vehicles": 0,
                 "arrivals": [{"time_s": enter_s, "lane": 1, "speed_kmh": speed_kmh}]},
        blockers={"pedestrians": 0, "parked_cars": 0}, **sections)


@pytest.mark.parametrize("speed_kmh", [10.0, 250.0])
def test_every_sweep_slot_sees_the_channel_at_its_own_time(scenario_factory, monkeypatch, speed_kmh):
    """34 slots of 0.597 ms: 34 distinct instants one slot apart, each with the channel of
    the car where it is at that instant (before, two slots shared one 1 ms tick)."""
    seen = []
    original = SchemeRunner._measure_beam

    def spy(self, members, beam, rss):
        original(self, members, beam, rss)
        ids, channels = self.world.channels_at(self.env.now)
        seen.append((beam, self.env.now, channels.copy(), self.world))

    monkeypatch.setattr(SchemeRunner, "_measure_beam", spy)
    scenario = one_car_scenario(scenario_factory, speed_kmh=speed_kmh, schemes=[{"name": "zf_sweep"}],
                                simulation={"duration_s": 0.1})
    run_point(scenario, speed_kmh=speed_kmh, num_vehicles=0, seed=0)
    sweeps = [seen[i:i + 34] for i in range(0, len(seen) - 33, 34)]
    assert len(sweeps) >= 1 and all([s[0] for s in sweep] == list(range(34)) for sweep in sweeps)
    slot = 20.31e-3 / 34
    layout = RoadLayout()
    x_entry = layout.x_range[0] - 4.5 / 2
    for sweep in sweeps:
        times = np.array([s[1] for s in sweep])
        assert len(set(times)) == 34 and np.diff(times) == pytest.approx(np.full(33, slot), rel=1e-9)
        assert len({s[2].tobytes() for s in sweep}) == 34
        for _, t, h, world in sweep:
            x = x_entry + kmh_to_mps(speed_kmh) * t  # constant velocity, entered at t = 0
            expected = world.channel.channels(np.array([[x, layout.lane_centres[1], layout.antenna_height_m]]))
            np.testing.assert_allclose(h, expected, rtol=1e-7, atol=1e-12 * np.abs(expected).max())


def test_a_car_entering_between_ticks_is_where_it_is_at_that_instant(scenario_factory, monkeypatch):
    """Arrival at 12.3456 ms (not on the 1 ms tick): every later snapshot places the car at
    x_entry + v (t - 12.3456 ms), as if time were continuous."""
    snaps = []
    original = World.snapshot

    def spy(self, at=None):
        snap = original(self, at)
        if at is not None and len(snap.ids):
            snaps.append((at, snap.positions.copy()))
        return snap

    monkeypatch.setattr(World, "snapshot", spy)
    scenario = one_car_scenario(scenario_factory, speed_kmh=90.0, enter_s=0.0123456,
                                schemes=[{"name": "oracle"}], simulation={"duration_s": 0.3})
    run_point(scenario, speed_kmh=90.0, num_vehicles=0, seed=0)
    x_entry = RoadLayout().x_range[0] - 4.5 / 2
    assert len(snaps) > 5
    for at, positions in snaps:
        assert positions[0, 0] == pytest.approx(x_entry + 25.0 * (at - 0.0123456), abs=1e-9)


def test_a_car_leaves_at_the_instant_its_rear_passes_the_exit(scenario_factory, monkeypatch):
    """A car entering at 0 with 90 km/h leaves when its rear has covered the stretch:
    (34.64 m + 4.5 m) / 25 m/s = 1.5657 s, not at the next tick."""
    departures = []
    original = World.advance

    def spy(self, dt):
        left = original(self, dt)
        departures.extend((self.time, int(i)) for i in left)
        return left

    monkeypatch.setattr(World, "advance", spy)
    scenario = one_car_scenario(scenario_factory, speed_kmh=90.0, schemes=[{"name": "oracle"}],
                                simulation={"duration_s": 1.6, "tick_ms": 5.0})
    run_point(scenario, speed_kmh=90.0, num_vehicles=0, seed=0)
    coverage = 2 * 10.0 * math.tan(math.radians(60.0))
    (time, _), = departures
    assert time == pytest.approx((coverage + 4.5) / 25.0, abs=1e-8)


def test_data_phase_samples_are_snapshots_at_the_sub_step_midpoints(scenario_factory):
    """One formula: sample i of a tick is the world's snapshot at its instant, and the batch
    rate of serving beams at sample i is the single-snapshot rate there."""
    scenario = scenario_factory(simulation={"duration_s": 0.01})
    from v2xsim import build

    site = build.scenario_site(scenario)
    channel = build.scenario_channel(scenario.channel, layout=site.layout, radio=scenario.radio, seed=3)
    now = [0.0]
    world = World(layout=site.layout, mobility=build.mobility_model(scenario.mobility), channel=channel,
                  radio=site.radio, static_blockers=Boxes.empty(), rng=np.random.default_rng(0),
                  resolution=TimeResolution(tick_s=1e-3, carrier_hz=60e9, max_phase_step_deg=30.0),
                  clock=lambda: now[0])
    for x, lane in ((-10.0, 0), (2.0, 1), (9.0, 2)):
        world.add_vehicle(x=x, lane=lane, speed=kmh_to_mps(250.0))
    world.advance(1e-3)
    now[0] = 1e-3
    samples = world.samples()
    assert len(samples) == 21 and samples.step_s == pytest.approx(1e-3 / 21)
    assert samples.times == pytest.approx(1e-3 + (np.arange(21) + 0.5) * 1e-3 / 21)
    runner = SchemeRunner.__new__(SchemeRunner)
    runner.world = world
    ids = samples.ids
    serving = (ids, site.radio.codebook[:, [3, 17, 30]] * 0.5)
    rates = runner._rates_along(serving, samples)
    for index in (0, 7, 20):
        snap = world.snapshot(samples.times[index])
        np.testing.assert_allclose(snap.channels, samples.channels[index], rtol=1e-9)
        assert rates[index] == pytest.approx(runner._rate_of(serving, snap), rel=1e-9)
    assert np.ptp(rates) > 0  # the fading moves within one tick


# ---------------------------------------------------------------- acceptance
def test_halving_the_world_step_changes_the_effective_rate_by_less_than_one_percent(scenario_factory):
    """250 km/h, K = 10, the headline's classical schemes: the 1 ms tick with 30 deg
    sub-steps against 0.5 ms with 15 deg (before: about 2 %, up to 4 % for one seed)."""
    rates = {}
    for tick_ms, degrees in ((1.0, 30.0), (0.5, 15.0)):
        scenario = scenario_factory(simulation={"duration_s": 0.5, "tick_ms": tick_ms, "max_phase_step_deg": degrees},
                                    traffic={"num_vehicles": 10})
        rows = run_point(scenario, speed_kmh=250.0, num_vehicles=10, seed=2).rows
        rates[tick_ms] = {row.scheme: row.effective_sum_rate for row in rows}
    assert rates[1.0]["oracle"] > 0
    assert abs(rates[0.5]["oracle"] / rates[1.0]["oracle"] - 1) < 0.01
    total = [sum(r.values()) for r in rates.values()]
    assert abs(total[1] / total[0] - 1) < 0.01
