import itertools

import numpy as np
import pytest

from v2xsim.channel.codebook import dft_codebook, ula_response
from v2xsim.metrics import user_rates
from v2xsim.schemes.solvers import (
    allocation_sum_rate,
    beam_space_channel,
    matched_filter_precoders,
    optimise_allocation,
    random_precoders,
    refit_powers,
    snap_to_codebook,
    snapped_wmmse_allocation,
    wmmse_power,
    wmmse_precoders,
)


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


# ------------------------------------------------------------ precoder-domain WMMSE (wmmse_ce)
def random_channels(rng, num_vehicles, num_antennas):
    return (rng.standard_normal((num_vehicles, num_antennas))
            + 1j * rng.standard_normal((num_vehicles, num_antennas))) / np.sqrt(2)


@pytest.mark.parametrize("num_vehicles,num_antennas", [(1, 4), (3, 4), (4, 4), (6, 4), (10, 16), (20, 16)])
def test_precoder_wmmse_never_lowers_the_sum_rate_and_keeps_the_budget(num_vehicles, num_antennas):
    """Shi et al. (2011), Theorem 3: every WMMSE iteration is a block minimisation of the
    weighted MSE, so the sum rate on the channel it is given never decreases."""
    rng = np.random.default_rng(100 * num_vehicles + num_antennas)
    for trial in range(10):
        h = random_channels(rng, num_vehicles, num_antennas) * 10 ** rng.uniform(-6, -4)
        noise = float(np.mean(np.abs(h) ** 2)) * 10 ** rng.uniform(-3, 1)  # SNR from -10 to 30 dB
        p_max = rng.uniform(0.5, 2.0)
        init = matched_filter_precoders(h, p_max) if trial % 2 else random_precoders(h, p_max, rng)
        result = wmmse_precoders(h, p_max, noise, init=init, max_iters=60, tol=0.0)
        steps = np.diff(result.history)
        assert np.all(steps >= -1e-9 * np.maximum(1.0, result.history[1:])), steps.min()
        assert result.history[-1] > result.history[0] - 1e-12
        assert np.sum(np.abs(result.precoders) ** 2) <= p_max * (1 + 1e-9)
        # history is the sum rate of the metrics module on the given channel
        assert user_rates(h, result.precoders, noise).sum() == pytest.approx(result.history[-1], rel=1e-9)


def test_precoder_wmmse_serves_a_single_vehicle_by_matched_filter_at_full_power():
    rng = np.random.default_rng(3)
    h = random_channels(rng, 1, 8)
    result = wmmse_precoders(h, 2.0, 0.1, init=0.3 * random_precoders(h, 2.0, rng), max_iters=2000, tol=1e-12)
    v = result.precoders[:, 0]
    assert np.linalg.norm(v) ** 2 == pytest.approx(2.0, rel=1e-6)
    assert abs(np.vdot(h[0], v)) == pytest.approx(np.linalg.norm(h) * np.linalg.norm(v), rel=1e-6)
    assert result.history[-1] == pytest.approx(np.log2(1 + 2.0 * np.linalg.norm(h) ** 2 / 0.1), rel=1e-6)


def test_precoder_wmmse_leaves_vehicles_without_a_channel_unserved():
    rng = np.random.default_rng(4)
    h = random_channels(rng, 3, 8)
    h[1] = 0.0
    result = wmmse_precoders(h, 1.0, 0.1)
    assert np.all(result.precoders[:, 1] == 0)
    assert np.linalg.norm(result.precoders[:, [0, 2]]) > 0
    empty = wmmse_precoders(np.zeros((0, 8), complex), 1.0, 0.1)
    assert empty.precoders.shape == (8, 0)


@pytest.mark.parametrize("kwargs,name", [({"p_max": 0.0}, "p_max"), ({"noise_power": -1.0}, "noise_power"),
                                         ({"max_iters": 0}, "max_iters"), ({"tol": -1.0}, "tol"),
                                         ({"init": np.zeros((8, 2))}, "init")])
def test_precoder_wmmse_names_a_bad_argument(kwargs, name):
    arguments = {"h": np.ones((3, 8), complex), "p_max": 1.0, "noise_power": 0.1, **kwargs}
    with pytest.raises(ValueError, match=name):
        wmmse_precoders(**arguments)


def test_snapping_picks_the_beam_most_aligned_with_each_precoder():
    codebook = dft_codebook(16, 34)
    rng = np.random.default_rng(5)
    # a codebook column (with any complex gain) snaps to itself
    beams = np.array([0, 7, 33, 16])
    v = codebook[:, beams] * (rng.uniform(0.1, 3, 4) * np.exp(2j * np.pi * rng.random(4)))
    np.testing.assert_array_equal(snap_to_codebook(v, codebook), beams)
    # a steering vector snaps to the beam of largest |w^H c_b| with w = v / ||v|| (brute force)
    sines = rng.uniform(-0.9, 0.9, 50)
    v = ula_response(16, sines).T * rng.uniform(0.01, 10, 50)
    v = v + 0.2 * random_channels(rng, 16, 50)
    expected = [max(range(34), key=lambda b: abs(np.vdot(v[:, k] / np.linalg.norm(v[:, k]), codebook[:, b])))
                for k in range(50)]
    np.testing.assert_array_equal(snap_to_codebook(v, codebook), expected)
    # no precoder, no beam
    v[:, 3] = 0
    assert snap_to_codebook(v, codebook)[3] == -1
    with pytest.raises(ValueError, match="Nt"):
        snap_to_codebook(np.ones((8, 2)), codebook)


def test_power_refit_keeps_the_budget_and_signs_and_never_loses_rate():
    rng = np.random.default_rng(6)
    for _ in range(30):
        num = int(rng.integers(1, 9))
        beam_space = random_channels(rng, num, 12)
        beams = rng.integers(-1, 12, num)
        init = rng.dirichlet(np.ones(num)) * 1.5
        result = refit_powers(beam_space, beams, 1.5, rng.uniform(0.01, 1.0), init_powers=init)
        assert np.all(result.powers >= 0) and result.powers.sum() <= 1.5 * (1 + 1e-9)
        assert np.all(result.powers[beams < 0] == 0)
        assert result.history[-1] >= result.history[0] - 1e-12
    with pytest.raises(ValueError, match="init_powers"):
        refit_powers(np.ones((2, 3)), np.array([0, 1]), 1.0, 0.1, init_powers=np.array([-1.0, 1.0]))
    with pytest.raises(ValueError, match="beams"):
        refit_powers(np.ones((2, 3)), np.array([0]), 1.0, 0.1)


def test_snapped_wmmse_allocation_is_feasible_and_deterministic():
    codebook = dft_codebook(16, 34)
    rng = np.random.default_rng(7)
    h = random_channels(rng, 6, 16) * 1e-5
    noise = 1e-11
    first = snapped_wmmse_allocation(h, codebook, 1.0, noise)
    again = snapped_wmmse_allocation(h, codebook, 1.0, noise)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    seeded = [snapped_wmmse_allocation(h, codebook, 1.0, noise,
                                       init=random_precoders(h, 1.0, np.random.default_rng(9))) for _ in range(2)]
    np.testing.assert_array_equal(seeded[0][0], seeded[1][0])
    np.testing.assert_array_equal(seeded[0][1], seeded[1][1])
    beams, powers = first
    assert np.all(powers >= 0) and powers.sum() <= 1.0 + 1e-9
    assert np.all((beams >= -1) & (beams < 34)) and np.all(powers[beams < 0] == 0)
    # the refit works on the beams the precoders snapped to
    precoders = wmmse_precoders(h, 1.0, noise).precoders
    snapped = snap_to_codebook(precoders, codebook)
    np.testing.assert_array_equal(beams[beams >= 0], snapped[beams >= 0])
    assert allocation_sum_rate(np.abs(beam_space_channel(h, codebook)) ** 2, beams, powers, noise) > 0
