"""Phased-array hardware model: quantised phase shifters, element errors, failures."""

import math

import numpy as np
import pytest

from v2xsim.channel.codebook import (
    COTS_PHASE_BITS,
    beam_patterns,
    dft_codebook,
    element_errors,
    hardware_codebook,
    quantise_phases,
    ula_response,
)

NOMINAL = dft_codebook(16, 34, coverage_angle_rad=math.radians(120))


def test_two_bit_array_reproduces_the_gains_of_its_quantised_weights():
    assert COTS_PHASE_BITS == 2
    real = hardware_codebook(NOMINAL, phase_bits=2)
    # by hand: each element's phase rounded to the nearest of 0, 90, 180, 270 degrees
    quarter_turns = np.round(np.angle(NOMINAL) / (np.pi / 2)) % 4
    by_hand = np.exp(1j * np.pi / 2 * quarter_turns) / math.sqrt(16)
    np.testing.assert_allclose(real, by_hand, atol=1e-12)
    assert set(np.round(np.degrees(np.angle(real)) % 360, 6).ravel()) <= {0.0, 90.0, 180.0, 270.0}
    # gains on a set of channels: |h^H c|^2 of the quantised weights
    angles = np.radians(np.linspace(-80, 80, 161))
    h = ula_response(16, np.sin(angles))
    np.testing.assert_allclose(np.abs(h.conj() @ real) ** 2, np.abs(h.conj() @ by_hand) ** 2, atol=1e-9)
    np.testing.assert_allclose(beam_patterns(real, angles), np.abs(h.conj() @ by_hand) ** 2, atol=1e-9)
    # phase-only: the radiated power per beam is unchanged, the peak gain drops (about 0.9 dB
    # on average for 2 bits) and the side lobes rise
    np.testing.assert_allclose(np.linalg.norm(real, axis=0), 1.0)
    fine = np.radians(np.linspace(-89, 89, 17_801))
    ideal_peak = beam_patterns(NOMINAL, fine).max(axis=0)
    real_peak = beam_patterns(real, fine).max(axis=0)
    np.testing.assert_allclose(ideal_peak, 16.0, rtol=1e-4)
    assert np.all(real_peak <= 16.0 + 1e-9)
    assert 0.3 < np.mean(10 * np.log10(ideal_peak / real_peak)) < 1.5


def test_phase_quantiser_states_and_continuous_mode():
    weights = np.exp(1j * np.radians([0, 44, 46, 134, 136, 179, -179, -46]))
    np.testing.assert_allclose(np.degrees(np.angle(quantise_phases(weights, 2))) % 360,
                               [0, 0, 90, 90, 180, 180, 180, 270], atol=1e-9)
    np.testing.assert_allclose(np.degrees(np.angle(quantise_phases(weights, 1))) % 360,
                               [0, 0, 0, 180, 180, 180, 180, 0], atol=1e-9)
    np.testing.assert_array_equal(quantise_phases(weights, 0), weights)
    np.testing.assert_allclose(np.abs(quantise_phases(3 * weights, 3)), 3.0)
    fine = quantise_phases(NOMINAL, 12)
    np.testing.assert_allclose(fine, NOMINAL, atol=2 * np.pi / 2 ** 12)
    with pytest.raises(ValueError, match="bits"):
        quantise_phases(weights, -1)


def test_element_errors_are_seeded_static_and_failures_are_dead():
    a = element_errors(16, np.random.default_rng([0, 5, 0]), amplitude_error_db=1.0, phase_error_deg=10.0,
                       failed_elements=3)
    b = element_errors(16, np.random.default_rng([0, 5, 0]), amplitude_error_db=1.0, phase_error_deg=10.0,
                       failed_elements=3)
    c = element_errors(16, np.random.default_rng([1, 5, 0]), amplitude_error_db=1.0, phase_error_deg=10.0,
                       failed_elements=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert (a == 0).sum() == 3
    np.testing.assert_array_equal(element_errors(8, np.random.default_rng(0)), np.ones(8))
    real = hardware_codebook(NOMINAL, phase_bits=2, errors=a)
    np.testing.assert_array_equal(real[a == 0], 0)  # a dead element radiates nothing in any beam
    # the same static error multiplies the element's weight in every beam
    ratio = real[a != 0] / hardware_codebook(NOMINAL, phase_bits=2)[a != 0]
    np.testing.assert_allclose(ratio, np.repeat(a[a != 0][:, None], 34, axis=1))


def test_element_error_statistics_follow_the_options():
    errors = element_errors(20_000, np.random.default_rng(1), amplitude_error_db=1.5, phase_error_deg=12.0)
    assert np.std(20 * np.log10(np.abs(errors))) == pytest.approx(1.5, rel=0.03)
    assert np.std(np.degrees(np.angle(errors))) == pytest.approx(12.0, rel=0.03)


def test_bad_array_arguments_are_named():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="failed_elements"):
        element_errors(4, rng, failed_elements=4)
    with pytest.raises(ValueError, match="amplitude_error_db"):
        element_errors(4, rng, amplitude_error_db=float("nan"))
    with pytest.raises(ValueError, match="phase_error_deg"):
        element_errors(4, rng, phase_error_deg=-1.0)
    with pytest.raises(ValueError, match="errors"):
        hardware_codebook(NOMINAL, errors=np.ones(3))
