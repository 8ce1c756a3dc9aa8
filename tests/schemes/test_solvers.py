import itertools

import numpy as np
import pytest

from v2xsim.schemes.solvers import allocation_sum_rate, optimise_allocation, wmmse_power


@pytest.mark.parametrize("num_vehicles", [1, 2, 5, 10, 20])
def test_wmmse_never_ends_below_its_initial_point(num_vehicles):
    rng = np.random.default_rng(num_vehicles)
    for _ in range(25):
        gains = np.abs(rng.standard_normal((num_vehicles, num_vehicles)))
        gains[np.diag_indices(num_vehicles)] *= rng.uniform(1, 10, num_vehicles)
        noise = rng.uniform(1e-3, 1.0)
        init = rng.dirichlet(np.ones(num_vehicles)) * 2.0
        result = wmmse_power(gains, 2.0, noise, init_powers=init)
        assert result.history[-1] >= result.history[0] - 1e-12
        final = np.log2(1 + np.diag(gains ** 2 * result.powers) /
                        ((gains ** 2 * result.powers).sum(1) - np.diag(gains ** 2 * result.powers) + noise)).sum()
        assert final >= result.history[0] - 1e-9
        assert result.powers.sum() <= 2.0 * (1 + 1e-9)
        assert np.all(result.powers >= 0)


def test_wmmse_gives_all_power_to_a_single_user():
    result = wmmse_power(np.array([[0.3]]), 5.0, 0.1)
    assert result.powers[0] == pytest.approx(5.0)


def exhaustive_optimum(beam_power, p_max, noise, steps=20):
    """Best sum rate over every beam choice (or none) and a power grid on the simplex."""
    num, num_beams = beam_power.shape
    grid = [np.array(c) / steps for c in itertools.product(range(steps + 1), repeat=num) if sum(c) == steps]
    best = 0.0
    for beams in itertools.product(range(-1, num_beams), repeat=num):
        beams = np.array(beams)
        for share in grid:
            best = max(best, allocation_sum_rate(beam_power, beams, share * p_max, noise))
    return best


@pytest.mark.parametrize("num_vehicles", [1, 2, 3])
def test_joint_solver_matches_exhaustive_search_for_small_k(num_vehicles):
    rng = np.random.default_rng(40 + num_vehicles)
    for _ in range(4):
        beam_space = rng.standard_normal((num_vehicles, 5)) + 1j * rng.standard_normal((num_vehicles, 5))
        noise = rng.uniform(0.05, 1.0)
        beams, powers, rate = optimise_allocation(beam_space, 1.0, noise)
        reference = exhaustive_optimum(np.abs(beam_space) ** 2, 1.0, noise, steps=12 if num_vehicles == 3 else 40)
        assert rate >= 0.99 * reference
        assert powers.sum() <= 1.0 + 1e-9
        assert rate == pytest.approx(allocation_sum_rate(np.abs(beam_space) ** 2, beams, powers, noise))
