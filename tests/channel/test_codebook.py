import math

import numpy as np
import pytest

from v2xsim.channel.codebook import beam_angles, dft_codebook, ula_response


@pytest.mark.parametrize("num_antennas,num_beams", [(16, 34), (8, 8), (4, 17), (1, 3), (64, 128)])
def test_columns_are_unit_norm(num_antennas, num_beams):
    codebook = dft_codebook(num_antennas, num_beams)
    assert codebook.shape == (num_antennas, num_beams)
    assert np.iscomplexobj(codebook)
    np.testing.assert_allclose(np.linalg.norm(codebook, axis=0), 1.0, atol=1e-12)


@pytest.mark.parametrize("num_antennas,num_beams", [(16, 34), (8, 12), (32, 34)])
def test_each_beam_peaks_at_its_own_steering_angle(num_antennas, num_beams):
    codebook = dft_codebook(num_antennas, num_beams)
    angles = beam_angles(num_beams)
    fine = np.linspace(-math.pi / 3, math.pi / 3, 20001)
    gain = np.abs(ula_response(num_antennas, np.sin(fine)).conj() @ codebook) ** 2  # (G, W)
    peak_angles = fine[np.argmax(gain, axis=0)]
    np.testing.assert_allclose(peak_angles, angles, atol=2e-4)
    np.testing.assert_allclose(gain.max(axis=0), num_antennas, rtol=1e-3)
    # at its own angle every beam beats every other beam
    own = np.abs(ula_response(num_antennas, np.sin(angles)).conj() @ codebook) ** 2
    assert np.all(np.argmax(own, axis=1) == np.arange(num_beams))


def test_beams_spread_over_the_coverage_sector():
    angles = beam_angles(34, math.radians(120))
    assert np.all(np.diff(angles) > 0)
    assert -math.radians(60) < angles[0] < -math.radians(50)
    assert math.radians(50) < angles[-1] < math.radians(60)
    np.testing.assert_allclose(angles, -angles[::-1], atol=1e-12)


@pytest.mark.parametrize("kwargs,name", [
    ({"num_antennas": 0, "num_beams": 4}, "num_antennas"),
    ({"num_antennas": 4, "num_beams": 0}, "num_beams"),
    ({"num_antennas": 4, "num_beams": 4, "coverage_angle_rad": math.pi}, "coverage_angle_rad"),
    ({"num_antennas": 4, "num_beams": 4, "element_spacing": -0.5}, "element_spacing"),
])
def test_bad_arguments_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        dft_codebook(**kwargs)
