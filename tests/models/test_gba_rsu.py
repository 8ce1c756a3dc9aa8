import numpy as np
import pytest
import torch

from v2xsim.models.gba_rsu import PRUNE_SHARE, BeamProjection, GBARSU
from v2xsim.models.rates import rates_from_allocation
from v2xsim.metrics import user_rates


@pytest.fixture(scope="module")
def model() -> GBARSU:
    torch.manual_seed(0)
    return GBARSU(num_beams=34, hidden=32).eval()


def random_feedback(generator: torch.Generator, batch: int, num: int, width: int = 34, density: float = 0.2):
    return (torch.rand(batch, num, width, generator=generator) < density).float()


def check_constraints(allocation: torch.Tensor, p_max: float, mask: torch.Tensor | None = None) -> None:
    assert torch.all(allocation >= 0)
    assert torch.all((allocation != 0).sum(dim=-1) <= 1)
    power = (allocation ** 2).sum(dim=(1, 2))
    served = (allocation != 0).any(dim=-1).any(dim=-1)
    torch.testing.assert_close(power[served], torch.full_like(power[served], p_max), rtol=1e-5, atol=1e-6)
    assert torch.all(power[~served] == 0)
    if mask is not None:
        assert torch.all(allocation[~mask] == 0)


@pytest.mark.parametrize("num", [1, 2, 3, 5, 10, 17, 30, 50])
def test_permutation_equivariance_and_constraints_for_any_k(model, num):
    generator = torch.Generator().manual_seed(num)
    v = random_feedback(generator, 4, num)
    with torch.inference_mode():
        out = model(v, 2.0)
        for _ in range(3):
            perm = torch.randperm(num, generator=generator)
            torch.testing.assert_close(model(v[:, perm], 2.0), out[:, perm], atol=1e-5, rtol=1e-5)
    check_constraints(out, 2.0)


def test_padding_mask_matches_the_unpadded_graph(model):
    generator = torch.Generator().manual_seed(1)
    v = random_feedback(generator, 1, 6)
    padded = torch.cat([v, random_feedback(generator, 1, 4)], dim=1)
    mask = torch.tensor([[True] * 6 + [False] * 4])
    with torch.inference_mode():
        alone = model(v, 1.0)
        together = model(padded, 1.0, mask=mask)
    torch.testing.assert_close(together[:, :6], alone, atol=1e-6, rtol=1e-5)
    check_constraints(together, 1.0, mask)


def test_large_graph_path_equals_the_dense_path(model):
    generator = torch.Generator().manual_seed(2)
    patterns = random_feedback(generator, 1, 25)[0]
    v = patterns[torch.randint(0, 25, (2, 150), generator=generator)]
    v[:, :3] = 0  # vehicles that heard nothing
    mask = torch.ones(2, 150, dtype=torch.bool)
    mask[1, 120:] = False
    dense = GBARSU(num_beams=34, hidden=32, dedup_threshold=10**6, edge_chunk=7).eval()
    dense.load_state_dict(model.state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(model.scores(v, mask), dense.scores(v, mask), atol=1e-5, rtol=1e-5)


def test_nobody_served_gives_zero_power(model):
    with torch.inference_mode():
        out = model(torch.zeros(1, 3, 34), 1.0, mask=torch.zeros(1, 3, dtype=torch.bool))
    assert torch.all(out == 0)


def test_projection_prunes_weak_vehicles_and_renormalises():
    z = torch.tensor([[[0.0, 3.0, -1.0], [0.5, 0.0, 0.0], [0.0, 0.0, 0.05]]])
    out = BeamProjection()(z, 4.0)
    # the third vehicle's share 0.0025 / 9.2525 is below 0.05 %: pruned
    assert 0.05 ** 2 / (9 + 0.25 + 0.0025) < PRUNE_SHARE
    assert torch.all(out[0, 2] == 0)
    torch.testing.assert_close((out ** 2).sum(), torch.tensor(4.0))
    torch.testing.assert_close(out[0, 0, 1] ** 2 / out[0, 1, 0] ** 2, torch.tensor(9.0 / 0.25))


def test_straight_through_gradient_reaches_every_score():
    z = torch.randn(2, 3, 5, requires_grad=True)
    BeamProjection(temperature=0.5)(z, 1.0)[..., 0].sum().backward()
    assert torch.count_nonzero(z.grad) > 2 * 3  # not only the argmax entries


def test_torch_rates_match_the_numpy_rates(codebook):
    rng = np.random.default_rng(0)
    h = rng.standard_normal((5, 16)) + 1j * rng.standard_normal((5, 16))
    beams = rng.integers(0, 34, 5)
    powers = rng.uniform(0.1, 1.0, 5)
    allocation = np.zeros((5, 34))
    allocation[np.arange(5), beams] = np.sqrt(powers)
    beam_space = h.conj() @ codebook
    torch_rates = rates_from_allocation(torch.from_numpy(allocation)[None], torch.from_numpy(beam_space)[None], 0.7)
    t = np.zeros((16, 5), complex)
    for k in range(5):
        t[:, k] = codebook[:, beams[k]] * np.sqrt(powers[k])
    np.testing.assert_allclose(torch_rates[0].numpy(), user_rates(h, t, 0.7), rtol=1e-10)


def test_bad_shapes_are_rejected(model):
    with pytest.raises(ValueError, match="v must have shape"):
        model(torch.zeros(2, 3, 8))


@pytest.mark.parametrize("non_negative,renormalise", [(True, True), (False, True), (True, False), (False, False)])
def test_inference_projection_gives_the_training_forward_values(non_negative, renormalise):
    generator = torch.Generator().manual_seed(4)
    z = torch.randn(5, 7, 9, generator=generator)
    z[0, 0] *= 1e-3  # a vehicle the renormalisation prunes
    mask = torch.rand(5, 7, generator=generator) > 0.3
    projection = BeamProjection(non_negative=non_negative, renormalise=renormalise)
    training = projection(z.clone().requires_grad_(True), 2.0, mask).detach()
    with torch.no_grad():
        inference = projection(z, 2.0, mask)
    torch.testing.assert_close(inference, training, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("num", [1, 4, 10, 33])
def test_compiled_small_graph_inference_equals_the_layer_by_layer_forward(model, num):
    generator = torch.Generator().manual_seed(num)
    v = random_feedback(generator, 3, num)
    mask = torch.rand(3, num, generator=generator) > 0.3
    mask[0] = False  # a graph with nobody in it
    with torch.no_grad():
        fast = model(v, 2.0, mask=mask)
        layered = model.projection(model.scores(v, mask), 2.0, mask)
        fast_unmasked = model(v, 2.0)
        layered_unmasked = model.projection(model.scores(v), 2.0)
    torch.testing.assert_close(fast, layered, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(fast_unmasked, layered_unmasked, atol=1e-6, rtol=1e-6)
    assert torch.all(fast[0] == 0)
