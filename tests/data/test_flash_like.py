"""FLASH-like generator: FLASH layout, determinism, imbalance knobs, clear errors."""

import json

import numpy as np
import pytest

from v2xsim.data.flash import load_flash
from v2xsim.data.flash_like import FlashLikeConfig, generate_flash_like, load_flash_like, trial_split
from v2xsim.errors import DataError

#: the ideal radio: rf is the exact power above the threshold (the measured sweep and the
#: hardware array, the defaults, are tested in test_flash_like_radio.py)
IDEAL = {"measurement": {"ideal": True}, "array": {"ideal": True}}
SMALL = dict(num_episodes=3, trials_per_category=2, samples_per_trial=3, radio=IDEAL)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("flashlike")
    summary = generate_flash_like(root, FlashLikeConfig(**SMALL), quiet=True)
    return root, summary


def test_output_reloads_through_the_flash_loader(small):
    root, summary = small
    data = load_flash(root)
    assert sorted(data) == [0, 1, 2]
    per_episode = 4 * 2 * 3
    for arrays in data.values():
        assert arrays["rss"].shape == (per_episode, 34)
        assert arrays["image"].shape == (per_episode, 90, 160, 3)
        assert arrays["lidar"].shape == (per_episode, 20, 20, 20)
        np.testing.assert_array_equal(arrays["feedback"], arrays["rss"] > 0)
        assert sorted(np.unique(arrays["category"])) == [1, 2, 3, 4]
        # the ego cell and the RSU cell are in every LiDAR grid
        assert ((arrays["lidar"] == -2).reshape(per_episode, -1).sum(axis=1) == 1).all()
        assert ((arrays["lidar"] == -1).reshape(per_episode, -1).sum(axis=1) == 1).all()
    assert summary["num_samples"] == 3 * per_episode
    assert summary["los_share"]["1"] == 1.0  # LoS passing: nothing in the way
    assert 0.0 <= summary["zeta"] <= 1.0
    assert json.loads((root / "dataset.json").read_text())["zeta"] == summary["zeta"]


def test_extras_line_up_with_the_loader_and_heard_beams_match_the_channel(small):
    root, _ = small
    data = load_flash_like(root)
    arrays = data[1]
    assert arrays["channel"].shape == (24, 16) and arrays["available"].all()
    # simultaneous samples: the same row of every episode belongs to the same snapshot
    np.testing.assert_array_equal(data[0]["trial"], data[2]["trial"])
    strongest = arrays["rss"].argmax(axis=1)
    heard = arrays["rss"].max(axis=1) > 0
    from v2xsim.channel.codebook import dft_codebook
    import math

    codebook = dft_codebook(16, 34, coverage_angle_rad=math.radians(120))
    gains = np.abs(arrays["channel"].conj() @ codebook) ** 2
    np.testing.assert_array_equal(strongest[heard], gains[heard].argmax(axis=1))


def test_same_config_same_bytes_and_a_finished_set_is_reused(tmp_path, small):
    root, summary = small
    again = generate_flash_like(tmp_path / "b", FlashLikeConfig(**SMALL), quiet=True)
    assert again == summary
    for name in ("rf.npz", "img.npz" if False else "image.npz", "lidar.npz", "gps.npz"):
        a = np.load(root / "Cat3" / "trial_1" / "episode_2" / name)
        b = np.load(tmp_path / "b" / "Cat3" / "trial_1" / "episode_2" / name)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])
    # calling again on a finished data set of the same config returns without rewriting
    assert generate_flash_like(root, FlashLikeConfig(**SMALL), quiet=True) == summary
    with pytest.raises(DataError, match="not empty"):
        generate_flash_like(root, FlashLikeConfig(**{**SMALL, "seed": 5}), quiet=True)


def test_modality_imbalance_removes_sensors_and_reports_kappa(tmp_path):
    config = FlashLikeConfig(**{**SMALL, "num_episodes": 4, "categories": (1,)}, lidar_completeness=0.5,
                             image_completeness=0.75)
    summary = generate_flash_like(tmp_path, config, quiet=True)
    assert summary["kappa"] == {"gps": 1.0, "image": 0.75, "lidar": 0.5}
    data = load_flash_like(tmp_path)
    lacking = [e for e, a in data.items() if not a["available"][:, 2].any()]
    assert len(lacking) == 2
    for e in lacking:
        assert not data[e]["lidar"].any()


def test_shorter_segments_lower_the_label_overlap(tmp_path):
    base = dict(num_episodes=4, trials_per_category=2, samples_per_trial=6, categories=(1,))
    wide = generate_flash_like(tmp_path / "wide", FlashLikeConfig(**base), quiet=True)
    narrow = generate_flash_like(tmp_path / "narrow", FlashLikeConfig(**base, segment_fraction=0.1), quiet=True)
    assert narrow["zeta"] < wide["zeta"]


def test_trial_split_keeps_trials_whole(small):
    root, _ = small
    data = load_flash_like(root, modalities=("gps",))
    train, test = trial_split(data, seed=3)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 8
    assert len(test) == 4  # one of the two trials of each category
    assert trial_split(data, seed=3)[1].tolist() == test.tolist()


@pytest.mark.parametrize("option, value", [
    ("categories", (5,)), ("num_episodes", 1), ("samples_per_trial", 0), ("speed_kmh", (50, 10)),
    ("segment_fraction", 0.0), ("lidar_completeness", 1.5), ("missing", "some"), ("lidar_dropout", 1.0),
])
def test_bad_options_name_the_parameter(option, value):
    with pytest.raises(ValueError, match=option):
        FlashLikeConfig(**{option: value})
