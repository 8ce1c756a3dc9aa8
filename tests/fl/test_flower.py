"""The Flower adapter: Flower's server strategies behind the v2xsim strategy contract."""

import io
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("flwr")

from v2xsim.errors import ConfigError  # noqa: E402
from v2xsim.fl.base import ClientInfo, ClientUpdate, FitFailure  # noqa: E402
from v2xsim.fl.flower import FlowerStrategy  # noqa: E402
from v2xsim.registry import FL_STRATEGY  # noqa: E402

SAMPLES = (2, 4, 10)  # weights 1/8, 1/4, 5/8: exact in binary floating point


def random_state(generator: torch.Generator, step: int) -> dict[str, torch.Tensor]:
    """A small model state: float weights and int64 BatchNorm counters (multiples of 8, so
    their sample-weighted means are exact integers)."""
    return {
        "layer.weight": torch.randn(3, 4, generator=generator),
        "layer.bias": torch.randn(3, generator=generator),
        "bn.running_mean": torch.randn(3, generator=generator),
        "bn.num_batches_tracked": torch.tensor(8 * step, dtype=torch.int64),
        "head.weight": torch.randn(2, 3, generator=generator, dtype=torch.float64),
    }


def updates(seed: int, samples=SAMPLES) -> tuple[dict, list[ClientUpdate]]:
    generator = torch.Generator().manual_seed(seed)
    current = random_state(generator, 0)
    results = [ClientUpdate(client=10 + i, state=random_state(generator, i + 1), num_samples=n)
               for i, n in enumerate(samples)]
    return current, results


def flower(strategy: str = "FedAvg", **options) -> FlowerStrategy:
    return FL_STRATEGY.create("flower", {"strategy": strategy, "options": options})


def test_flower_fedavg_equals_v2xsim_fedavg_and_keeps_dtypes():
    current, results = updates(seed=0)
    ours = FL_STRATEGY.create("fedavg").aggregate_fit(1, results, [], current)
    theirs = flower("FedAvg").aggregate_fit(1, results, [], current)
    assert list(theirs) == list(current)
    for key, value in current.items():
        assert theirs[key].dtype == value.dtype and theirs[key].shape == value.shape, key
        assert (theirs[key].double() - ours[key].double()).abs().max().item() < 1e-6, key
    assert int(theirs["bn.num_batches_tracked"]) == (2 * 8 + 4 * 16 + 10 * 24) // 16


def test_flower_int_entries_are_rounded_not_truncated():
    current = {"n": torch.tensor(0), "w": np.zeros(2, dtype=np.float32)}
    results = [ClientUpdate(client=1, state={"n": torch.tensor(1), "w": np.ones(2, dtype=np.float32)}, num_samples=1),
               ClientUpdate(client=2, state={"n": torch.tensor(2), "w": np.ones(2, dtype=np.float32)}, num_samples=3)]
    out = flower("FedAvg").aggregate_fit(1, results, [], current)
    assert out["n"].dtype == torch.int64 and int(out["n"]) == 2  # 1.75 -> 2
    assert isinstance(out["w"], np.ndarray) and out["w"].dtype == np.float32


def fedadam_by_hand(current, results, *, server_round, eta, beta_1, beta_2, tau):
    total = sum(r.num_samples for r in results)
    out = {}
    for key, value in current.items():
        mean = sum(r.num_samples / total * r.state[key].double() for r in results)
        delta = mean - value.double()
        m = (1 - beta_1) * delta
        v = (1 - beta_2) * delta * delta
        # flwr 1.42's FedAdam scales eta by Adam's bias correction for step server_round + 1
        eta_norm = eta * np.sqrt(1 - beta_2 ** (server_round + 1)) / (1 - beta_1 ** (server_round + 1))
        out[key] = value.double() + eta_norm * m / (v.sqrt() + tau)
    return out


def test_flower_fedadam_matches_the_formula_and_its_state_round_trips():
    hyper = {"eta": 0.05, "beta_1": 0.9, "beta_2": 0.99, "tau": 1e-3}
    current, results = updates(seed=1)
    adapter = flower("FedAdam", **hyper)
    first = adapter.aggregate_fit(1, results, [], current)
    expected = fedadam_by_hand(current, results, server_round=1, **hyper)
    for key, value in first.items():
        assert value.dtype == current[key].dtype, key
        if value.is_floating_point():
            assert (value.double() - expected[key]).abs().max().item() < 1e-6, key
        else:
            assert torch.equal(value, expected[key].round().to(value.dtype)), key

    saved = adapter.state_dict()
    assert {"m_t", "v_t", "current_weights"} <= set(saved["attributes"])
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    buffer.seek(0)
    restored = flower("FedAdam", **hyper)
    restored.load_state_dict(torch.load(buffer, weights_only=True))

    _, second_results = updates(seed=2)
    uninterrupted = adapter.aggregate_fit(2, second_results, [], first)
    resumed = restored.aggregate_fit(2, second_results, [], first)
    for key in uninterrupted:
        assert torch.equal(uninterrupted[key], resumed[key]), key
    forgetful = flower("FedAdam", **hyper).aggregate_fit(2, second_results, [], first)
    assert not torch.equal(forgetful["layer.weight"], uninterrupted["layer.weight"])  # m_t, v_t matter


def test_flower_fault_tolerant_fedavg_rejects_rounds_below_the_completion_rate():
    adapter = flower("FaultTolerantFedAvg", min_completion_rate_fit=0.6)
    current, results = updates(seed=3, samples=(5, 6, 7))
    failures = [FitFailure(client=20, reason="left coverage"), FitFailure(client=21, reason="link lost")]
    assert adapter.aggregate_fit(1, results[:1], failures, current) is None  # 1 / 3 < 0.6
    accepted = adapter.aggregate_fit(2, results, failures[:1], current)  # 3 / 4 >= 0.6
    assert accepted is not None and list(accepted) == list(current)
    assert adapter.aggregate_fit(3, [], failures, current) is None


def test_flower_fedprox_config_and_deterministic_sampling():
    adapter = flower("FedProx", proximal_mu=0.1, fraction_fit=0.5)
    clients = [ClientInfo(client=c, modalities=("gps",), num_samples=10) for c in (7, 3, 9, 5)]
    picked = adapter.configure_fit(1, clients, np.random.default_rng(42))
    assert len(picked) == 2
    assert [p.client for p in picked] == sorted(p.client for p in picked)
    for instruction in picked:
        assert instruction.config == {"download": "all", "upload": "all", "train": "all", "proximal_mu": 0.1}
    again = adapter.configure_fit(1, list(reversed(clients)), np.random.default_rng(42))
    assert [p.client for p in again] == [p.client for p in picked]
    subsets = {tuple(p.client for p in adapter.configure_fit(1, clients, np.random.default_rng(seed)))
               for seed in range(20)}
    assert len(subsets) > 1  # the rng picks the subset
    everyone = flower("FedAvg").configure_fit(1, clients, np.random.default_rng(0))
    assert [p.client for p in everyone] == [3, 5, 7, 9]
    assert flower("FedAvg").configure_fit(1, clients[:1], np.random.default_rng(0)) == []  # min_fit_clients = 2


@pytest.mark.parametrize("strategy,options,message", [
    ("FedAdamm", {}, r"unknown Flower strategy 'FedAdamm'; valid: .*FaultTolerantFedAvg.*FedAdam.*FedProx"),
    ("FedAdam", {"etaa": 0.1}, r"unknown option 'etaa'; valid: .*beta_1.*eta"),
    ("FedProx", {}, r"missing required option\(s\) 'proximal_mu'"),
    ("FedAdam", {"initial_parameters": None}, r"'initial_parameters' is set by the adapter"),
])
def test_flower_bad_configuration_is_a_config_error(strategy, options, message):
    with pytest.raises(ConfigError, match=message):
        flower(strategy, **options)


def test_flower_wrong_top_level_option_names_it():
    with pytest.raises(ConfigError, match="unknown option 'eta'"):
        FL_STRATEGY.create("flower", {"strategy": "FedAdam", "eta": 0.1})


def test_flower_missing_is_a_config_error_with_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "flwr.server.strategy", None)
    with pytest.raises(ConfigError, match=r"pip install 'v2xsim\[fl\]'"):
        FlowerStrategy(strategy="FedAvg")


def test_flower_is_imported_lazily():
    code = "import sys, v2xsim.fl.flower, v2xsim.fl.strategies; assert 'flwr' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_flower_needs_full_models():
    current, results = updates(seed=4)
    partial = ClientUpdate(client=99, state={"layer.weight": results[0].state["layer.weight"]}, num_samples=1)
    with pytest.raises(ValueError, match="client 99 uploaded no 'layer.bias'"):
        flower("FedAvg").aggregate_fit(1, [results[1], partial], [], current)


@pytest.mark.parametrize("strategy,options", [
    ("FedYogi", {"eta": 0.01}),
    ("FedAdagrad", {"eta": 0.01}),
    ("FedAvgM", {"server_learning_rate": 0.5, "server_momentum": 0.9}),
    ("FedMedian", {}),
    ("Krum", {"num_malicious_clients": 0}),
])
def test_flower_other_strategies_run_two_rounds(strategy, options):
    adapter = flower(strategy, **options)
    current, results = updates(seed=5)
    for server_round in (1, 2):
        current_next = adapter.aggregate_fit(server_round, results, [], current)
        assert current_next is not None and list(current_next) == list(current)
        for key, value in current_next.items():
            assert value.dtype == current[key].dtype and value.shape == current[key].shape
            assert torch.isfinite(value.double()).all()
        current = current_next
    assert isinstance(adapter.last_metrics, dict)
