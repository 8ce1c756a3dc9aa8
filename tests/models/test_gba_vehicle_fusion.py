"""GBA-Vehicle fusion rules: the opt-in "bn_sum" (BatchNorm per modality block, then sum)
and the unchanged outputs and state-dict layout of "sum" and "mean"."""

import numpy as np
import pytest
import torch

from v2xsim.fl.aggregation import parameter_group, select_entries
from v2xsim.models.gba_vehicle import DEPLOYMENTS, FUSIONS, GBAVehicle, MaskedBatchNorm1d
from v2xsim.store import ModelStore
from v2xsim.training.vehicle import VehicleTrainingConfig, recalibrate_batchnorm, train_vehicle

from tests.models.test_gba_vehicle import SMALL, inputs, toy_set

#: outputs of the "sum" and "mean" rules captured before "bn_sum" existed (seed 7, num_beams 4,
#: SMALL features, hidden 16, inputs(3, seed=5), rows with all sensors / no RGB / GPS only)
BEFORE = {
    ("sum", "pruning"): [[0.310628, -0.106679, 0.169672, 0.026362], [0.312614, -0.124036, 0.175213, 0.014356],
                         [0.302422, -0.089433, 0.16735, 0.014719]],
    ("sum", "sensor"): [[0.310628, -0.106679, 0.169672, 0.026362], [0.310788, -0.106767, 0.178571, 0.035365],
                        [0.322173, -0.115596, 0.212174, 0.054749]],
    ("sum", "model"): [[0.310628, -0.106679, 0.169672, 0.026362], [0.310891, -0.107252, 0.178284, 0.034449],
                       [0.322598, -0.115271, 0.211242, 0.052493]],
    ("mean", "pruning"): [[0.296636, -0.104246, 0.147647, -0.002235], [0.295606, -0.117448, 0.153608, 0.004532],
                          [0.302422, -0.089433, 0.16735, 0.014719]],
    ("mean", "sensor"): [[0.296636, -0.104246, 0.147647, -0.002235], [0.295477, -0.104793, 0.149232, 0.000904],
                         [0.291868, -0.11251, 0.159641, 0.015357]],
    ("mean", "model"): [[0.296636, -0.104246, 0.147647, -0.002235], [0.295389, -0.105041, 0.149159, 0.000763],
                        [0.29201, -0.112402, 0.159331, 0.014605]],
}
MASK = torch.tensor([[True, True, True], [True, False, True], [True, False, False]])


@pytest.mark.parametrize("fusion", ["sum", "mean"])
def test_old_fusions_keep_their_outputs_and_state_dict_layout(fusion):
    torch.manual_seed(7)
    model = GBAVehicle(num_beams=4, features=SMALL, hidden=16, fusion=fusion).eval()
    x = inputs(3, seed=5)
    with torch.no_grad():
        for deployment in DEPLOYMENTS:
            torch.testing.assert_close(model(x, available=MASK, deployment=deployment),
                                       torch.tensor(BEFORE[(fusion, deployment)]), rtol=0, atol=2e-5)
    keys = [k for k in model.state_dict() if k.startswith("fusion")]
    assert keys == [f"fusion_blocks.{m}.{p}" for m in ("gps", "image", "lidar") for p in ("weight", "bias")] + \
        [f"fusion_head.{i}.{p}" for i in (1, 3) for p in ("weight", "bias")]


def bn_model(seed: int = 0, **kwargs) -> GBAVehicle:
    torch.manual_seed(seed)
    return GBAVehicle(num_beams=6, features=SMALL, hidden=8, image_width=4, fusion="bn_sum", **kwargs)


def test_bn_sum_shapes_state_dict_and_fl_groups():
    model = bn_model()
    x = inputs(5)
    for mode in (model.train, model.eval):
        mode()
        for deployment in DEPLOYMENTS:
            assert model(x, available=MASK.repeat(2, 1)[:5], deployment=deployment).shape == (5, 6)
    keys = [k for k in model.state_dict() if k.startswith("fusion_blocks.image")]
    assert keys == ["fusion_blocks.image.linear.weight", "fusion_blocks.image.norm.weight",
                    "fusion_blocks.image.norm.bias", "fusion_blocks.image.norm.running_mean",
                    "fusion_blocks.image.norm.running_var", "fusion_blocks.image.norm.num_batches_tracked"]
    # the FL grouping still knows every entry, and a car without RGB leaves its block's BatchNorm alone
    assert {parameter_group(k) for k in model.state_dict() if k.startswith("fusion")} == {"fusion"}
    own = select_entries(model.state_dict(), groups="own", modalities=("gps", "lidar"))
    assert not [k for k in own if "image" in k]
    assert "fusion_blocks.lidar.norm.running_var" in own
    # a checkpoint round trip
    fresh = bn_model(seed=1).eval()
    fresh.load_state_dict(model.state_dict())
    model.eval()
    torch.testing.assert_close(fresh(x), model(x))


def test_bn_sum_is_the_sum_of_normalised_blocks_and_sensor_padding_adds_the_normalised_zero():
    model = bn_model().eval()
    x = inputs(4)
    features = model.features(x)
    blocks = {m: model.fusion_blocks[m](features[m]) for m in model.modalities}
    for m, block in blocks.items():
        norm = model.fusion_blocks[m].norm
        expected = (model.fusion_blocks[m].linear(features[m]) - norm.running_mean) / \
            torch.sqrt(norm.running_var + norm.eps) * norm.weight + norm.bias
        torch.testing.assert_close(block, expected)
    torch.testing.assert_close(model(x), model.fusion_head(sum(blocks.values())))
    gps_only = {"gps": x["gps"]}
    torch.testing.assert_close(model(gps_only), model.fusion_head(blocks["gps"]))
    zero = {m: model.fusion_blocks[m](torch.zeros(1, SMALL[m])) for m in ("image", "lidar")}
    torch.testing.assert_close(model(gps_only, deployment="sensor"),
                               model.fusion_head(blocks["gps"] + zero["image"] + zero["lidar"]))


@pytest.mark.parametrize("training", [False, True])
def test_bn_sum_permutes_with_the_batch(training):
    model = bn_model(seed=3)
    model.train(training)
    x = inputs(6, seed=2)
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 0, 1]], dtype=torch.bool)
    order = torch.tensor([4, 2, 0, 5, 1, 3])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    out = model(x, available=mask)
    after = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    permuted = model(({m: v[order] for m, v in x.items()}), available=mask[order])
    torch.testing.assert_close(permuted, out[order])
    for key, value in model.state_dict().items():  # the same running statistics either way
        torch.testing.assert_close(value, after[key])


def test_missing_samples_do_not_touch_a_blocks_batchnorm_statistics():
    model = bn_model(seed=4).train()
    x = inputs(6, seed=1)
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 0, 1]], dtype=torch.bool)
    with torch.no_grad():
        features = {m: f.detach() for m, f in model.features(x).items()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    out = model.fuse(features, mask)
    stats = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("fusion_blocks.")}
    # other RGB features in the rows that lack RGB: the same fusion statistics and outputs
    # (the extraction branch's own BatchNorm layers see every row, as with "sum" and "mean")
    model.load_state_dict(state)
    changed = dict(features)
    changed["image"] = torch.where(mask[:, 1:2], features["image"], 100.0 * torch.randn_like(features["image"]))
    torch.testing.assert_close(model.fuse(changed, mask), out, rtol=0, atol=0)
    for key, value in stats.items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    # the block's statistics are those of a plain BatchNorm over the rows that have RGB
    model.load_state_dict(state)
    features = features["image"]
    block = model.fusion_blocks["image"]
    plain = torch.nn.BatchNorm1d(8).train()
    plain.load_state_dict(block.norm.state_dict())
    reference = plain(block.linear(features[mask[:, 1]]))
    normalised = block(features, mask[:, 1])
    torch.testing.assert_close(normalised[mask[:, 1]], reference)
    assert torch.all(normalised[~mask[:, 1]] == 0)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(block.norm, name), getattr(plain, name))


def test_masked_batchnorm_with_zero_or_one_present_sample_and_cumulative_averages():
    torch.manual_seed(0)
    norm = MaskedBatchNorm1d(3).train()
    x = torch.randn(4, 3) * 2 + 1
    before = {k: v.clone() for k, v in norm.state_dict().items()}
    assert torch.all(norm(x, torch.zeros(4, dtype=torch.bool)) == 0)
    one = norm(x, torch.tensor([False, True, False, False]))  # no batch variance: running statistics
    torch.testing.assert_close(one[1], (x[1] - before["running_mean"]) / torch.sqrt(before["running_var"] + norm.eps))
    for key, value in norm.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    # momentum None (as recalibrate_batchnorm sets it): exact averages over the present rows
    norm.reset_running_stats()
    norm.momentum = None
    first, second = torch.tensor([True, True, False, True]), torch.tensor([False, True, True, True])
    norm(x, first)
    norm(x * 3, second)
    mean = (x[first].mean(0) + (3 * x[second]).mean(0)) / 2
    torch.testing.assert_close(norm.running_mean, mean)
    with pytest.raises(ValueError, match="rows"):
        norm(x, torch.ones(3, dtype=torch.bool))


def test_bn_sum_in_eval_mode_is_deterministic_and_independent_of_the_batch():
    model = bn_model(seed=5).train()
    x = inputs(8, seed=3)
    model(x)  # move the running statistics away from their initial values
    model.eval()
    mask = torch.tensor([[1, 0, 1]] * 4 + [[1, 1, 1]] * 4, dtype=torch.bool)
    with torch.no_grad():
        first = model(x, available=mask)
        second = model(x, available=mask)
        alone = torch.cat([model({m: v[i:i + 1] for m, v in x.items()}, available=mask[i:i + 1]) for i in range(8)])
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    torch.testing.assert_close(alone, first)


def test_bn_sum_trains_and_its_loss_falls_under_modality_dropout():
    data = toy_set(n=64, seed=1)
    torch.manual_seed(0)
    model = GBAVehicle(num_beams=6, features=SMALL, hidden=16, modalities=("gps", "lidar"), fusion="bn_sum")
    gps = torch.from_numpy(data.gps)
    model.branches["gps"].shift.copy_(gps.mean(0))
    model.branches["gps"].scale.copy_(gps.std(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    target = torch.from_numpy(data.feedback)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    rows = np.arange(64)
    batch = data.inputs(rows, model.modalities)
    losses = []
    model.train()
    for _ in range(25):
        mask = torch.ones(64, 2, dtype=torch.bool)
        mask[:, 1] = torch.rand(64, generator=generator) > 0.25  # LiDAR dropped from a quarter of the rows
        loss = loss_fn(model(batch, available=mask), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:3])
    recalibrate_batchnorm(model, data, batch_size=32)
    assert model.fusion_blocks["lidar"].norm.num_batches_tracked == 2


def test_train_vehicle_with_bn_sum_caches_and_reloads(tmp_path):
    data = toy_set(n=48)
    config = VehicleTrainingConfig(modalities=("gps", "lidar"), features=SMALL, hidden=16, epochs=2, batch_size=16,
                                   fusion="bn_sum", modality_dropout=0.3)
    model = train_vehicle(config, data, store=ModelStore(tmp_path), quiet=True)
    cached = train_vehicle(config, data, store=ModelStore(tmp_path), quiet=True)
    x = data.inputs(np.arange(5), ("gps", "lidar"))
    torch.testing.assert_close(cached(x), model(x), rtol=0, atol=0)


def test_a_bad_fusion_name_lists_the_valid_ones():
    assert FUSIONS == ("bn_sum", "mean", "sum")
    with pytest.raises(ValueError, match="bn_sum, mean, sum.*'batchnorm'"):
        GBAVehicle(num_beams=4, fusion="batchnorm")
    with pytest.raises(ValueError, match="bn_sum, mean, sum"):
        VehicleTrainingConfig(fusion="bn")
