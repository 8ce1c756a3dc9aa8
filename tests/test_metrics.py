import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from v2xsim.metrics import (
    binary_feedback,
    effective_rate,
    feedback_adjacency,
    precoders,
    rss_vector,
    sum_rate,
    user_rates,
)


def direct_rates(h, t, noise):
    """Eq. 2 of seed 002 written out loop by loop."""
    out = []
    for k in range(h.shape[0]):
        signal = abs(np.vdot(h[k], t[:, k])) ** 2
        interference = sum(abs(np.vdot(h[k], t[:, i])) ** 2 for i in range(h.shape[0]) if i != k)
        out.append(math.log2(1 + signal / (interference + noise)))
    return np.array(out)


def random_complex(rng, *shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


@pytest.mark.parametrize("num_vehicles,num_antennas", [(1, 4), (3, 16), (10, 16), (7, 2)])
def test_user_rates_match_the_formula(rng, num_vehicles, num_antennas):
    for _ in range(20):
        h = random_complex(rng, num_vehicles, num_antennas)
        t = random_complex(rng, num_antennas, num_vehicles) * rng.uniform(0.1, 2.0)
        noise = rng.uniform(1e-3, 10.0)
        np.testing.assert_allclose(user_rates(h, t, noise), direct_rates(h, t, noise), rtol=1e-10)
        assert sum_rate(h, t, noise) == pytest.approx(direct_rates(h, t, noise).sum())


def test_single_user_reduces_to_log2_one_plus_snr(rng):
    h = random_complex(rng, 1, 8)
    t = random_complex(rng, 8, 1)
    gain = abs(np.vdot(h[0], t[:, 0])) ** 2
    assert user_rates(h, t, 0.5)[0] == pytest.approx(math.log2(1 + gain / 0.5))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), num_vehicles=st.integers(1, 6), noise=st.floats(1e-4, 10.0))
def test_an_extra_interferer_never_raises_any_rate(seed, num_vehicles, noise):
    rng = np.random.default_rng(seed)
    h = random_complex(rng, num_vehicles + 1, 4)
    t = random_complex(rng, 4, num_vehicles + 1)
    before = user_rates(h[:num_vehicles], t[:, :num_vehicles], noise)
    after = user_rates(h, t, noise)[:num_vehicles]
    assert np.all(after <= before + 1e-12)


def test_no_vehicles_gives_an_empty_result():
    assert user_rates(np.zeros((0, 16), complex), np.zeros((16, 0), complex), 1.0).shape == (0,)
    assert sum_rate(np.zeros((0, 16), complex), np.zeros((16, 0), complex), 1.0) == 0.0


def test_user_rates_rejects_bad_noise_and_shapes(rng):
    h, t = random_complex(rng, 2, 4), random_complex(rng, 4, 2)
    with pytest.raises(ValueError, match="noise_power"):
        user_rates(h, t, 0.0)
    with pytest.raises(ValueError, match="noise_power"):
        user_rates(h, t, float("nan"))
    with pytest.raises(ValueError, match="t must have shape"):
        user_rates(h, t[:, :1], 1.0)


@pytest.mark.parametrize("rate,t_coh,t_delay,expected", [
    (10.0, 0.06, 0.0, 10.0),
    (10.0, 0.06, 0.03, 5.0),
    (10.0, 0.06, 0.06, 0.0),
    (10.0, 0.06, 0.2, 0.0),
])
def test_effective_rate(rate, t_coh, t_delay, expected):
    assert effective_rate(rate, t_coh, t_delay) == pytest.approx(expected)


def test_effective_rate_on_arrays_and_bad_input():
    np.testing.assert_allclose(effective_rate(np.array([2.0, 4.0]), 0.1, 0.025), [1.5, 3.0])
    with pytest.raises(ValueError, match="t_coherence"):
        effective_rate(1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="t_delay"):
        effective_rate(1.0, 1.0, -1.0)
    with pytest.raises(ValueError, match="rate"):
        effective_rate(float("nan"), 1.0, 0.0)


def test_rss_feedback_and_graph(codebook):
    rng = np.random.default_rng(3)
    h = random_complex(rng, 5, 16)
    rss = rss_vector(h, codebook, tx_power=2.0)
    expected = np.array([[2.0 * abs(np.vdot(h[k], codebook[:, i])) ** 2 for i in range(34)] for k in range(5)])
    np.testing.assert_allclose(rss, expected)
    threshold = float(np.median(rss))
    feedback = binary_feedback(rss, threshold)
    np.testing.assert_array_equal(feedback, (rss > threshold).astype(np.uint8))
    adjacency = feedback_adjacency(feedback)
    for i in range(5):
        assert not adjacency[i, i]
        for j in range(5):
            if i != j:
                assert adjacency[i, j] == (feedback[i] @ feedback[j] >= 1)
    assert np.array_equal(adjacency, adjacency.T)


def test_feedback_graph_edges():
    v = np.array([[1, 0, 0, 1], [0, 0, 0, 1], [0, 1, 1, 0], [0, 0, 0, 0]])
    adjacency = feedback_adjacency(v)
    assert adjacency[0, 1] and adjacency[1, 0]
    assert not adjacency[0, 2] and not adjacency[2, 3] and not adjacency[3].any()


def test_precoders_place_sqrt_power_on_the_chosen_beam(codebook):
    t = precoders(codebook, np.array([3, -1, 10]), np.array([4.0, 1.0, 0.25]))
    np.testing.assert_allclose(t[:, 0], 2.0 * codebook[:, 3])
    np.testing.assert_allclose(t[:, 1], 0.0)
    np.testing.assert_allclose(t[:, 2], 0.5 * codebook[:, 10])
    with pytest.raises(ValueError, match="beams"):
        precoders(codebook, np.array([34]), np.array([1.0]))


# ------------------------------------------------------------ feedback prediction, imbalance
def test_feedback_accuracies():
    from v2xsim.metrics import bit_accuracy, exact_match_accuracy, top1_beam_hit

    true = np.array([[1, 0, 0, 1], [0, 0, 1, 0]])
    predicted = np.array([[1, 0, 0, 1], [0, 1, 1, 0]])
    assert bit_accuracy(predicted, true) == pytest.approx(7 / 8)
    assert exact_match_accuracy(predicted, true) == 0.5
    rss = np.array([[3.0, 0, 0, 1.0], [0, 0, 2.0, 0], [0, 0, 0, 0]])
    scores = np.array([[0.9, 0.1, 0.1, 0.95], [0.1, 0.2, 0.8, 0.1], [1.0, 0, 0, 0]])
    assert top1_beam_hit(scores, rss) == 0.5  # the silent third sample does not count
    with pytest.raises(ValueError, match="shape"):
        bit_accuracy(predicted, true[:, :3])


def test_label_overlap_is_one_for_identical_and_zero_for_disjoint_label_sets():
    from v2xsim.metrics import label_overlap

    a = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]])
    assert label_overlap([a, a[::-1], a]) == pytest.approx(1.0)
    assert label_overlap([a, np.array([[0, 0, 1]])]) == 0.0
    # half of vehicle 0's mass is on [1,0,0], vehicle 1 has only [1,0,0]: overlap 0.5
    assert label_overlap([a, np.array([[1, 0, 0]] * 3)]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="two vehicles"):
        label_overlap([a])


def test_modality_completeness_averages_per_vehicle_ratios():
    from v2xsim.metrics import modality_completeness

    counts = np.array([[100, 100, 50], [100, 0, 100], [0, 0, 0]])  # (K, Q): gps, image, lidar
    np.testing.assert_allclose(modality_completeness(counts), [2 / 3, 1 / 3, 0.5])
    with pytest.raises(ValueError, match="sample_counts"):
        modality_completeness(np.array([1, 2]))


@pytest.mark.parametrize("snr_db,target", [(0.0, 5.0), (24.7, 12.79), (-10.0, 1.0)])
def test_power_offset_meets_the_target_rate_exactly(snr_db, target):
    from v2xsim.metrics import power_offset_db_for_rate

    snr = np.full(7, 10 ** (snr_db / 10))
    expected = 10 * np.log10((2 ** target - 1) / snr[0])  # log2(1 + g snr) = target
    assert power_offset_db_for_rate(snr, target) == pytest.approx(expected, abs=1e-5)


def test_power_offset_of_mixed_snrs_gives_the_target_mean():
    from v2xsim.metrics import power_offset_db_for_rate

    snr = np.array([0.0, 1.0, 100.0, 1e4])
    gain = 10 ** (power_offset_db_for_rate(snr, 8.0) / 10)
    assert np.mean(np.log2(1 + gain * snr)) == pytest.approx(8.0, abs=1e-5)


@pytest.mark.parametrize("snr,target,message", [
    ([np.nan, 1.0], 5.0, "snr must be"), ([0.0, 0.0], 5.0, "every sample is silent"),
    ([1.0], float("inf"), "target_rate"), ([1.0], -1.0, "target_rate"), ([1.0], 500.0, "out of reach"),
])
def test_power_offset_refuses_bad_input(snr, target, message):
    from v2xsim.metrics import power_offset_db_for_rate

    with pytest.raises(ValueError, match=message):
        power_offset_db_for_rate(np.array(snr), target)
