import numpy as np
import pytest

from v2xsim.sim.engine import run_point


def rows_by_scheme(output):
    return {row.scheme: row for row in output.rows}


@pytest.mark.parametrize("speed_kmh", [10, 60, 150, 250])
def test_frozen_channel_effective_over_instantaneous_is_the_data_fraction(scenario_factory, speed_kmh):
    """Frozen channel: R_eff / R = serving time / window, which is the paper's
    1 - T_delay / T_coh up to the one cycle the window cuts at its end."""
    scenario = scenario_factory(channel={"aging": False})
    output = run_point(scenario, speed_kmh=speed_kmh, num_vehicles=4, seed=1)
    window = scenario.simulation.duration_s
    for row in output.rows:
        assert row.alignments >= 1 and row.simulated_s == window
        assert row.sum_rate > 0, row.scheme
        serving = sum(c["data_time_s"] for c in output.cycles if c["scheme"] == row.scheme)
        assert row.effective_sum_rate / row.sum_rate == pytest.approx(serving / window, rel=1e-9, abs=1e-12)
        expected = max(0.0, 1.0 - row.t_delay_s / row.t_coherence_s)
        cut = max(row.t_coherence_s, row.t_delay_s) / window  # the unfinished last cycle
        assert abs(row.effective_sum_rate / row.sum_rate - expected) <= cut + 1e-9, row.scheme
        assert abs(row.effective_sum_rate - row.formula_effective_sum_rate) <= row.sum_rate * cut + 1e-9


def test_empty_road_time_counts_in_the_window_and_bits_add_up(scenario_factory):
    """Poisson traffic with empty-road periods: delivered bits (every logged cycle,
    the unfinished last one included) / whole window = the reported effective rate."""
    scenario = scenario_factory(traffic={"pattern": "poisson"}, schemes=[{"name": "oracle"}, {"name": "zf_sweep"}],
                                simulation={"duration_s": 2.0})
    output = run_point(scenario, speed_kmh=90, num_vehicles=1, seed=4)
    for row in output.rows:
        mine = [c for c in output.cycles if c["scheme"] == row.scheme]
        assert row.effective_sum_rate == pytest.approx(sum(c["bits"] for c in mine) / 2.0, rel=1e-12)
        covered = sum(max(c["period_s"], c["delay_s"]) for c in mine if c["complete"])
        assert covered < 1.9  # the road was empty for a while: the old per-cycle window was shorter
        assert [c["complete"] for c in mine].count(False) <= 1


def test_alignment_delays_follow_the_timing_model(scenario_factory):
    output = run_point(scenario_factory(), speed_kmh=60, num_vehicles=4, seed=0)
    rows = rows_by_scheme(output)
    assert rows["oracle"].t_delay_s == 0.0
    assert rows["zf_sweep"].t_coherence_s == pytest.approx(rows["zf_sweep"].paper_t_coherence_s)
    # 34 slots of 20.31/34 ms, then one feedback message per reporting car, queued on one
    # 1.79 Gbit/s back channel (a car that left during the sweep does not report)
    bits = {"zf_sweep": 6, "wmmse_ce": 442}
    for cycle in output.cycles:
        if cycle["scheme"] in bits:
            expected = 20.31e-3 + cycle["reporting"] * bits[cycle["scheme"]] / (442 / 247e-9)
            assert cycle["delay_s"] == pytest.approx(expected, rel=1e-9)
            assert cycle["reporting"] <= cycle["vehicles"] == 4


def test_back_channel_is_a_queue(scenario_factory):
    """With a 1 ms MAC access time, K vehicles' feedback takes K ms one after the other."""
    scenario = scenario_factory(timing={"mac_access_us": 1000.0}, schemes=[{"name": "zf_sweep"}])
    for count in (2, 6):
        row = run_point(scenario, speed_kmh=30, num_vehicles=count, seed=0).rows[0]
        assert row.t_delay_s == pytest.approx(20.31e-3 + count * (1e-3 + 6 / (442 / 247e-9)), rel=1e-6)


def test_stale_beams_deliver_nothing(scenario_factory):
    output = run_point(scenario_factory(), speed_kmh=250, num_vehicles=4, seed=0)
    rows = rows_by_scheme(output)
    assert rows["zf_sweep"].t_delay_s >= rows["zf_sweep"].t_coherence_s
    assert rows["zf_sweep"].effective_sum_rate == 0.0
    assert rows["wmmse_ce"].effective_sum_rate == 0.0
    assert rows["oracle"].effective_sum_rate > 0
    assert rows["zf_sweep"].sum_rate > 0  # what the stale beams would have given


def test_effective_rate_falls_with_speed_for_sweep_schemes(scenario_factory):
    rates = [rows_by_scheme(run_point(scenario_factory(), speed_kmh=v, num_vehicles=4, seed=2))["wmmse_ce"]
             for v in (10, 60, 150)]
    assert rates[0].effective_sum_rate > rates[1].effective_sum_rate > rates[2].effective_sum_rate


@pytest.mark.slow
def test_aging_never_helps_on_average_and_hurts_more_at_speed(scenario_factory):
    """Fixed 50 ms realignment: the farther a car moves per cycle, the more the channel
    drifts from the one the beams were chosen for."""
    gaps = []
    for speed in (3, 20, 120):
        per_seed = []
        for seed in range(3):
            frozen, aged = (
                rows_by_scheme(run_point(
                    scenario_factory(channel={"aging": aging}, realignment={"policy": "fixed", "period_ms": 50.0},
                                     schemes=[{"name": "oracle"}]),
                    speed_kmh=speed, num_vehicles=4, seed=seed))["oracle"].effective_sum_rate
                for aging in (False, True))
            per_seed.append(frozen - aged)
        gaps.append(float(np.mean(per_seed)))
    assert all(gap >= 0 for gap in gaps), gaps
    assert gaps[0] < gaps[1] < gaps[2], gaps


def test_late_arrivals_wait_for_the_next_alignment(scenario_factory):
    """A car arriving in the middle of a long fixed period is not served until then."""
    scenario = scenario_factory(
        traffic={"pattern": "fixed", "num_vehicles": 0,
                 "arrivals": [{"time_s": 0.0, "lane": 0, "speed_kmh": 20.0},
                              {"time_s": 0.05, "lane": 2, "speed_kmh": 20.0}]},
        realignment={"policy": "fixed", "period_ms": 200.0}, schemes=[{"name": "oracle"}],
        simulation={"duration_s": 0.45})
    output = run_point(scenario, speed_kmh=20, num_vehicles=0, seed=0)
    vehicles = [cycle["vehicles"] for cycle in output.cycles if cycle["complete"]]
    assert vehicles == [1, 2]


def test_empty_road_gives_zero_rows_not_nan(scenario_factory):
    scenario = scenario_factory(traffic={"pattern": "poisson", "num_vehicles": 0})
    output = run_point(scenario, speed_kmh=60, num_vehicles=0, seed=0)
    for row in output.rows:
        assert row.alignments == 0
        assert row.sum_rate == 0.0 and row.effective_sum_rate == 0.0
        assert all(np.isfinite(v) for v in row.as_row().values() if isinstance(v, float))


def test_same_seed_same_results_other_seed_other_results(scenario_factory):
    scenario = scenario_factory(traffic={"pattern": "poisson", "speed_spread": 0.1}, mobility={"model": "idm"})
    first = run_point(scenario, speed_kmh=60, num_vehicles=4, seed=5)
    again = run_point(scenario, speed_kmh=60, num_vehicles=4, seed=5)
    other = run_point(scenario, speed_kmh=60, num_vehicles=4, seed=6)
    assert [r.as_row() for r in first.rows] == [r.as_row() for r in again.rows]
    assert first.cycles == again.cycles
    assert [r.as_row() for r in first.rows] != [r.as_row() for r in other.rows]


@pytest.mark.slow
@pytest.mark.parametrize("pattern", ["poisson", "platoon"])
def test_random_arrivals_keep_about_k_cars_in_coverage(scenario_factory, pattern):
    scenario = scenario_factory(traffic={"pattern": pattern, "platoon_size": 3}, schemes=[{"name": "zf_sweep"}],
                                simulation={"duration_s": 3.0})
    counts = [run_point(scenario, speed_kmh=90, num_vehicles=6, seed=s).rows[0].mean_vehicles for s in range(4)]
    assert 3.0 < np.mean(counts) < 9.0, counts


# ---------------------------------------------------------------- one formula, seams and options
def test_data_phase_rate_is_metrics_user_rates_on_the_same_beams(scenario_factory, monkeypatch):
    """The engine's data-phase rate is exactly the sum of metrics.user_rates for the beams
    the scheme chose, on the channels they were chosen for (frozen channel, zero delay)."""
    from v2xsim.metrics import user_rates
    from v2xsim.schemes.baselines import Oracle

    seen = []
    original = Oracle.allocate

    def spy(self, observation):
        allocation = original(self, observation)
        seen.append((observation.channels.copy(), allocation, observation.codebook, observation.noise_power))
        return allocation

    monkeypatch.setattr(Oracle, "allocate", spy)
    scenario = scenario_factory(channel={"aging": False}, schemes=[{"name": "oracle"}])
    output = run_point(scenario, speed_kmh=60, num_vehicles=4, seed=3)
    assert len(seen) >= len(output.cycles) > 5  # the last alignment may not complete
    for (h, allocation, codebook, noise), cycle in zip(seen, output.cycles):
        expected = float(user_rates(h, allocation.precoders(codebook), noise).sum())
        assert cycle["apply_sum_rate"] == pytest.approx(expected, rel=1e-12)
        if cycle["data_time_s"] > 0:
            assert cycle["bits"] / cycle["data_time_s"] == pytest.approx(expected, rel=1e-9)


def test_measured_compute_time_delays_alignment_by_the_solver_wall_time(scenario_factory):
    configured = run_point(scenario_factory(schemes=[{"name": "oracle"}]), speed_kmh=60, num_vehicles=4, seed=0)
    measured = run_point(scenario_factory(schemes=[{"name": "oracle"}], timing={"compute": "measured"}),
                         speed_kmh=60, num_vehicles=4, seed=0)
    assert all(cycle["delay_s"] == 0.0 for cycle in configured.cycles)
    assert all(np.isfinite(cycle["delay_s"]) and cycle["delay_s"] > 0.0 for cycle in measured.cycles)
    assert measured.rows[0].t_delay_s > 0.0


def test_configured_compute_time_is_added_per_scheme_label(scenario_factory):
    scenario = scenario_factory(schemes=[{"name": "zf_sweep"}, {"name": "zf_sweep", "label": "slow_zf"}],
                                timing={"compute_ms": {"slow_zf": 2.5}})
    rows = rows_by_scheme(run_point(scenario, speed_kmh=30, num_vehicles=3, seed=0))
    assert rows["slow_zf"].t_delay_s == pytest.approx(rows["zf_sweep"].t_delay_s + 2.5e-3, rel=1e-9)


def test_truck_share_adds_trucks_that_block_but_are_not_served(scenario_factory):
    from v2xsim import build
    from v2xsim.config import TrafficConfig
    from v2xsim.geometry import RoadLayout

    class Road:
        layout = RoadLayout()
        departure_listeners: list = []

        def __init__(self):
            self.kinds = []

        def add_vehicle(self, *, x, lane, speed, desired_speed=None, kind="car"):
            self.kinds.append(kind)
            return len(self.kinds) - 1

    road = Road()
    traffic = build.traffic_source(TrafficConfig(truck_share=0.5), road.layout, num_vehicles=4, speed_kmh=30.0)
    traffic.populate(road, np.random.default_rng(0))
    assert sorted(road.kinds) == ["car"] * 4 + ["truck"] * 2
    plain, trucks = (rows_by_scheme(run_point(scenario_factory(traffic={"truck_share": share},
                                                               schemes=[{"name": "oracle"}]),
                                              speed_kmh=30, num_vehicles=4, seed=1))["oracle"]
                     for share in (0.0, 0.5))
    assert plain.mean_vehicles == trucks.mean_vehicles == 4.0  # trucks are never users
    assert trucks.sum_rate != plain.sum_rate  # but they are in the world


@pytest.mark.parametrize("min_speed", [2.0, 0.05])
def test_min_speed_bounds_the_coherence_period_of_slow_cars(scenario_factory, min_speed):
    """A car crawling at 0.5 m/s: the realignment period uses max(speed, min_speed_mps)."""
    scenario = scenario_factory(
        traffic={"pattern": "fixed", "num_vehicles": 0, "arrivals": [{"time_s": 0.0, "lane": 1, "speed_kmh": 1.8}]},
        realignment={"min_speed_mps": min_speed}, schemes=[{"name": "oracle"}], simulation={"duration_s": 2.5})
    output = run_point(scenario, speed_kmh=1.8, num_vehicles=0, seed=0)
    coverage = 2 * 10.0 * np.tan(np.radians(60.0))
    expected = coverage / (34 * max(0.5, min_speed))
    assert output.cycles and all(c["period_s"] == pytest.approx(expected, rel=1e-9) for c in output.cycles)


def test_idm_lane_speed_limits_reach_the_mobility_model_through_the_engine(scenario_factory):
    """A car that wants 90 km/h in a 36 km/h lane slows towards 10 m/s; the coherence
    period (set by the fastest car) shows it. Without the limit it keeps 25 m/s."""
    coverage = 2 * 10.0 * np.tan(np.radians(60.0))
    periods = {}
    for limit in (36.0, None):
        scenario = scenario_factory(
            road={"lanes": [{"speed_limit_kmh": limit} if limit else {}, {}, {}]}, mobility={"model": "idm"},
            traffic={"pattern": "fixed", "num_vehicles": 0,
                     "arrivals": [{"time_s": 0.0, "lane": 0, "speed_kmh": 90.0}]},
            schemes=[{"name": "oracle"}], simulation={"duration_s": 1.5})
        periods[limit] = run_point(scenario, speed_kmh=90, num_vehicles=0, seed=0).cycles[-1]["period_s"]
    assert periods[None] == pytest.approx(coverage / (34 * 25.0), rel=1e-6)
    # IDM approaches v0 from above with a time constant of v0 / (4 a_max) = 1.7 s
    assert coverage / (34 * 16.0) < periods[36.0] <= coverage / (34 * 10.0)


def test_a_schemes_results_do_not_depend_on_the_other_schemes(scenario_factory):
    """Each scheme's generator is named by its label: with the measured sweep (noise drawn
    per scheme) zf_sweep gives the same rows alone, first, or after other schemes."""
    from dataclasses import asdict

    def zf_row(schemes):
        scenario = scenario_factory(schemes=schemes, simulation={"duration_s": 0.2})
        rows = run_point(scenario, speed_kmh=60, num_vehicles=4, seed=3).rows
        return [asdict(r) for r in rows if r.scheme == "zf_sweep"]

    alone = zf_row([{"name": "zf_sweep"}])
    assert alone == zf_row([{"name": "oracle"}, {"name": "wmmse_ce"}, {"name": "zf_sweep"}])
    assert alone == zf_row([{"name": "zf_sweep"}, {"name": "oracle"}])
