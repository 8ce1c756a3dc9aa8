"""Uniform linear array response, the RSU's DFT-style codebook, and the phased-array
hardware model (quantised phase shifters, element errors and failures; docs/radio.md).

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


# ------------------------------------------------------------------ phased-array hardware
#: phase-shifter resolution of COTS 60 GHz arrays: the QCA9500 of the Talon AD7200 (the
#: FLASH routers) drives its elements with 2-bit phase shifters (Steinmetzer et al.,
#: "Compressive millimeter-wave sector selection in off-the-shelf IEEE 802.11ad devices",
#: CoNEXT 2017; docs/radio.md)
COTS_PHASE_BITS = 2


def quantise_phases(weights: np.ndarray, bits: int) -> np.ndarray:
    """Element weights with their phases rounded to the nearest of ``2^bits`` equally
    spaced states ``2 pi m / 2^bits`` (halves round up); magnitudes unchanged.
    ``bits = 0`` leaves the phases continuous."""
    weights = np.asarray(weights, dtype=complex)
    if isinstance(bits, bool) or int(bits) != bits or bits < 0:
        raise ValueError(f"bits must be an integer >= 0, got {bits!r}")
    if bits == 0:
        return weights.copy()
    states = 2 ** int(bits)
    step = 2.0 * np.pi / states
    index = np.mod(np.floor(np.angle(weights) / step + 0.5), states)
    return np.abs(weights) * np.exp(1j * step * index)


def element_errors(num_antennas: int, rng: np.random.Generator, *, amplitude_error_db: float = 0.0,
                   phase_error_deg: float = 0.0, failed_elements: int = 0) -> np.ndarray:
    """Complex gain of each element's RF chain, (Nt,): ``10^(a_n / 20) exp(j phi_n)`` with
    ``a_n ~ N(0, amplitude_error_db^2)`` [dB] and ``phi_n ~ N(0, phase_error_deg^2)`` [deg]
    drawn once per array (static errors: the same for every beam), and 0 for
    ``failed_elements`` elements picked at random.

    Draw order (fixed, so a seed gives one array): amplitudes, phases, failed elements.
    """
    check.positive_int("num_antennas", num_antennas)
    check.non_negative("amplitude_error_db", amplitude_error_db)
    check.non_negative("phase_error_deg", phase_error_deg)
    if isinstance(failed_elements, bool) or int(failed_elements) != failed_elements or \
            not 0 <= failed_elements < num_antennas:
        raise ValueError(f"failed_elements must be an integer in [0, {num_antennas - 1}], got {failed_elements!r}")
    amplitude_db = np.zeros(num_antennas)
    phase = np.zeros(num_antennas)
    if amplitude_error_db > 0:
        amplitude_db = rng.normal(0.0, amplitude_error_db, num_antennas)
    if phase_error_deg > 0:
        phase = np.radians(rng.normal(0.0, phase_error_deg, num_antennas))
    gains = 10.0 ** (amplitude_db / 20.0) * np.exp(1j * phase)
    if failed_elements:
        gains[rng.choice(num_antennas, int(failed_elements), replace=False)] = 0.0
    return gains


def hardware_codebook(nominal: np.ndarray, *, phase_bits: int = 0,
                      errors: np.ndarray | None = None) -> np.ndarray:
    """Beams a phased array really radiates for the codebook ``nominal`` (Nt, W): each
    column's element weights with their phases quantised to ``phase_bits`` bits
    (:func:`quantise_phases`; 0 = continuous), times the elements' gains ``errors`` (Nt,)
    (:func:`element_errors`; None = perfect elements).

    Not renormalised: a weaker or failed element radiates less, as in the hardware.
    """
    nominal = np.asarray(nominal, dtype=complex)
    if nominal.ndim != 2:
        raise ValueError(f"nominal must have shape (Nt, W), got {nominal.shape}")
    weights = quantise_phases(nominal, phase_bits)
    if errors is not None:
        errors = np.asarray(errors, dtype=complex)
        if errors.shape != (nominal.shape[0],):
            raise ValueError(f"errors must have shape (Nt={nominal.shape[0]},), got {errors.shape}")
        weights = weights * errors[:, None]
    return weights


def beam_patterns(codebook: np.ndarray, angles_rad, *, element_spacing: float = 0.5) -> np.ndarray:
    """Power gain ``|a(theta)^H c_i|^2`` of every beam at every departure angle, shape
    (len(angles), W) (value Nt at the peak of an ideal unit-norm beam)."""
    codebook = np.asarray(codebook)
    response = ula_response(codebook.shape[0], np.sin(np.asarray(angles_rad, dtype=float)),
                            element_spacing=element_spacing)
    return np.abs(response.conj() @ codebook) ** 2
