"""The 802.11ad sweep measurement model and the sector statistics (v2xsim.radio)."""

import math

import numpy as np
import pytest

from v2xsim.radio import (
    CONTROL_PHY_SENSITIVITY_DBM,
    SSW_SNR_MAX_DB,
    Radio,
    SweepMeasurement,
    best_sector_changes,
    frame_power_error_std,
    frame_power_estimate,
    quantise_ssw_snr,
    sector_statistics,
    ssw_snr_code,
    ssw_snr_db,
    summarise_sector_statistics,
)
from v2xsim.units import dbm_to_watt


# ------------------------------------------------------------------ SSW-Feedback SNR field
def test_snr_field_steps_and_range_are_the_standards():
    codes = np.arange(256)
    np.testing.assert_array_equal(ssw_snr_db(codes), -8.0 + 0.25 * codes)
    assert ssw_snr_db(0) == -8.0 and ssw_snr_db(255) == 55.75 == SSW_SNR_MAX_DB
    # every representable SNR maps to its own code and back
    np.testing.assert_array_equal(ssw_snr_code(-8.0 + 0.25 * codes), codes)
    assert ssw_snr_code(0.0) == 32 and ssw_snr_code(20.0) == 112


def test_snr_field_rounds_to_the_nearest_step_and_clamps():
    assert ssw_snr_code(10.1) == ssw_snr_code(10.0)  # 10.1 dB -> 10.0 dB
    assert ssw_snr_code(10.2) == ssw_snr_code(10.25)
    assert ssw_snr_code(10.125) == ssw_snr_code(10.25)  # halves round up
    np.testing.assert_array_equal(ssw_snr_code([-8.2, -30.0, -np.inf, np.nan]), [0, 0, 0, 0])
    np.testing.assert_array_equal(ssw_snr_code([55.8, 60.0, np.inf]), [255, 255, 255])
    snr = np.random.default_rng(0).uniform(-8, 55.75, 10_000)
    error = quantise_ssw_snr(snr) - snr
    assert np.abs(error).max() <= 0.125 + 1e-12
    assert ssw_snr_code(snr).dtype == np.uint8


def test_snr_field_refuses_values_it_cannot_carry():
    for bad in (-1, 256, 2.5):
        with pytest.raises(ValueError, match="0..255"):
            ssw_snr_db(bad)


# ------------------------------------------------------------------ frame power estimate
@pytest.mark.parametrize("snr_db", [-4.0, 0.0, 10.0, 30.0])
def test_power_estimate_error_mean_and_spread_match_the_frame_snr(snr_db):
    noise, chips, draws = 1e-11, 1152, 40_000
    power = noise * 10 ** (snr_db / 10)
    estimate = frame_power_estimate(np.full(draws, power), noise, chips, np.random.default_rng(7))
    error = estimate - power
    expected_std = float(frame_power_error_std(power, noise, chips))
    assert expected_std == pytest.approx(math.sqrt((2 * power * noise + noise ** 2) / chips))
    # unbiased: the mean error is within 4 standard errors of 0
    assert abs(error.mean()) < 4 * expected_std / math.sqrt(draws)
    # spread within sampling tolerance (relative s.e. of a std is ~1/sqrt(2n))
    assert error.std() == pytest.approx(expected_std, rel=4 / math.sqrt(2 * draws))
    # the relative error grows as the SNR falls
    assert expected_std / power == pytest.approx(math.sqrt((2 / 10 ** (snr_db / 10) + 10 ** (-snr_db / 5)) / chips))


def test_power_estimate_refuses_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="noise_power"):
        frame_power_estimate([1.0], 0.0, 10, rng)
    with pytest.raises(ValueError, match="num_chips"):
        frame_power_estimate([1.0], 1.0, 0, rng)
    with pytest.raises(ValueError, match="power"):
        frame_power_estimate([-1.0], 1.0, 10, rng)
    with pytest.raises(ValueError, match="power"):
        frame_power_estimate([np.nan], 1.0, 10, rng)


# ------------------------------------------------------------------ the measurement
def test_ideal_measurement_returns_the_power_untouched_and_draws_nothing():
    power = np.array([[1e-9, 1e-13, 0.0]])
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    assert SweepMeasurement().measure(power, 1e-11, rng) is power
    assert rng.bit_generator.state == state
    assert SweepMeasurement().measure(power, 1e-11, None) is power


def test_measurement_floor_quantisation_and_reported_power():
    noise = float(dbm_to_watt(-73.6))
    floor = float(dbm_to_watt(CONTROL_PHY_SENSITIVITY_DBM))
    model = SweepMeasurement(ideal=False, floor_w=floor, estimation_chips=1152, quantise=True)
    power = np.array([floor * 0.99, floor * 1.01, noise * 100.0, noise * 1e7])
    reported = model.measure(power, noise, np.random.default_rng(0))
    assert reported[0] == 0.0  # below the control-PHY sensitivity: not decoded
    assert reported[1] > 0 and reported[2] > 0
    snr_db = 10 * np.log10(reported[1:] / noise)
    np.testing.assert_allclose(snr_db, quantise_ssw_snr(snr_db), atol=1e-9)  # on the 0.25 dB grid
    assert snr_db[-1] == pytest.approx(55.75)  # 70 dB clamps to the field's top
    assert abs(snr_db[1] - 20.0) < 0.5  # 20 dB SNR measured within the estimation error
    with pytest.raises(ValueError, match="random generator"):
        model.measure(power, noise, None)


def test_unquantised_measurement_is_the_estimate_clipped_at_zero():
    model = SweepMeasurement(ideal=False, floor_w=0.0, estimation_chips=4, quantise=False)
    power = np.full(2000, 1e-12)
    reported = model.measure(power, 1e-11, np.random.default_rng(1))
    assert reported.min() >= 0 and len(np.unique(reported)) > 100


def test_radio_model_codebook_follows_calibration():
    nominal = np.eye(4, dtype=complex)
    real = nominal * 0.9
    common = dict(p_max=1.0, noise_power=1e-11, feedback_threshold=0.0, bandwidth_hz=1e9)
    assert Radio(codebook=nominal, **common).model_codebook is nominal
    assert Radio(codebook=real, nominal_codebook=nominal, calibrated=False, **common).model_codebook is nominal
    assert Radio(codebook=real, nominal_codebook=nominal, calibrated=True, **common).model_codebook is real
    assert not Radio(codebook=real, nominal_codebook=nominal, **common).ideal_array


# ------------------------------------------------------------------ sector statistics
def test_sector_statistics_of_hand_made_sweeps():
    db = lambda *levels: [10 ** (x / 10) if x is not None else 0.0 for x in levels]  # noqa: E731
    rss = np.array([
        db(0, -1, -2.5, -4, -7, -20, None),  # 6 heard
        db(None, None, -3, None, None, None, None),  # 1 heard
        [0.0] * 7,  # nothing heard
    ])
    stats = sector_statistics(rss)
    np.testing.assert_array_equal(stats["heard"], [6, 1, 0])
    np.testing.assert_allclose(stats["best_minus_second_db"], [1.0, np.nan, np.nan])
    np.testing.assert_allclose(stats["best_minus_fifth_db"], [7.0, np.nan, np.nan])
    np.testing.assert_allclose(stats["best_minus_median_db"], [3.25, 0.0, np.nan])  # median of 6 levels
    np.testing.assert_array_equal(stats["within_3db"], [2, 0, 0])  # the best not counted
    np.testing.assert_array_equal(stats["within_6db"], [3, 0, 0])
    np.testing.assert_array_equal(stats["best"], [0, 2, -1])


def test_best_sector_changes_only_within_a_track_and_where_heard():
    best = np.array([3, 3, 4, -1, 5, 5, 6, 7])
    track = np.array([0, 0, 0, 0, 0, 1, 1, 2])
    # pairs: (3,3) no, (3,4) yes, (4,-1) skip, (-1,5) skip, (5,5) new track skip, (5,6) yes, (6,7) skip
    np.testing.assert_array_equal(best_sector_changes(best, track), [False, True, True])
    summary = summarise_sector_statistics(np.array([[1.0, 2.0], [2.0, 1.0], [2.0, 1.0]]), np.array([0, 0, 0]))
    assert summary["best_changes"] == 0.5 and summary["samples"] == 3 and summary["heard"] == 2
    with pytest.raises(ValueError, match="shape"):
        best_sector_changes(best, track[:-1])
    with pytest.raises(ValueError, match="shape"):
        sector_statistics(np.ones(3))


def test_measured_rss_error_through_the_model_matches_the_frame_snr():
    noise, draws = 1e-11, 40_000
    model = SweepMeasurement(ideal=False, floor_w=0.0, estimation_chips=1152, quantise=False)
    for snr_db in (-3.0, 6.0):
        power = noise * 10 ** (snr_db / 10)
        error = model.measure(np.full(draws, power), noise, np.random.default_rng(11)) - power
        expected = float(frame_power_error_std(power, noise, 1152))
        assert abs(error.mean()) < 4 * expected / math.sqrt(draws)
        assert error.std() == pytest.approx(expected, rel=4 / math.sqrt(2 * draws))
    # quantised: the SNR error is the estimation error plus at most half a 0.25 dB step
    quantised = SweepMeasurement(ideal=False, floor_w=0.0, estimation_chips=1152, quantise=True)
    power = noise * 10 ** (12.3 / 10)
    reported_db = 10 * np.log10(quantised.measure(np.full(draws, power), noise, np.random.default_rng(2)) / noise)
    estimate_std_db = 10 * np.log10(1 + float(frame_power_error_std(power, noise, 1152)) / power)
    assert abs(reported_db.mean() - 12.3) < 0.125 + 4 * estimate_std_db / math.sqrt(draws) + 0.01
    assert np.abs(reported_db - 12.3).max() < 0.125 + 6 * estimate_std_db
