"""GBA-Vehicle: shapes, the three deployments, and training / resume."""

import numpy as np
import pytest
import torch

from v2xsim.models.gba_vehicle import DEPLOYMENTS, GBAVehicle, PAPER_FEATURES, predict_feedback
from v2xsim.store import ModelStore
from v2xsim.training.vehicle import SensorSet, VehicleTrainingConfig, evaluate_vehicle, train_vehicle

SMALL = {"gps": 16, "image": 16, "lidar": 16}


def inputs(batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "gps": torch.randn(batch, 2, generator=g) * 10,
        "image": torch.randint(0, 256, (batch, 90, 160, 3), generator=g, dtype=torch.uint8),
        "lidar": torch.randint(-2, 2, (batch, 20, 20, 20), generator=g).to(torch.int8),
    }


def test_paper_feature_sizes_and_output_shape():
    torch.manual_seed(0)
    model = GBAVehicle(num_beams=34).eval()
    features = model.features(inputs(3))
    assert {m: f.shape[1] for m, f in features.items()} == PAPER_FEATURES
    assert model(inputs(3)).shape == (3, 34)


def test_deployments_agree_when_every_sensor_is_there():
    torch.manual_seed(1)
    model = GBAVehicle(num_beams=8, features=SMALL, hidden=32).eval()
    x = inputs(4)
    outputs = [model(x, deployment=d) for d in DEPLOYMENTS]
    for other in outputs[1:]:
        torch.testing.assert_close(other, outputs[0])


def test_pruning_ignores_a_missing_modality_while_the_baselines_do_not():
    torch.manual_seed(2)
    model = GBAVehicle(num_beams=8, features=SMALL, hidden=32).eval()
    x = inputs(4)
    gps_only = {"gps": x["gps"]}
    pruned = model(gps_only, deployment="pruning")
    # pruning = GPS block + fusion head alone, no bias of the missing blocks
    expected = model.fusion_head(model.fusion_blocks["gps"](model.branches["gps"](x["gps"])))
    torch.testing.assert_close(pruned, expected)
    assert not torch.allclose(model(gps_only, deployment="sensor"), pruned)
    assert not torch.allclose(model(gps_only, deployment="model"), pruned)
    # a per-sample mask equals dropping the modality from the inputs
    mask = torch.tensor([[True, False, False]] * 4)
    torch.testing.assert_close(model(x, available=mask), pruned)
    for deployment in ("sensor", "model"):
        torch.testing.assert_close(model(x, available=mask, deployment=deployment),
                                   model(gps_only, deployment=deployment))


@pytest.mark.parametrize("fusion", ["mean", "sum"])
def test_fusion_rule_and_what_sensor_based_padding_adds(fusion):
    torch.manual_seed(3)
    model = GBAVehicle(num_beams=8, features=SMALL, hidden=32, fusion=fusion).eval()
    x = inputs(4)
    features = model.features(x)
    blocks = {m: model.fusion_blocks[m](features[m]) for m in model.modalities}
    scale = 1.0 / 3 if fusion == "mean" else 1.0
    torch.testing.assert_close(model(x), model.fusion_head(scale * sum(blocks.values())))
    # GPS only: pruning fuses the GPS block alone (mean over one block = the block) ...
    gps_only = {"gps": x["gps"]}
    torch.testing.assert_close(model(gps_only), model.fusion_head(blocks["gps"]))
    # ... sensor-based adds the missing blocks' biases and, with the mean, still divides by 3
    padded = blocks["gps"] + model.fusion_blocks["image"].bias + model.fusion_blocks["lidar"].bias
    torch.testing.assert_close(model(gps_only, deployment="sensor"), model.fusion_head(scale * padded))


def test_bad_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="fusion"):
        GBAVehicle(num_beams=8, fusion="max")
    with pytest.raises(ValueError, match="fusion"):
        VehicleTrainingConfig(fusion="concat")
    with pytest.raises(ValueError, match="modalities"):
        GBAVehicle(num_beams=8, modalities=("sonar",))
    model = GBAVehicle(num_beams=8, features=SMALL, hidden=8)
    with pytest.raises(ValueError, match="deployment"):
        model(inputs(2), deployment="magic")
    with pytest.raises(ValueError, match="sensor input"):
        model({})
    with pytest.raises(ValueError, match="modality_dropout"):
        VehicleTrainingConfig(modality_dropout=1.0)


def toy_set(n: int = 96, seed: int = 0) -> SensorSet:
    """Samples whose first beam is heard exactly when a LiDAR obstacle cell is absent, and
    whose last beams follow the GPS x coordinate."""
    rng = np.random.default_rng(seed)
    gps = rng.uniform(-15, 15, (n, 2)).astype(np.float32)
    lidar = np.zeros((n, 20, 20, 20), dtype=np.int8)
    blocked = rng.random(n) < 0.5
    lidar[blocked, 8:12, 8:12, 0:3] = 1
    rss = np.zeros((n, 6), dtype=np.float32)
    rss[~blocked, 0] = 1.0
    rss[np.arange(n), 3 + (gps[:, 0] > 0)] = 2.0
    return SensorSet(gps=gps, image=np.zeros((n, 90, 160, 3), dtype=np.uint8), lidar=lidar, rss=rss,
                     feedback=(rss > 0).astype(np.float32), available=np.ones((n, 3), dtype=bool),
                     episode=np.zeros(n, dtype=int), category=np.ones(n, dtype=int))


TINY = dict(features=SMALL, hidden=32, image_width=4, epochs=12, batch_size=32, lr=3e-3, modality_dropout=0.0)


@pytest.mark.slow
def test_training_learns_lidar_blockage_and_resumes_bit_identically(tmp_path):
    data = toy_set()
    config = VehicleTrainingConfig(modalities=("gps", "lidar"), **TINY)
    model = train_vehicle(config, data, store=ModelStore(tmp_path / "a"), quiet=True)
    result = evaluate_vehicle(model, data)
    assert result.bit_accuracy > 0.9
    without_lidar = evaluate_vehicle(model, data, sensors=["gps"])
    assert result.bit_accuracy > without_lidar.bit_accuracy
    # interrupted after 2 epochs, resumed: the same weights as the uninterrupted run
    train_vehicle(config, data, store=ModelStore(tmp_path / "b"), quiet=True, stop_after_epochs=2)
    assert list((tmp_path / "b").glob("*.partial.pt"))
    resumed = train_vehicle(config, data, store=ModelStore(tmp_path / "b"), quiet=True)
    for a, b in zip(model.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # a second call loads the cached checkpoint
    cached = train_vehicle(config, data, store=ModelStore(tmp_path / "a"), quiet=True)
    torch.testing.assert_close(cached(data.inputs(np.arange(4), ("gps", "lidar"))),
                               model(data.inputs(np.arange(4), ("gps", "lidar"))))


def test_predict_feedback_thresholds_logits_at_zero():
    logits = torch.tensor([[-1.0, 0.5, 0.0, 3.0]])
    assert predict_feedback(logits).tolist() == [[0.0, 1.0, 0.0, 1.0]]
