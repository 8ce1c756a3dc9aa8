"""Aggregation maths of the built-in strategies against direct references."""

import numpy as np
import pytest
import torch

from v2xsim.errors import ConfigError
from v2xsim.fl import ClientInfo, ClientUpdate
from v2xsim.fl.aggregation import GROUPS, parameter_group, partial_average, payload_bytes, select_entries
from v2xsim.fl.strategies import FLASH_POLICY
from v2xsim.models.gba_vehicle import GBAVehicle
from v2xsim.registry import FL_STRATEGY


def small_model(seed: int = 0) -> GBAVehicle:
    torch.manual_seed(seed)
    return GBAVehicle(num_beams=6, features={"gps": 8, "image": 8, "lidar": 8}, hidden=8, image_width=4)


def test_every_entry_of_gba_vehicle_has_a_group():
    groups = {parameter_group(key) for key in small_model().state_dict()}
    assert groups == set(GROUPS)
    with pytest.raises(ValueError, match="not a GBA-Vehicle parameter"):
        parameter_group("head.weight")


def test_own_entries_are_the_pruned_network_of_the_sensors_a_vehicle_has():
    keys = list(small_model().state_dict())
    own = select_entries(keys, groups="own", modalities=("gps", "lidar"))
    assert not any(k.startswith("branches.image.") or k.startswith("fusion_blocks.image.") for k in own)
    assert any(k.startswith("branches.lidar.") for k in own) and any(k.startswith("fusion_head.") for k in own)
    assert set(own) | {k for k in keys if ".image." in k} == set(keys)
    assert select_entries(keys, groups="all", modalities=("gps",)) == keys
    only_fusion = select_entries(keys, groups=["fusion"], modalities=("gps",))
    assert all(parameter_group(k) == "fusion" for k in only_fusion)
    assert not any(k.startswith("fusion_blocks.lidar") for k in only_fusion)
    with pytest.raises(ValueError, match="unknown parameter groups"):
        select_entries(keys, groups=["radar"], modalities=("gps",))


def test_modality_aware_never_lets_a_vehicle_without_a_sensor_touch_that_branch():
    current = small_model(0).state_dict()
    keys = list(current)
    with_image = {k: v.clone() + (1.0 if v.is_floating_point() else 0) for k, v in small_model(1).state_dict().items()}
    without_image = {k: v.clone() - 5.0 if v.is_floating_point() else v.clone()
                     for k, v in small_model(2).state_dict().items()}
    uploads = [
        {k: with_image[k] for k in select_entries(keys, groups="own", modalities=("gps", "image", "lidar"))},
        {k: without_image[k] for k in select_entries(keys, groups="own", modalities=("gps", "lidar"))},
    ]
    strategy = FL_STRATEGY.create("modality_aware")
    results = [ClientUpdate(client=i, state=s, num_samples=n) for i, (s, n) in enumerate(zip(uploads, (10, 30)))]
    new = strategy.aggregate_fit(1, results, [], current)
    for key in keys:
        if ".image." in key:  # only the vehicle that has RGB: its values exactly
            assert torch.equal(new[key], with_image[key]), key
        elif new[key].is_floating_point():  # Eq. 13: the plain mean over the vehicles holding it
            expected = (with_image[key].double() + without_image[key].double()) / 2
            assert torch.allclose(new[key].double(), expected, atol=1e-6), key
    weighted = FL_STRATEGY.create("modality_aware", {"weighted": True}).aggregate_fit(1, results, [], current)
    key = "fusion_head.3.weight"
    expected = (10 * with_image[key].double() + 30 * without_image[key].double()) / 40
    assert torch.allclose(weighted[key].double(), expected, atol=1e-6)


def test_partial_average_keeps_entries_nobody_uploaded_and_refuses_foreign_ones():
    current = {"a": torch.zeros(2), "b": torch.ones(2)}
    out = partial_average([{"a": torch.full((2,), 2.0)}, {"a": torch.full((2,), 4.0)}], [1, 1], current)
    assert torch.equal(out["a"], torch.full((2,), 3.0)) and torch.equal(out["b"], current["b"])
    assert partial_average([], [], current)["b"] is current["b"]
    with pytest.raises(ValueError, match="lacks"):
        partial_average([{"c": torch.zeros(1)}], [1], current)


def test_fedavg_unweighted_is_the_plain_mean_and_weighted_follows_samples():
    current = {"w": torch.zeros(3)}
    results = [ClientUpdate(client=0, state={"w": torch.tensor([1.0, 2.0, 3.0])}, num_samples=1),
               ClientUpdate(client=1, state={"w": torch.tensor([3.0, 2.0, 1.0])}, num_samples=3)]
    plain = FL_STRATEGY.create("fedavg", {"weighted": False}).aggregate_fit(1, results, [], current)
    weighted = FL_STRATEGY.create("fedavg").aggregate_fit(1, results, [], current)
    assert torch.allclose(plain["w"], torch.tensor([2.0, 2.0, 2.0]))
    assert torch.allclose(weighted["w"], torch.tensor([2.5, 2.0, 1.5]))


def test_flash_policy_frequencies_over_many_rounds_match_the_policy():
    strategy = FL_STRATEGY.create("flash")
    rng = np.random.default_rng(0)
    full = ClientInfo(client=0, modalities=("gps", "image", "lidar"), num_samples=5)
    no_lidar = ClientInfo(client=1, modalities=("gps", "image"), num_samples=5)
    counts = {0: dict.fromkeys(GROUPS, 0), 1: dict.fromkeys(GROUPS, 0)}
    rounds = 20000
    for r in range(rounds):
        for instruction in strategy.configure_fit(r + 1, [full, no_lidar], rng):
            (group,) = instruction.config["download"]
            counts[instruction.client][group] += 1
            assert instruction.config["upload"] == "all"
    for group, p in zip(GROUPS, FLASH_POLICY):
        assert counts[0][group] / rounds == pytest.approx(p, abs=0.01)
    # a vehicle without LiDAR: the policy renormalised over gps / image / fusion (0.1, 0.1, 0.4) / 0.6
    assert counts[1]["lidar"] == 0
    for group, p in (("gps", 1 / 6), ("image", 1 / 6), ("fusion", 4 / 6)):
        assert counts[1][group] / rounds == pytest.approx(p, abs=0.01)


def test_flash_rejects_a_bad_policy_and_the_registry_lists_strategies():
    with pytest.raises(ValueError, match="policy"):
        FL_STRATEGY.create("flash", {"policy": [0.5, 0.5]})
    with pytest.raises(ConfigError, match="valid: .*centralized.*da.*fedavg.*flash.*modality_aware"):
        FL_STRATEGY.get("fedsgd")


def test_da_runs_minus_then_plus_and_the_reverse_on_request():
    info = [ClientInfo(client=0, modalities=("gps", "lidar"), num_samples=4)]
    da = FL_STRATEGY.create("da", {"plus_rounds": 2})
    da.begin(num_rounds=5)
    stages = [da.stage(r) for r in range(1, 6)]
    assert stages == ["minus"] * 3 + ["plus"] * 2
    minus = da.configure_fit(1, info, np.random.default_rng(0))[0].config
    plus = da.configure_fit(5, info, np.random.default_rng(0))[0].config
    assert minus["da_minus"] and minus["upload"] == "own" and minus["train"] == "all"
    assert plus["da_plus"] and plus["train"] == "decision"
    reverse = FL_STRATEGY.create("da", {"plus_rounds": 2, "order": "plus_first"})
    reverse.begin(num_rounds=5)
    assert [reverse.stage(r) for r in range(1, 6)] == ["plus"] * 2 + ["minus"] * 3
    with pytest.raises(ValueError, match="plus_rounds"):
        FL_STRATEGY.create("da", {"plus_rounds": 5}).begin(num_rounds=5)


def test_payload_bytes_counts_float32_values():
    state = {"a": torch.zeros(3, 4), "n": torch.tensor(7)}
    assert payload_bytes(state) == 4 * 13
    assert payload_bytes(state, ["a"]) == 48
