"""[radio.measurement] and [radio.array]: validation that names the option, and what the
composition root builds from them."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from v2xsim import build
from v2xsim.channel.codebook import dft_codebook, element_errors, hardware_codebook
from v2xsim.config import ArrayConfig, MeasurementConfig, RadioConfig, RoadConfig, load_scenario, scenario_from_dict
from v2xsim.errors import ConfigError
from v2xsim.units import dbm_to_watt

ROOT = Path(__file__).resolve().parents[1]
HEADLINE = ROOT / "scenarios" / "speed_sweep.toml"


def scenario(**radio):
    return scenario_from_dict({"schemes": [{"name": "zf_sweep"}], "radio": radio, "seed": 3})


@pytest.mark.parametrize("radio, message", [
    ({"measurement": {"floor_dbm": math.nan}}, r"^radio\.measurement\.floor_dbm: .*finite"),
    ({"measurement": {"floor_dbm": math.inf}}, r"^radio\.measurement\.floor_dbm: .*finite"),
    ({"measurement": {"estimation_chips": 0}}, r"^radio\.measurement\.estimation_chips: .*greater than or equal to 1"),
    ({"measurement": {"ideal": "maybe"}}, r"^radio\.measurement\.ideal: "),
    ({"measurement": {"flor_dbm": -70}}, r"^radio\.measurement\.flor_dbm: unknown key"),
    ({"array": {"phase_bits": -1}}, r"^radio\.array\.phase_bits: .*greater than or equal to 0"),
    ({"array": {"phase_bits": 17}}, r"^radio\.array\.phase_bits: .*less than or equal to 16"),
    ({"array": {"amplitude_error_db": -0.5}}, r"^radio\.array\.amplitude_error_db: "),
    ({"array": {"phase_error_deg": math.nan}}, r"^radio\.array\.phase_error_deg: .*finite"),
    ({"array": {"phase_error_deg": 181}}, r"^radio\.array\.phase_error_deg: .*less than or equal to 180"),
    ({"array": {"failed_elements": 16}}, r"^radio: array\.failed_elements must be < num_antennas \(16\), got 16"),
    ({"array": {"bits": 2}}, r"^radio\.array\.bits: unknown key"),
    ({"arrays": {}}, r"^radio\.arrays: unknown key"),
])
def test_bad_radio_options_are_refused_naming_the_option(radio, message):
    with pytest.raises(ConfigError, match=message):
        scenario(**radio)


def test_a_floor_that_overflows_in_watts_is_refused_when_built():
    radio = RadioConfig(measurement={"ideal": False, "floor_dbm": 1e308})
    with pytest.raises(ConfigError, match="radio.measurement.floor_dbm"):
        build.link_budget(radio, RoadConfig())


def test_bad_option_on_the_command_line_exits_2_with_one_line():
    result = subprocess.run([sys.executable, "-m", "v2xsim", "radio", str(HEADLINE), "--set",
                             "radio.array.phase_error_deg=nan"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "radio.array.phase_error_deg" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_default_radio_is_realistic_and_the_ideal_one_keeps_its_dump():
    realistic = RadioConfig()
    assert not realistic.measurement.ideal and not realistic.array.ideal
    assert realistic.model_dump()["array"]["phase_bits"] == 2
    assert RadioConfig(**realistic.model_dump()) == realistic
    radio = RadioConfig(measurement={"ideal": True}, array={"ideal": True})
    # cache keys of models and data sets are built from this dump: an ideal radio's is as
    # before the radio models existed, so its cached models stay valid
    assert set(radio.model_dump()) == {"carrier_ghz", "num_antennas", "num_beams", "tx_power_dbm", "bandwidth_hz",
                                       "noise_figure_db", "sensitivity_dbm"}
    assert set(realistic.model_dump()) >= {"measurement", "array"}
    built = build.link_budget(radio, RoadConfig())
    assert built.measurement.ideal and built.ideal_array and built.model_codebook is built.codebook
    np.testing.assert_array_equal(built.codebook, dft_codebook(16, 34, coverage_angle_rad=math.radians(120)))


def test_realistic_settings_use_the_documented_802_11ad_values():
    m, a = MeasurementConfig(), ArrayConfig()
    assert (m.floor_dbm, m.estimation_chips, m.quantise) == (-78.0, 1152, True)
    assert (a.phase_bits, a.failed_elements, a.calibrated) == (2, 0, False)
    built = build.link_budget(RadioConfig(measurement={"ideal": False}), RoadConfig())
    assert not built.measurement.ideal
    assert built.measurement.floor_w == pytest.approx(float(dbm_to_watt(-78.0)))
    assert built.feedback_threshold == pytest.approx(float(dbm_to_watt(-58.0)))  # a separate number


def test_hardware_array_is_drawn_from_the_scenario_seed_unless_it_has_its_own():
    section = {"array": {"ideal": False, "failed_elements": 1}}
    site = build.scenario_site(scenario(**section))
    nominal = dft_codebook(16, 34, coverage_angle_rad=math.radians(120))
    errors = element_errors(16, build.array_rng(3), amplitude_error_db=1.0, phase_error_deg=10.0, failed_elements=1)
    np.testing.assert_array_equal(site.radio.codebook, hardware_codebook(nominal, phase_bits=2, errors=errors))
    np.testing.assert_array_equal(site.radio.nominal_codebook, nominal)
    assert not site.radio.calibrated and site.radio.model_codebook is site.radio.nominal_codebook
    # the same RSU for the same seed, another for another seed, its own seed wins
    again = build.scenario_site(scenario(**section)).radio.codebook
    np.testing.assert_array_equal(again, site.radio.codebook)
    other = build.scenario_site(scenario_from_dict({"schemes": [{"name": "zf_sweep"}], "radio": section, "seed": 4}))
    assert not np.array_equal(other.radio.codebook, site.radio.codebook)
    own = scenario(array={"ideal": False, "failed_elements": 1, "seed": 4})
    np.testing.assert_array_equal(build.scenario_site(own).radio.codebook, other.radio.codebook)
    # schemes that build their own site from the radio section (training) see the same array
    context_radio = build.scheme_context(scenario(**section), store=None).radio
    assert context_radio.array.seed == 3
    np.testing.assert_array_equal(build.site(RoadConfig(), context_radio).radio.codebook, site.radio.codebook)
    calibrated = build.scenario_site(scenario(array={"ideal": False, "calibrated": True})).radio
    assert calibrated.model_codebook is calibrated.codebook


def test_realistic_radio_is_one_override_per_model_away():
    loaded = load_scenario(HEADLINE, ["radio.measurement.ideal=false", "radio.array.ideal=false"])
    assert not loaded.radio.measurement.ideal and not loaded.radio.array.ideal
