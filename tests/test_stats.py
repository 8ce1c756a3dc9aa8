"""Confidence intervals across seeds against direct references."""

import numpy as np
import pytest
from scipy import stats as reference

from v2xsim.stats import mean_ci, paired_difference


@pytest.mark.parametrize("values", [[1.0, 2.0], [3.0, 3.5, 2.0, 4.0], list(np.linspace(0, 1, 30))])
def test_mean_ci_is_the_student_t_interval(values):
    got = mean_ci(values)
    low, high = reference.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=reference.sem(values))
    assert got.n == len(values) and got.mean == pytest.approx(np.mean(values))
    assert got.std_error == pytest.approx(reference.sem(values))
    assert (got.ci_low, got.ci_high) == pytest.approx((low, high))


def test_one_seed_has_a_mean_but_no_interval():
    got = mean_ci([2.5])
    assert (got.n, got.mean, got.std_error, got.ci_low, got.ci_high) == (1, 2.5, None, None, None)


def test_paired_difference_removes_the_shared_world_variation():
    world = np.array([10.0, 20.0, 30.0, 40.0])  # seed-to-seed variation both schemes share
    a, b = world + [1.0, 1.2, 0.9, 1.1], world
    paired = paired_difference(a, b)
    unpaired_width = mean_ci(a).ci_high - mean_ci(a).ci_low
    assert paired.mean == pytest.approx(1.05)
    assert paired.ci_high - paired.ci_low < 0.05 * unpaired_width
    assert paired.ci_low > 0


@pytest.mark.parametrize("values,message", [([], "non-empty"), ([1.0, float("nan")], "finite")])
def test_bad_values_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        mean_ci(values)
    with pytest.raises(ValueError, match="same length"):
        paired_difference([1.0, 2.0], [1.0])
