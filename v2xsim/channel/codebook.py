"""Uniform linear array response and the RSU's DFT-style codebook.

Angles are departure angles from the array broadside [rad]; the ULA axis is the road
direction (x), so ``sin(angle) = dx / distance``. Element spacing is in wavelengths.
"""

from __future__ import annotations

import math

import numpy as np

from v2xsim import checks as check

DEFAULT_NUM_ANTENNAS = 16
DEFAULT_NUM_BEAMS = 34
DEFAULT_COVERAGE_ANGLE_RAD = math.radians(120.0)


def ula_response(num_antennas: int, sin_angles, *, element_spacing: float = 0.5) -> np.ndarray:
    """Array response ``a_n = exp(j 2 pi d n sin(theta))``, shape (..., Nt), not normalised.

    Args:
        num_antennas: number of elements Nt.
        sin_angles: sine of the departure angle(s), any shape.
        element_spacing: element spacing [wavelengths].
    """
    check.positive_int("num_antennas", num_antennas)
    check.positive("element_spacing", element_spacing)
    n = np.arange(num_antennas)
    phase = 2.0 * np.pi * element_spacing * np.asarray(sin_angles, dtype=float)[..., None] * n
    return np.exp(1j * phase)


def beam_angles(num_beams: int, coverage_angle_rad: float = DEFAULT_COVERAGE_ANGLE_RAD) -> np.ndarray:
    """Steering angles of the codebook beams [rad], shape (W,), ascending.

    The sector ``[-phi/2, phi/2]`` is split into ``W`` cells of equal width in
    ``sin(angle)`` (spatial frequency, as in a DFT codebook); beam i points at the centre
    of cell i.
    """
    check.positive_int("num_beams", num_beams)
    check.angle_in_open_interval("coverage_angle_rad", coverage_angle_rad, math.pi)
    edge = math.sin(coverage_angle_rad / 2.0)
    centres = -edge + (2.0 * np.arange(num_beams) + 1.0) * edge / num_beams
    return np.arcsin(centres)


def dft_codebook(
    num_antennas: int = DEFAULT_NUM_ANTENNAS,
    num_beams: int = DEFAULT_NUM_BEAMS,
    *,
    coverage_angle_rad: float = DEFAULT_COVERAGE_ANGLE_RAD,
    element_spacing: float = 0.5,
) -> np.ndarray:
    """Codebook ``C`` (Nt, W) of unit-norm steering vectors spread over the coverage sector.

    Column i is ``a(theta_i) / sqrt(Nt)`` with ``theta_i`` from :func:`beam_angles`, so the
    beam gain ``|a(theta)^H c_i|^2`` peaks (value Nt) at ``theta = theta_i``. With W > Nt the
    codebook is oversampled, like the 34 sectors of the 802.11ad Talon router.
    """
    angles = beam_angles(num_beams, coverage_angle_rad)
    return ula_response(num_antennas, np.sin(angles), element_spacing=element_spacing).T / math.sqrt(
        num_antennas
    )
