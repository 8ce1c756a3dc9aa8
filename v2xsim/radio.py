"""Link budget of one RSU site: codebook, power budget, noise, feedback threshold."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from v2xsim import checks as check

#: thermal noise power spectral density kT at 290 K [dBm/Hz]
THERMAL_NOISE_DBM_PER_HZ = -174.0


def noise_power_dbm(bandwidth_hz: float, noise_figure_db: float) -> float:
    """Receiver noise power ``kTB + NF`` [dBm]."""
    check.positive("bandwidth_hz", bandwidth_hz)
    return THERMAL_NOISE_DBM_PER_HZ + 10 * math.log10(bandwidth_hz) + check.finite("noise_figure_db", noise_figure_db)


@dataclass(frozen=True, kw_only=True)
class Radio:
    """Link-budget constants of one scenario.

    Attributes:
        codebook: (Nt, W) RSU codebook, unit-norm columns.
        p_max: total transmit power [W].
        noise_power: receiver noise power [W].
        feedback_threshold: receiver sensitivity for RSS / binary feedback [W].
        bandwidth_hz: signal bandwidth [Hz] (bits = bit/s/Hz x s x bandwidth).
    """

    codebook: np.ndarray
    p_max: float
    noise_power: float
    feedback_threshold: float
    bandwidth_hz: float

    @property
    def num_beams(self) -> int:
        return int(self.codebook.shape[1])

    @property
    def num_antennas(self) -> int:
        return int(self.codebook.shape[0])
