"""Shared seeded fixtures."""

import numpy as np
import pytest

from v2xsim.channel.codebook import dft_codebook
from v2xsim.metrics import dbm_to_watt


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def codebook() -> np.ndarray:
    return dft_codebook(16, 34)


@pytest.fixture(scope="session")
def noise_power() -> float:
    # kTB over 2.16 GHz with a 7 dB noise figure
    return float(dbm_to_watt(-174 + 10 * np.log10(2.16e9) + 7))
