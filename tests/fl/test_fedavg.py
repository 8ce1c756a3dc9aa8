"""FL contract and the FedAvg maths."""

import numpy as np
import pytest
import torch

from v2xsim.fl import ClientInfo, ClientUpdate, FitFailure
from v2xsim.fl.aggregation import weighted_average
from v2xsim.registry import FL_STRATEGY


def test_weighted_average_is_the_sample_weighted_mean():
    states = [{"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(2)}, {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(4)}]
    out = weighted_average(states, [1, 3])
    assert torch.allclose(out["w"], torch.tensor([2.5, 5.0]))
    assert out["n"].dtype == torch.int64 and int(out["n"]) == 4  # 3.5, rounded
    arrays = weighted_average([{"a": np.array([0.0, 4.0])}, {"a": np.array([2.0, 0.0])}], [1.0, 1.0])
    np.testing.assert_allclose(arrays["a"], [1.0, 2.0])


@pytest.mark.parametrize("states,weights,message", [
    ([], [], "at least one"),
    ([{"w": torch.zeros(1)}], [1, 2], "weights"),
    ([{"w": torch.zeros(1)}, {"v": torch.zeros(1)}], [1, 1], r"states\[1\]"),
    ([{"w": torch.zeros(1)}], [0], "positive"),
])
def test_weighted_average_rejects_bad_input(states, weights, message):
    with pytest.raises(ValueError, match=message):
        weighted_average(states, weights)


def test_fedavg_strategy_weights_by_samples_or_not_and_keeps_the_model_without_results():
    current = {"w": torch.zeros(2)}
    results = [ClientUpdate(client=1, state={"w": torch.ones(2)}, num_samples=1),
               ClientUpdate(client=2, state={"w": torch.full((2,), 4.0)}, num_samples=3)]
    failures = [FitFailure(client=3, reason="left coverage")]
    weighted = FL_STRATEGY.create("fedavg")
    clients = [ClientInfo(client=c, modalities=("gps",), num_samples=1) for c in (1, 2, 3)]
    assert [i.client for i in weighted.configure_fit(1, clients, np.random.default_rng(0))] == [1, 2, 3]
    assert torch.allclose(weighted.aggregate_fit(1, results, failures, current)["w"], torch.full((2,), 3.25))
    plain = FL_STRATEGY.create("fedavg", {"weighted": False})
    assert torch.allclose(plain.aggregate_fit(1, results, failures, current)["w"], torch.full((2,), 2.5))
    assert torch.equal(weighted.aggregate_fit(2, [], failures, current)["w"], current["w"])
