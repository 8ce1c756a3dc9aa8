"""Training of GBA-RSU and the RSU ablations on a small, fast configuration (8 antennas,
12 beams, K = 1..6, hidden 32, 400 steps): the orderings of Table III and Fig. 5."""

import numpy as np
import pytest
import torch

from v2xsim.training.rsu import DataConfig, RSUTrainingConfig, cached_drops, rsu_sum_rates, train_rsu
from v2xsim.config import RadioConfig
from v2xsim.store import ModelStore

pytestmark = pytest.mark.slow  # trains several RSU networks

RADIO = RadioConfig(num_antennas=8, num_beams=12).model_dump()
DATA = DataConfig(radio=RADIO, num_vehicles=(1, 2, 3, 4, 5, 6), samples_per_k=300)
BASE = dict(hidden=32, steps=400, batch_size=128, data=DATA)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("rsu-cache")


@pytest.fixture(scope="module")
def test_drops(cache):
    return cached_drops(DATA, split="test", store=ModelStore(cache))


@pytest.fixture(scope="module")
def trained(cache):
    variants = {
        "gnn": {},
        "no_projection": {"non_negative": False, "renormalise": False},
        "transformer": {"architecture": "transformer"},
    }
    return {name: train_rsu(RSUTrainingConfig(**BASE, **options), store=ModelStore(cache), quiet=True)
            for name, options in variants.items()}


def test_gnn_ignores_vehicle_order_while_transformer_and_mlp_do_not(trained, test_drops, cache):
    gnn, transformer = trained["gnn"], trained["transformer"]
    np.testing.assert_allclose(rsu_sum_rates(gnn, test_drops, reorder=True), rsu_sum_rates(gnn, test_drops),
                               rtol=1e-5)
    assert rsu_sum_rates(transformer, test_drops, reorder=True).mean() < 0.97 * rsu_sum_rates(
        transformer, test_drops).mean()
    four = test_drops.with_k(4)
    mlp = train_rsu(RSUTrainingConfig(**{**BASE, "data": DataConfig(radio=RADIO, num_vehicles=(4,),
                                                                     samples_per_k=300)}, architecture="mlp"),
                    store=ModelStore(cache), quiet=True)
    assert rsu_sum_rates(mlp, four, reorder=True).mean() < 0.9 * rsu_sum_rates(mlp, four).mean()


def test_without_non_negativity_and_renormalisation_training_collapses(trained, test_drops):
    full = rsu_sum_rates(trained["gnn"], test_drops)
    ablated = rsu_sum_rates(trained["no_projection"], test_drops)
    large = test_drops.mask.sum(axis=1) >= 4
    assert ablated[large].mean() < 0.75 * full[large].mean()


def test_trained_gnn_outputs_are_feasible(trained, test_drops):
    v = torch.from_numpy(test_drops.feedback[:64])
    mask = torch.from_numpy(test_drops.mask[:64])
    with torch.inference_mode():
        out = trained["gnn"](v, test_drops.p_max, mask=mask)
    assert torch.all(out >= 0) and torch.all((out != 0).sum(-1) <= 1)
    power = (out ** 2).sum(dim=(1, 2))
    assert torch.allclose(power, torch.full_like(power, test_drops.p_max), rtol=1e-5)


def test_checkpoints_are_cached_and_training_resumes_bit_identically(tmp_path, cache):
    config = RSUTrainingConfig(**{**BASE, "steps": 300, "seed": 3})
    drops = cached_drops(DATA, store=ModelStore(cache))
    whole = train_rsu(config, store=ModelStore(tmp_path / "a"), quiet=True, drops=drops)
    again = train_rsu(config, store=ModelStore(tmp_path / "a"), quiet=True)  # from the cache, no data needed
    interrupted_dir = tmp_path / "b"
    train_rsu(config, store=ModelStore(interrupted_dir), quiet=True, drops=drops, stop_after=250)
    assert list(interrupted_dir.glob("*.partial.pt"))
    resumed = train_rsu(config, store=ModelStore(interrupted_dir), quiet=True, drops=drops)
    assert not list(interrupted_dir.glob("*.partial.pt"))
    for name, tensor in whole.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name])
        assert torch.equal(tensor, resumed.state_dict()[name]), name


def test_training_config_errors_name_the_field():
    with pytest.raises(ValueError, match="architecture"):
        RSUTrainingConfig(architecture="cnn")
    with pytest.raises(ValueError, match="p_drop"):
        RSUTrainingConfig(p_drop=1.5)
    with pytest.raises(ValueError, match="mlp"):
        RSUTrainingConfig(architecture="mlp")


def test_stage_three_retraining_continues_from_stage_one(tmp_path, cache):
    """Stage 3 starts from the stage-1 weights (not from scratch) and then moves them."""
    from v2xsim.training.rsu import build_model

    drops = cached_drops(DATA, store=ModelStore(cache))
    stage1 = train_rsu(RSUTrainingConfig(**{**BASE, "steps": 40}), store=ModelStore(tmp_path / "s1"), quiet=True,
                       drops=drops)
    config = RSUTrainingConfig(**{**BASE, "steps": 40, "stage3_steps": 40})
    store = ModelStore(tmp_path / "s3")
    halfway = train_rsu(config, store=store, quiet=True, drops=drops, stop_after=40)  # stage 1 only
    assert all(torch.equal(a, b) for a, b in zip(stage1.state_dict().values(), halfway.state_dict().values()))
    both = train_rsu(config, store=store, quiet=True, drops=drops)

    def distance(x, y):
        return sum(float((a - b).pow(2).sum()) for a, b in zip(x.state_dict().values(), y.state_dict().values()))

    torch.manual_seed(config.seed)
    initial = build_model(config, 12)
    assert 0 < distance(both, stage1) < distance(initial, stage1)
    rates = rsu_sum_rates(both, cached_drops(DATA, split="test", store=ModelStore(cache)))
    assert np.all(np.isfinite(rates)) and rates.mean() > 0


def test_random_dropping_helps_more_at_large_k_when_training_graphs_are_few(cache, test_drops):
    """Table IV shape: with few training graphs per K the network overfits them, and
    dropping vehicles (new sub-graphs every step) helps, the more so the larger K."""
    few = DataConfig(radio=RADIO, num_vehicles=(1, 2, 3, 4, 5, 6), samples_per_k=20)
    rates = {drop: rsu_sum_rates(train_rsu(RSUTrainingConfig(hidden=96, steps=800, batch_size=128, data=few,
                                                              random_dropping=drop), store=ModelStore(cache), quiet=True),
                                 test_drops) for drop in (True, False)}
    k = test_drops.mask.sum(axis=1)
    gain_large = rates[True][k >= 5].mean() - rates[False][k >= 5].mean()
    gain_small = rates[True][k <= 2].mean() - rates[False][k <= 2].mean()
    assert gain_large > 0.1
    assert gain_large > gain_small
