"""The sweep measurement and array models inside the event loop: the ideal radio is
today's radio byte for byte; the measured sweep reaches the schemes; model-based schemes
see the nominal codebook unless the array is calibrated."""

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from v2xsim import build
from v2xsim.radio import quantise_ssw_snr
from v2xsim.registry import SCHEME
from v2xsim.schemes.base import Allocation, Observation, Scheme
from v2xsim.sim.engine import run_point

GOLDEN = json.loads((Path(__file__).resolve().parents[1] / "ideal_radio_golden.json").read_text())
REALISTIC = {"measurement": {"ideal": False}, "array": {"ideal": False}}
SEEN: dict[str, list[Observation]] = {}


def _plain(value):
    return json.loads(json.dumps(value, sort_keys=True, default=float))


class _Recorder(Scheme):
    """Records what the RSU side is given; serves nobody."""

    acquisition = "sweep"

    def feedback_bits(self, num_beams: int) -> int:
        return 1

    def allocate(self, observation: Observation) -> Allocation:
        SEEN.setdefault(self.name, []).append(observation)
        return Allocation.empty(observation.num_vehicles)


#: the idealised radio (exact sweep power, nominal DFT beams)
IDEAL = {"measurement": {"ideal": True}, "array": {"ideal": True}}


class _SweepRecorder(_Recorder):
    name = "radio_test_sweep"


class _GenieRecorder(_Recorder):
    name = "radio_test_genie"
    needs_csi = True


@pytest.fixture(autouse=True, scope="module")
def recorder_schemes():
    """The two recording schemes, registered only while this module's tests run (other
    tests list the registered schemes)."""
    for cls in (_SweepRecorder, _GenieRecorder):
        SCHEME.register(cls.name)(cls)
    yield
    for cls in (_SweepRecorder, _GenieRecorder):
        SCHEME.unregister(cls.name)


def test_ideal_radio_reproduces_the_results_from_before_the_models_byte_for_byte(scenario_factory):
    # golden: run_point of v2xsim as it was before [radio.measurement] / [radio.array] existed
    for radio in (IDEAL, {"measurement": {"ideal": True, "floor_dbm": -60}, "array": {"ideal": True, "phase_bits": 1}}):
        scenario = scenario_factory(schemes=[{"name": "zf_sweep"}], simulation={"duration_s": 0.3}, radio=radio)
        output = run_point(scenario, speed_kmh=60, num_vehicles=4, seed=0)
        run = {"rows": [asdict(r) for r in output.rows], "cycles": output.cycles, "events": output.events}
        assert _plain(run) == GOLDEN["run"]


def test_other_keys_of_ideal_sections_change_nothing_for_any_scheme(scenario_factory):
    default = run_point(scenario_factory(radio=IDEAL), speed_kmh=90, num_vehicles=4, seed=1)
    explicit = run_point(scenario_factory(radio={"measurement": {"ideal": True, "floor_dbm": -60},
                                                 "array": {"ideal": True, "phase_bits": 1}}),
                         speed_kmh=90, num_vehicles=4, seed=1)
    assert _plain([asdict(r) for r in default.rows]) == _plain([asdict(r) for r in explicit.rows])
    assert _plain(default.cycles) == _plain(explicit.cycles)


def _recorded(scenario_factory, radio, *, seed=0):
    SEEN.clear()
    scenario = scenario_factory(schemes=[{"name": "radio_test_sweep"}, {"name": "radio_test_genie"}], radio=radio,
                                simulation={"duration_s": 0.15})
    run_point(scenario, speed_kmh=60, num_vehicles=4, seed=seed)
    return scenario, dict(SEEN)


def test_measured_sweep_reaches_the_rsu_as_the_ssw_field_reports_it(scenario_factory):
    scenario, seen = _recorded(scenario_factory, {"measurement": {"ideal": False}})
    radio = build.scenario_site(scenario).radio
    rss = np.concatenate([o.rss for o in seen["radio_test_sweep"]])
    decoded = rss > 0
    assert decoded.mean() > 0.3  # at 30 dBm most sectors' frames are above -78 dBm
    snr_db = 10 * np.log10(rss[decoded] / radio.noise_power)
    np.testing.assert_allclose(snr_db, quantise_ssw_snr(snr_db), atol=1e-9)
    assert rss[decoded].min() >= radio.measurement.floor_w * 10 ** (-0.5)  # decoded frames are near/above the floor
    # reproducible: same scenario and seed, same measurements; another seed, others
    _, again = _recorded(scenario_factory, {"measurement": {"ideal": False}})
    np.testing.assert_array_equal(np.concatenate([o.rss for o in again["radio_test_sweep"]]), rss)
    _, other = _recorded(scenario_factory, {"measurement": {"ideal": False}}, seed=1)
    assert not np.array_equal(np.concatenate([o.rss for o in other["radio_test_sweep"]])[:5], rss[:5])


def test_model_based_schemes_assume_the_nominal_codebook_unless_calibrated(scenario_factory):
    scenario, seen = _recorded(scenario_factory, {"array": {"ideal": False}})
    radio = build.scenario_site(scenario).radio
    assert not np.allclose(radio.codebook, radio.nominal_codebook)
    for observation in seen["radio_test_sweep"]:
        np.testing.assert_array_equal(observation.codebook, radio.nominal_codebook)
    for observation in seen["radio_test_genie"]:  # the oracle knows the real patterns
        np.testing.assert_array_equal(observation.codebook, radio.codebook)
    scenario, seen = _recorded(scenario_factory, {"array": {"ideal": False, "calibrated": True}})
    for observation in seen["radio_test_sweep"]:
        np.testing.assert_array_equal(observation.codebook, radio.codebook)


def test_calibrated_array_gives_the_ideal_estimators_result_on_the_same_channel(scenario_factory):
    # the "ideal estimator" knows the array's real patterns; with calibrated = true the
    # RSU's model is exactly those patterns, so wmmse_ce decides as the ideal estimator does
    scenario, seen = _recorded(scenario_factory, {"array": {"ideal": False, "calibrated": True}})
    real = build.scenario_site(scenario).radio.codebook
    estimator = SCHEME.create("wmmse_ce", {})
    for observation in seen["radio_test_sweep"][:3]:
        rss = observation.rss
        assert rss.shape[0] > 0
        calibrated = estimator.allocate(observation)
        ideal = estimator.allocate(replace(observation, codebook=real.copy()))
        np.testing.assert_array_equal(calibrated.beams, ideal.beams)
        np.testing.assert_array_equal(calibrated.powers, ideal.powers)


def test_realistic_radio_runs_and_is_reproducible(scenario_factory):
    seed = 0
    scenario = scenario_factory(radio=REALISTIC, simulation={"duration_s": 0.2})
    first = run_point(scenario, speed_kmh=60, num_vehicles=4, seed=seed)
    second = run_point(scenario, speed_kmh=60, num_vehicles=4, seed=seed)
    assert _plain([asdict(r) for r in first.rows]) == _plain([asdict(r) for r in second.rows])
    ideal = run_point(scenario_factory(radio=IDEAL, simulation={"duration_s": 0.2}), speed_kmh=60, num_vehicles=4,
                      seed=seed)
    default = run_point(scenario_factory(simulation={"duration_s": 0.2}), speed_kmh=60, num_vehicles=4, seed=seed)
    assert _plain([asdict(r) for r in default.rows]) == _plain([asdict(r) for r in first.rows])  # realistic by default
    assert [r.sum_rate for r in first.rows] != [r.sum_rate for r in ideal.rows]
    assert all(np.isfinite(r.effective_sum_rate) for r in first.rows)
