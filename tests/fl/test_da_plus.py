"""DA+ (seed 002, Sec. IV-C): label bookkeeping, Eq. 20, synthesis from BatchNorm
statistics (Eq. 21) and the decision layers fine-tuned afterwards."""

import numpy as np
import pytest
import torch

from v2xsim.fl.da_plus import (
    BatchNormStatisticsLoss, batchnorm_layers, batchnorm_statistics_loss, decision_parameter_names, expand_targets,
    freeze_all_but_decision_layers, label_counts, label_from_key, label_key, synthesize, underrepresented_labels,
)
from v2xsim.models.gba_vehicle import GBAVehicle

W = 8
SMALL = {"gps": 16, "image": 16, "lidar": 16}


def small_model(**kwargs) -> GBAVehicle:
    return GBAVehicle(num_beams=W, features=SMALL, hidden=16, image_width=4, **kwargs)


def toy_world(n: int, seed: int) -> dict[str, np.ndarray]:
    """FLASH-shaped samples with structure: a car at x along the road in one of two lanes;
    feedback = the beams around x (two or three of the W); the camera sees sky, road and the
    red car at a column set by x; the LiDAR grid has ground returns, three boxes, the RSU
    and the ego cell."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 40, n)
    lane = rng.integers(0, 2, n)
    gps = np.stack([x, 5.0 + 5.0 * lane + rng.normal(0, 0.3, n)], axis=1).astype(np.float32)
    beam = np.clip((x / 5).astype(int), 0, W - 1)
    feedback = np.zeros((n, W), np.float32)
    image = np.empty((n, 90, 160, 3), np.float32)
    image[:, :45] = [100, 150, 200]
    image[:, 45:] = [90, 90, 90]
    lidar = np.zeros((n, 20, 20, 20), np.int8)
    lidar[:, :, :, 0] = rng.random((n, 20, 20)) < 0.3
    for i in range(n):
        feedback[i, max(beam[i] - lane[i], 0):min(beam[i] + 1, W - 1) + 1] = 1
        column, row = int(x[i] / 40 * 140), 45 + 20 * lane[i]
        image[i, row:row + 15, column:column + 20] = [200, 30, 30]
        for _ in range(3):
            a, b = rng.integers(0, 18, 2)
            lidar[i, a:a + 3, b:b + 2, 1:3] = 1
        lidar[i, 10, 0, 5] = -1
        lidar[i, min(int(x[i] / 2), 19), 4 + 5 * lane[i], 1] = -2
    image = np.clip(np.round(image + rng.normal(0, 12, image.shape)), 0, 255).astype(np.uint8)
    return {"gps": gps, "image": image, "lidar": lidar, "feedback": feedback}


def as_inputs(data: dict[str, np.ndarray], rows=slice(None)) -> dict[str, torch.Tensor]:
    return {m: torch.from_numpy(np.ascontiguousarray(data[m][rows])) for m in ("gps", "image", "lidar")}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One PyTorch thread for this module: the same numbers on any core count, and no
    oversubscription of a shared CPU (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained():
    """A small GBA-Vehicle that has learnt the toy world (every training label combination
    predicted exactly), BatchNorm statistics exact over its data."""
    torch.manual_seed(0)
    data = toy_world(128, seed=0)
    model = small_model()
    gps = torch.from_numpy(data["gps"])
    model.branches["gps"].shift.copy_(gps.mean(dim=0))
    model.branches["gps"].scale.copy_(gps.std(dim=0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    order = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(200):
        rows = torch.randperm(128, generator=order)[:32].numpy()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(as_inputs(data, rows)),
                                                                    torch.from_numpy(data["feedback"][rows]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
    with torch.no_grad():
        for start in range(0, 128, 64):
            model(as_inputs(data, slice(start, start + 64)))
    model.eval()
    with torch.no_grad():
        predicted = (model(as_inputs(data)) > 0).float().numpy()
    assert (predicted == data["feedback"]).all(axis=1).mean() > 0.95  # the model knows the task
    return model, data


@pytest.fixture(scope="module")
def rare_targets(trained):
    """8 samples each of the vehicle's three rarest label combinations: (24, W)."""
    _, data = trained
    counts = label_counts(data["feedback"])
    rarest = sorted(counts, key=lambda key: (counts[key], key))[:3]
    return expand_targets([(label_from_key(key, num_beams=W), 8) for key in rarest])


@pytest.fixture(scope="module")
def synthesis(trained, rare_targets):
    model, _ = trained
    return synthesize(model, rare_targets, modalities=("gps", "image", "lidar"), steps=100,
                      generator=torch.Generator().manual_seed(0))


# ------------------------------------------------------------------ acceptance
def test_synthesis_matches_the_batchnorm_statistics_and_hits_the_target_labels(trained, synthesis, rare_targets):
    model, data = trained
    with torch.no_grad():
        real = float(batchnorm_statistics_loss(model, as_inputs(data, slice(0, 24))))
    print(f"\nBN loss {synthesis.bn_loss_start:.2f} -> {synthesis.bn_loss_end:.2f} (a real batch: {real:.2f}), "
          f"target exact match {synthesis.target_exact_match:.3f}")
    assert synthesis.bn_loss_end <= synthesis.bn_loss_start / 10
    assert synthesis.target_exact_match >= 0.8
    # both numbers are those of the returned (discrete) samples through the ordinary forward
    with torch.no_grad():
        bn_loss = batchnorm_statistics_loss(model, synthesis.inputs())
        predicted = (model(synthesis.inputs()) > 0).float().numpy()
    assert float(bn_loss) == pytest.approx(synthesis.bn_loss_end, rel=1e-4)
    assert (predicted == rare_targets).all(axis=1).mean() == synthesis.target_exact_match


def test_returned_samples_follow_the_flash_conventions(synthesis, rare_targets):
    n = len(rare_targets)
    assert synthesis.gps.shape == (n, 2) and synthesis.gps.dtype == np.float32
    assert synthesis.image.shape == (n, 90, 160, 3) and synthesis.image.dtype == np.uint8
    assert synthesis.lidar.shape == (n, 20, 20, 20) and synthesis.lidar.dtype == np.int8
    assert set(np.unique(synthesis.lidar).tolist()) <= {0, 1, -1, -2}
    assert synthesis.image.min() >= 0 and synthesis.image.max() <= 255 and len(np.unique(synthesis.image)) > 100
    np.testing.assert_array_equal(synthesis.targets, rare_targets)
    assert len(synthesis) == n


def test_synthesis_is_deterministic_and_only_touches_the_listed_modalities(trained):
    model, _ = trained
    targets = np.eye(W, dtype=np.float32)[:3]
    runs = [synthesize(model, targets, modalities=modalities, steps=3, generator=torch.Generator().manual_seed(seed))
            for modalities, seed in [(("gps", "image", "lidar"), 5), (("gps", "image", "lidar"), 5),
                                     (("gps", "image", "lidar"), 6)]]
    for m in ("gps", "image", "lidar"):
        np.testing.assert_array_equal(getattr(runs[0], m), getattr(runs[1], m))
        assert not np.array_equal(getattr(runs[0], m), getattr(runs[2], m))
    assert runs[0].bn_loss_end == runs[1].bn_loss_end
    # a GPS + LiDAR vehicle: no image made, the image branch never runs, the model is restored
    calls = []
    handle = model.branches["image"].register_forward_hook(lambda *args: calls.append(1))
    model.train()
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    try:
        pruned = synthesize(model, targets, modalities=["lidar", "gps"], steps=2,
                            generator=torch.Generator().manual_seed(5))
    finally:
        handle.remove()
    assert calls == []
    assert pruned.image is None and pruned.gps.shape == (3, 2) and pruned.lidar.shape == (3, 20, 20, 20)
    assert set(pruned.inputs()) == {"gps", "lidar"}
    assert all(module.training for module in model.modules())
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
    model.eval()
    with pytest.raises(ValueError, match="modalities"):
        synthesize(small_model(modalities=("gps",)), targets, modalities=("lidar",), generator=torch.Generator())
    with pytest.raises(ValueError, match="targets"):
        synthesize(model, targets[:, :3], modalities=("gps",), generator=torch.Generator())


def test_gps_starts_from_the_standardisation_buffers(trained):
    model, _ = trained
    start = synthesize(model, np.zeros((64, W), np.float32), modalities=("gps",), steps=0,
                       generator=torch.Generator().manual_seed(1))
    branch = model.branches["gps"]
    standardised = (start.gps - branch.shift.numpy()) / branch.scale.numpy()
    assert abs(standardised.mean()) < 0.3 and 0.7 < standardised.std() < 1.3
    assert start.bn_loss_start == start.bn_loss_end


# ------------------------------------------------------------------ Eq. 20 and the LiDAR soft path
def test_batchnorm_statistics_loss_is_eq_20_and_cleans_up(trained):
    model, data = trained
    inputs = as_inputs(data, slice(0, 16))
    layers = batchnorm_layers(model, modalities=("gps", "lidar"))
    assert len(layers) == 2 + 3
    seen = []
    handles = [layer.register_forward_pre_hook(lambda layer, args: seen.append((layer, args[0]))) for layer in layers]
    with torch.no_grad(), BatchNormStatisticsLoss(model, modalities=("gps", "lidar")) as statistics:
        model({"gps": inputs["gps"], "lidar": inputs["lidar"]})
        loss = statistics.loss()
        with pytest.raises(RuntimeError, match="did not run"):
            statistics.loss()
    for handle in handles:
        handle.remove()
    expected = 0.0
    for layer, x in seen:
        axes = [0, *range(2, x.dim())]
        expected += torch.linalg.vector_norm(x.mean(dim=axes) - layer.running_mean)
        expected += torch.linalg.vector_norm(torch.sqrt(x.var(dim=axes, unbiased=False) + layer.eps)
                                             - torch.sqrt(layer.running_var + layer.eps))
    assert float(loss) == pytest.approx(float(expected), rel=1e-4)
    assert all(len(layer._forward_pre_hooks) == 0 for layer in layers)


def test_lidar_forward_onehot_is_the_grid_forward():
    torch.manual_seed(0)
    branch = small_model().branches["lidar"].eval()
    grid = torch.randint(-2, 2, (3, 20, 20, 20), dtype=torch.int8)
    onehot = torch.stack([(grid == code).float() for code in (1, -1, -2)], dim=1)
    torch.testing.assert_close(branch.forward_onehot(onehot), branch(grid), rtol=0, atol=0)


# ------------------------------------------------------------------ label combinations
def rows(*bits: str) -> np.ndarray:
    return np.array([[float(b) for b in word] for word in bits], dtype=np.float32)


def test_label_keys_round_trip_and_counts():
    feedback = rows("1100", "1100", "0011", "0000")
    counts = label_counts(feedback)
    assert counts == {label_key(rows("1100")[0]): 2, label_key(rows("0011")[0]): 1, label_key(rows("0000")[0]): 1}
    for key in counts:
        assert label_key(label_from_key(key, num_beams=4)) == key
    np.testing.assert_array_equal(label_from_key(label_key(rows("101")[0]), num_beams=3), [1, 0, 1])
    assert label_counts(np.zeros((0, 4))) == {}
    with pytest.raises(ValueError, match="num_beams"):
        label_from_key(b"\x00", num_beams=9)


def test_underrepresented_labels_needs_counts_ranks_by_rate_and_caps():
    own = np.concatenate([rows("1000")] * 5 + [rows("0100")] * 3 + [rows("0010")] + [rows("0001")] * 5)
    known = list(rows("1000", "0100", "0010", "0001", "1100", "0110", "0100"))  # 1000 / 0001: at the maximum
    rate = {label_key(r): value for r, value in zip(rows("1000", "0100", "0010", "0001", "1100", "0110"),
                                                      [9.0, 1.0, 3.0, 8.0, 2.0, 5.0])}
    chosen = underrepresented_labels(own, global_labels=known, label_rate=rate)
    assert [("".join(str(int(b)) for b in row), count) for row, count in chosen] == [
        ("0110", 5), ("0010", 4), ("1100", 5)]  # rates 5, 3, 2; never 1000 / 0001 (max count 5)
    assert [count for _, count in underrepresented_labels(own, global_labels=known, label_rate=rate, cap=3)] == \
        [3, 3, 3]
    everything = underrepresented_labels(own, global_labels=known, label_rate=rate, top=10)
    assert [count for _, count in everything] == [5, 4, 5, 2]
    # a callable rate; equal rates: smaller key (lexicographic row) first
    same = underrepresented_labels(own, global_labels=known, label_rate=lambda row: 1.0, top=4)
    assert ["".join(str(int(b)) for b in row) for row, _ in same] == ["0010", "0100", "0110", "1100"]
    targets = expand_targets(chosen)
    assert targets.shape == (14, 4) and label_counts(targets) == {label_key(r): c for r, c in chosen}
    assert underrepresented_labels(rows("11", "11"), global_labels=list(rows("11")), label_rate=rate) == []
    with pytest.raises(KeyError):
        underrepresented_labels(own, global_labels=list(rows("1111")), label_rate=rate)
    with pytest.raises(ValueError, match="cap"):
        underrepresented_labels(own, global_labels=known, label_rate=rate, cap=0)


# ------------------------------------------------------------------ decision layers
@pytest.mark.parametrize("modalities", [("gps", "image", "lidar"), ("gps", "lidar")])
def test_decision_layers_are_the_branch_heads_and_the_fusion_branch(modalities):
    model = small_model(modalities=modalities)
    expected = [f"branches.{m}.head.0.{p}" for m in modalities for p in ("weight", "bias")]
    expected += [f"fusion_blocks.{m}.{p}" for m in modalities for p in ("weight", "bias")]
    expected += [f"fusion_head.{i}.{p}" for i in (1, 3) for p in ("weight", "bias")]
    assert sorted(decision_parameter_names(model)) == sorted(expected)
    trainable = freeze_all_but_decision_layers(model)
    named = dict(model.named_parameters())
    assert [id(p) for p in trainable] == [id(named[name]) for name in decision_parameter_names(model)]
    assert {name for name, p in named.items() if p.requires_grad} == set(expected)
    assert any(name.startswith("branches.") and not p.requires_grad for name, p in named.items())
