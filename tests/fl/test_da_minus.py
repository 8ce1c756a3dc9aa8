"""DA- (seed 002, Section IV-B): contribution ratios, one-vehicle rates, keep masks, the
harmonious branch and loss, one local DA- epoch, and the acceptance toy (the dominant
LiDAR is dropped most)."""

import math

import numpy as np
import pytest
import torch

from v2xsim.fl.da_minus import (
    DAMinusState,
    HarmoniousBranch,
    INITIAL_KEEP,
    contribution_ratios,
    da_minus_epoch,
    expected_rate_surrogate,
    harmonious_loss,
    initial_phi,
    make_harmonious_optimizer,
    sample_keep_masks,
    single_vehicle_rates,
    unimodal_logits,
)
from v2xsim.models.gba_rsu import GBARSU
from v2xsim.models.gba_vehicle import GBAVehicle
from v2xsim.training.vehicle import SensorSet

W = 8
FEATURES = {"gps": 16, "image": 16, "lidar": 16}


def small_model(seed: int = 0) -> GBAVehicle:
    torch.manual_seed(seed)
    return GBAVehicle(num_beams=W, features=FEATURES, hidden=16, image_width=4)


def random_set(n: int, seed: int, *, available: np.ndarray | None = None) -> SensorSet:
    rng = np.random.default_rng(seed)
    rss = np.where(rng.random((n, W)) < 0.4, rng.uniform(1.0, 50.0, (n, W)), 0.0).astype(np.float32)
    lidar = rng.choice(np.array([0, 0, 0, 1], np.int8), (n, 20, 20, 20))
    return SensorSet(gps=rng.normal(0, 5, (n, 2)).astype(np.float32),
                     image=rng.integers(0, 256, (n, 90, 160, 3), dtype=np.uint8), lidar=lidar, rss=rss,
                     feedback=(rss > 0).astype(np.float32),
                     available=np.ones((n, 3), bool) if available is None else available,
                     episode=np.zeros(n, int), category=np.ones(n, int))


# --- contribution ratios (Eq. 16) ---------------------------------------------------------

def test_contribution_ratios_match_a_hand_computed_example():
    rates = torch.tensor([1.0, 2.0, 4.0])
    present = torch.ones(3, dtype=torch.bool)
    # phi_i = 1/2 sum_{j != i} R_i / R_j: (1/2 + 1/4) / 2, (2 + 1/2) / 2, (4 + 2) / 2
    assert torch.allclose(contribution_ratios(rates, present, floor=1e-9), torch.tensor([0.375, 1.25, 3.0]))
    r = [1.01, 2.01, 4.01]  # default floor 0.01
    expected = [(r[0] / r[1] + r[0] / r[2]) / 2, (r[1] / r[0] + r[1] / r[2]) / 2, (r[2] / r[0] + r[2] / r[1]) / 2]
    assert torch.allclose(contribution_ratios(rates, present), torch.tensor(expected))


def test_contribution_ratios_single_absent_zero_and_batched():
    one = contribution_ratios(torch.tensor([0.0, 3.0, 0.0]), torch.tensor([False, True, False]))
    assert one.tolist() == [0.0, 1.0, 0.0]
    # an absent modality gets 0 and does not enter the others' sums (its rate is ignored)
    absent = contribution_ratios(torch.tensor([1.0, 100.0, 4.0]), torch.tensor([True, False, True]), floor=1e-9)
    assert torch.allclose(absent, torch.tensor([0.25, 0.0, 4.0]))
    rates = torch.tensor([[0.0, 0.0, 5.0], [0.0, 0.0, 0.0]], requires_grad=True)
    phi = contribution_ratios(rates, torch.ones(2, 3, dtype=torch.bool))
    assert torch.isfinite(phi).all()
    assert torch.allclose(phi[1], torch.ones(3))
    # floored: (0.01 / 0.01 + 0.01 / 5.01) / 2 for the silent ones, (501 + 501) / 2 for the other
    assert torch.allclose(phi[0], torch.tensor([(1 + 0.01 / 5.01) / 2, (1 + 0.01 / 5.01) / 2, 501.0]))
    phi.sum().backward()
    assert torch.isfinite(rates.grad).all()
    assert contribution_ratios(torch.ones(3), torch.zeros(3, dtype=torch.bool)).tolist() == [0.0, 0.0, 0.0]


# --- one-vehicle rates ----------------------------------------------------------------------

def test_single_vehicle_rates_of_a_one_hot_allocation_and_their_gradient():
    rss = torch.tensor([[0.0, 30.0, 3.0, 0.0], [5.0, 0.0, 0.0, 7.0]])
    p_max, noise = 2.0, 0.5
    allocation = torch.zeros(2, 4)
    allocation[0, 1] = math.sqrt(p_max)
    allocation[1, 3] = math.sqrt(p_max / 4)  # a quarter of the budget
    allocation.requires_grad_(True)
    rates = single_vehicle_rates(allocation, rss, noise_mw=noise, p_max=p_max)
    assert torch.allclose(rates, torch.tensor([math.log2(1 + 30.0 / noise), math.log2(1 + 7.0 / 4 / noise)]))
    exact = single_vehicle_rates(allocation, rss, noise_mw=noise, p_max=p_max, straight_through=False)
    assert torch.allclose(rates, exact)
    rates.sum().backward()
    assert allocation.grad.abs().sum() > 0
    # the surrogate values moving amplitude to beam j at r_j - r_used: toward beam 2 of
    # sample 0 (3 < 30) is negative, toward beam 0 of sample 1 (5 < 7) too
    assert allocation.grad[0, 2] < 0 and allocation.grad[1, 0] < 0
    assert allocation.grad[0, 1] > 0  # more power on the used beam is better


def test_only_the_straight_through_rate_passes_a_gradient_through_gba_rsu():
    torch.manual_seed(0)
    rsu = GBARSU(num_beams=W, hidden=16).eval()
    rss = torch.rand(6, W) * 20
    grads = {}
    for straight in (False, True):
        v = torch.rand(6, 1, W, requires_grad=True)
        allocation = rsu(v, 1.0)[:, 0]
        single_vehicle_rates(allocation, rss, noise_mw=1.0, p_max=1.0, straight_through=straight).sum().backward()
        grads[straight] = v.grad.abs().max().item()
    assert grads[False] < 1e-6  # renormalised one-hot allocation: the exact gradient vanishes
    assert grads[True] > 1e-4


# --- keep masks -----------------------------------------------------------------------------

def test_keep_masks_respect_availability_never_drop_everything_and_pass_gradients():
    generator = torch.Generator().manual_seed(0)
    available = torch.tensor([[True, True, True], [True, False, True], [False, False, True],
                              [False, False, False]]).repeat(50, 1)
    logits = torch.full((1, 3), -4.0, requires_grad=True)  # keep probability 0.018
    masks = sample_keep_masks(logits, available, generator)
    assert set(masks.detach().unique().tolist()) <= {0.0, 1.0}
    assert (masks.detach()[~available] == 0).all()
    kept = masks.detach().sum(dim=1)
    has = available.any(dim=1)
    assert (kept[has] >= 1).all() and (kept[~has] == 0).all()
    masks.sum().backward()
    p = torch.sigmoid(torch.tensor(-4.0))
    expected = available.sum(dim=0).float() * p * (1 - p)  # the sigmoid's gradient, available entries only
    assert torch.allclose(logits.grad[0], expected, rtol=1e-5)


def test_keep_rate_follows_the_sigmoid():
    generator = torch.Generator().manual_seed(1)
    logits = torch.tensor([[2.0, 0.0, 1.0]])
    masks = sample_keep_masks(logits, torch.ones(20000, 3, dtype=torch.bool), generator)
    p = torch.sigmoid(logits[0])
    all_dropped = float(torch.prod(1 - p))  # at most this much is added by the never-all-dropped rule
    rate = masks.detach().mean(dim=0)
    assert ((rate - p) > -0.015).all() and ((rate - p) < all_dropped + 0.015).all()


# --- harmonious branch and loss -------------------------------------------------------------

def test_harmonious_branch_shapes_initial_keep_and_gradients():
    torch.manual_seed(0)
    branch = HarmoniousBranch(modalities=("gps", "image", "lidar"), hidden=64, heads=4)
    phi = torch.tensor([[0.5, 1.0, 3.0], [1.0, 1.0, 1.0]])
    logits = branch(phi)
    assert logits.shape == (2, 3) and branch(phi[0]).shape == (3,) and branch(phi[:1]).shape == (1, 3)
    assert torch.allclose(torch.sigmoid(logits), torch.full((2, 3), INITIAL_KEEP))
    optimizer = make_harmonious_optimizer(branch, lr=1e-2)
    for _ in range(2):  # the first step moves the zero-initialised output weights, the second the rest
        optimizer.zero_grad()
        (branch(phi) * torch.tensor([1.0, -1.0, 2.0])).sum().backward()
        optimizer.step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in branch.parameters())
    with pytest.raises(ValueError, match="multiple of heads"):
        HarmoniousBranch(hidden=10, heads=4)


def test_harmonious_loss_matches_eqs_18_and_19():
    phi = torch.tensor([0.5, 1.5, 2.0])
    rates = torch.tensor([1.0, 3.0, 4.0])
    present = torch.ones(3, dtype=torch.bool)
    assert harmonious_loss(phi, rates, present).item() == pytest.approx(0.5 + 0.5 + 1.0 - 8.0)
    loss = harmonious_loss(phi, rates, present, alpha=2.0, beta=0.5, num_vehicles=4)
    assert loss.item() == pytest.approx(2.0 * 2.0 - 0.5 * 8.0 / 4)
    absent = harmonious_loss(phi, rates, torch.tensor([True, False, True]))
    assert absent.item() == pytest.approx(0.5 + 1.0 - 5.0)


def test_expected_rate_surrogate_is_the_exact_gradient_of_the_expected_rates():
    logits = torch.tensor([[0.0, 1.0, -1.0]], requires_grad=True)
    kept = torch.tensor([[3.0, 2.0, 6.0], [1.0, 2.0, 6.0]])
    dropped = torch.tensor([[1.0, 2.0, 1.0], [1.0, 0.0, 2.0]])
    available = torch.tensor([[True, True, True], [True, False, True]])
    weights = torch.tensor([1.0, -2.0, 0.5])
    expected_rate_surrogate(logits, kept, dropped, available, weights=weights).backward()
    p = torch.sigmoid(logits.detach()[0])
    gain = torch.tensor([(2.0 + 0.0) / 2, 0.0, (5.0 + 4.0) / 2])
    assert torch.allclose(logits.grad[0], weights * gain * p * (1 - p))


def test_unimodal_logits_use_one_fusion_block_each():
    model = small_model().eval()
    features = {m: torch.randn(5, size) for m, size in FEATURES.items()}
    masks = torch.tensor([[1.0, 0.0, 1.0]]).repeat(5, 1)
    logits = unimodal_logits(model, features, masks)
    assert logits.shape == (5, 3, W)
    assert torch.allclose(logits[:, 0], model.fuse({"gps": features["gps"]}))
    assert torch.allclose(logits[:, 1], model.fuse({"image": torch.zeros(5, 16)}))  # dropped: bias only
    assert torch.allclose(logits[:, 2], model.fuse({"lidar": features["lidar"]}))


# --- one DA- epoch --------------------------------------------------------------------------

def run_epoch(*, seed: int, data: SensorSet, bce_step: str = "batch", mask_gradient: str = "expected",
              batch_size: int = 8, proximal=None):
    model = small_model(seed)
    branch = HarmoniousBranch(modalities=model.modalities)
    torch.manual_seed(seed + 1)
    rsu = GBARSU(num_beams=W, hidden=16)
    model_optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    branch_optimizer = make_harmonious_optimizer(branch, lr=1e-2)
    generator = torch.Generator().manual_seed(seed)
    phi = initial_phi(present=torch.ones(3, dtype=torch.bool), generator=generator)
    order = torch.randperm(len(data), generator=generator).numpy()
    before = ({k: v.clone() for k, v in model.state_dict().items()},
              {k: v.clone() for k, v in branch.state_dict().items()},
              {k: v.clone() for k, v in rsu.state_dict().items()})
    out = da_minus_epoch(model, branch, model_optimizer=model_optimizer, harmonious_optimizer=branch_optimizer,
                         data=data, order=order, batch_size=batch_size, rsu=rsu, noise_mw=1.0, p_max=1.0,
                         phi_previous=phi, generator=generator, bce_step=bce_step, proximal=proximal,
                         mask_gradient=mask_gradient)
    return out, model, branch, rsu, model_optimizer, branch_optimizer, before


def changed(before: dict, module: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in module.state_dict().items() if v.is_floating_point())


@pytest.fixture(scope="module")
def epoch_data() -> SensorSet:
    available = np.ones((26, 3), bool)
    available[::3, 1] = False  # some samples lack the camera
    return random_set(26, 5, available=available)


@pytest.mark.parametrize("mask_gradient", ["expected", "straight_through"])
def test_da_minus_epoch_trains_both_networks_and_leaves_the_rsu_alone(epoch_data, mask_gradient):
    calls = []

    def proximal(model):
        calls.append(1)
        return 0.0 * sum(p.sum() for p in model.parameters())

    out, model, branch, rsu, _, branch_optimizer, before = run_epoch(
        seed=0, data=epoch_data, mask_gradient=mask_gradient, proximal=proximal)
    assert out.batches == 4 and len(calls) == 4  # 26 rows in batches of 8: the last, of 2 rows, runs too
    assert changed(before[0], model) and changed(before[1], branch) and not changed(before[2], rsu)
    assert all(p.requires_grad for p in rsu.parameters()) and rsu.training
    assert all(p.grad is None for p in rsu.parameters())
    assert all(int(state["step"]) == 4 for state in branch_optimizer.state.values())
    for value in (out.phi_last, out.mean_phi, out.mean_rates, out.drop_rate):
        assert value.shape == (3,) and torch.isfinite(value).all()
    assert ((out.drop_rate >= 0) & (out.drop_rate <= 1)).all() and math.isfinite(out.mean_bce)


def test_epoch_bce_step_steps_the_model_once(epoch_data):
    out, model, _, _, model_optimizer, branch_optimizer, before = run_epoch(seed=1, data=epoch_data,
                                                                           bce_step="epoch")
    assert out.batches == 4 and changed(before[0], model)
    assert {int(state["step"]) for state in model_optimizer.state.values()} == {1}
    assert {int(state["step"]) for state in branch_optimizer.state.values()} == {4}


def test_da_minus_epoch_is_deterministic_and_skips_single_sample_batches(epoch_data):
    data = epoch_data.subset(np.arange(17))  # batches of 8, 8, 1: the last is skipped
    first = run_epoch(seed=2, data=data)
    second = run_epoch(seed=2, data=data)
    assert first[0].batches == 2
    for a, b in ((first[1], second[1]), (first[2], second[2])):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), name
    assert torch.equal(first[0].phi_last, second[0].phi_last) and torch.equal(first[0].drop_rate, second[0].drop_rate)


def test_state_round_trip():
    torch.manual_seed(0)
    branch = HarmoniousBranch()
    optimizer = make_harmonious_optimizer(branch)
    branch(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    state = DAMinusState.capture(branch, optimizer, torch.tensor([0.5, 1.0, 2.0]))
    torch.manual_seed(1)
    other = HarmoniousBranch()
    other_optimizer = make_harmonious_optimizer(other)
    phi = state.restore(other, other_optimizer)
    assert torch.equal(phi, torch.tensor([0.5, 1.0, 2.0]))
    assert all(torch.equal(a, b) for a, b in zip(branch.state_dict().values(), other.state_dict().values()))
    assert other_optimizer.state_dict()["state"].keys() == optimizer.state_dict()["state"].keys()


# --- acceptance: the dominant LiDAR is dropped most -----------------------------------------

def lidar_dominated_set(n: int, seed: int) -> SensorSet:
    """Best beam b (uniform): LiDAR draws an obstacle block at x = 2 b + 2 (the exact
    label), GPS is x = b + N(0, 1) beam widths (coarse), the image brightens its left or
    right half for b // 4 (coarser still). The weaker sensors must carry some information:
    if a modality's uni-modal rate does not depend on its mask (pure noise), the
    harmonious loss is indifferent to how often it is dropped. RSS: the best beam 63 (6 bit/s/Hz at noise
    1), its neighbours 3 (2 bit/s/Hz), the others below sensitivity."""
    rng = np.random.default_rng(seed)
    beam = rng.permutation(np.arange(n) % W)
    lidar = np.zeros((n, 20, 20, 20), np.int8)
    lidar[:, 0, 10, 0] = -2  # the ego vehicle
    image = rng.integers(0, 128, (n, 90, 160, 3), dtype=np.uint8)
    for i, b in enumerate(beam):
        lidar[i, 2 * b + 2, 5:15, 0:4] = 1
        image[i, :, 80 * (b // 4):80 * (b // 4) + 80] += 127
    gps = np.stack([beam + rng.normal(0, 1.0, n), rng.normal(0, 1.0, n)], axis=1).astype(np.float32)
    rss = np.zeros((n, W), np.float32)
    rss[np.arange(n), beam] = 63.0
    for step in (-1, 1):
        ok = (beam + step >= 0) & (beam + step < W)
        rss[np.arange(n)[ok], beam[ok] + step] = 3.0
    return SensorSet(gps=gps, image=image, lidar=lidar, rss=rss, feedback=(rss > 0).astype(np.float32),
                     available=np.ones((n, 3), bool), episode=np.zeros(n, int), category=np.ones(n, int))


def greedy_rsu(hidden: int = 16) -> GBARSU:
    """GBA-RSU whose weights pass the feedback straight to the scores (z = v): alone, a
    vehicle is served on the beam with the highest predicted probability."""
    rsu = GBARSU(num_beams=W, hidden=hidden)
    with torch.no_grad():
        for p in rsu.parameters():
            p.zero_()
        rsu.self_vertex[0].weight.copy_(torch.eye(hidden, W))
        rsu.self_vertex[2].weight.copy_(torch.eye(hidden))
        rsu.cross_vertex[0].weight.copy_(torch.eye(hidden, 2 * hidden))
        rsu.cross_vertex[2].weight.copy_(torch.eye(hidden))
        rsu.project.weight.copy_(torch.eye(W, hidden))
    return rsu


def lidar_toy_history(seed: int, *, epochs: int = 10, num_vehicles: int = 10, mask_gradient: str = "expected",
                      n: int = 128, batch_size: int = 16) -> list:
    """Pretrain GBA-Vehicle with all sensors on :func:`lidar_dominated_set`, then run DA-
    epochs; the per-epoch reports."""
    data = lidar_dominated_set(n, seed)
    model = small_model(seed)
    gps = torch.from_numpy(data.gps)
    model.branches["gps"].shift.copy_(gps.mean(dim=0))
    model.branches["gps"].scale.copy_(gps.std(dim=0))
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(60):
        rows = torch.randperm(n, generator=generator)[:batch_size].numpy()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(data.inputs(rows)),
                                                                    torch.from_numpy(data.feedback[rows]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.manual_seed(seed + 1)
    branch = HarmoniousBranch(modalities=model.modalities)
    branch_optimizer = make_harmonious_optimizer(branch, lr=1e-2)
    rsu = greedy_rsu()
    phi = initial_phi(present=torch.ones(3, dtype=torch.bool), generator=generator)
    history = []
    for _ in range(epochs):
        out = da_minus_epoch(model, branch, model_optimizer=optimizer, harmonious_optimizer=branch_optimizer,
                             data=data, order=torch.randperm(n, generator=generator).numpy(),
                             batch_size=batch_size, rsu=rsu, noise_mw=1.0, p_max=1.0, phi_previous=phi,
                             generator=generator, num_vehicles=num_vehicles, mask_gradient=mask_gradient)
        phi = out.phi_last
        history.append(out)
    return history


def test_dominant_lidar_is_dropped_most():
    """Pretrained with all sensors, LiDAR dominates (phi_L largest); DA- epochs in a
    federation of K = 10 vehicles (Eq. 19's rate term / K): over the last epoch LiDAR is
    dropped more often than GPS and the camera."""
    history = lidar_toy_history(0)
    first, last = history[0], history[-1]
    assert first.mean_phi[2] > first.mean_phi[:2].max()  # LiDAR dominates
    gps_drop, image_drop, lidar_drop = last.drop_rate.tolist()
    assert lidar_drop > gps_drop and lidar_drop > image_drop, [h.drop_rate.tolist() for h in history]


def test_da_minus_epoch_with_a_subset_of_modalities(epoch_data):
    torch.manual_seed(0)
    model = GBAVehicle(num_beams=W, features=FEATURES, hidden=16, modalities=("gps", "lidar"))
    branch = HarmoniousBranch(modalities=model.modalities, hidden=16, heads=2)
    generator = torch.Generator().manual_seed(0)
    out = da_minus_epoch(model, branch, model_optimizer=torch.optim.AdamW(model.parameters()),
                         harmonious_optimizer=make_harmonious_optimizer(branch), data=epoch_data,
                         order=np.arange(16), batch_size=8, rsu=GBARSU(num_beams=W, hidden=16), noise_mw=1.0,
                         p_max=1.0, phi_previous=torch.ones(2), generator=generator)
    assert out.batches == 2 and out.drop_rate.shape == (2,) and torch.isfinite(out.phi_last).all()
    with pytest.raises(ValueError, match="modalities"):
        da_minus_epoch(model, HarmoniousBranch(), model_optimizer=torch.optim.AdamW(model.parameters()),
                       harmonious_optimizer=make_harmonious_optimizer(branch), data=epoch_data, order=np.arange(16),
                       batch_size=8, rsu=GBARSU(num_beams=W, hidden=16), noise_mw=1.0, p_max=1.0,
                       phi_previous=torch.ones(2), generator=generator)
