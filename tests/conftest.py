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


def pytest_configure(config):
    """Under pytest-xdist every worker gets one PyTorch thread, so two workers do not
    oversubscribe two cores."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
