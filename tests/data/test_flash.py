"""FLASH loader / writer: layout discovery, concatenation, sector selection, split, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from v2xsim.data.flash import (
    active_sectors,
    find_episodes,
    load_flash,
    save_flash_episode,
    split_episode,
    split_indices,
)
from v2xsim.errors import DataError

W = 8
# columns ever non-zero: 1..4 everywhere, 6 only in Cat3 (0, 5, 7 always zero)
CAT1_COLUMNS = [1, 2, 3, 4]
CAT3_COLUMNS = [1, 2, 3, 4, 6]
ACTIVE = [1, 2, 3, 4, 6]

# (relative folder, number of samples); depth below Cat{k} varies
LAYOUT = {
    "Cat1/run_a/episode_0": 3,
    "Cat1/episode_1": 4,
    "Cat1/run_a/deeper/episode_2": 5,
    "Cat3/x/y/z/episode_0": 6,
    "Cat3/x/episode_1": 7,
}


def _arrays(rng: np.random.Generator, n: int, columns: list[int]) -> dict[str, np.ndarray]:
    rf = np.zeros((n, W))
    rf[:, columns] = rng.uniform(0.0, 1.0, size=(n, len(columns))) * (rng.random((n, len(columns))) < 0.6)
    rf[0, columns] = 0.5  # every active column is non-zero at least once
    lidar = rng.choice(np.array([0, 0, 0, 1, -1, -2]), size=(n, 20, 20, 20))
    return {
        "rf": rf,
        "gps": rng.normal(size=(n, 2)),
        "img": rng.integers(0, 256, size=(n, 90, 160, 3), dtype=np.uint8),
        "lidar": lidar.astype(np.float64),  # FLASH stores LiDAR as float
    }


@pytest.fixture
def flash(tmp_path: Path) -> tuple[Path, dict[str, dict[str, np.ndarray]]]:
    """A small FLASH tree and the raw arrays written into each episode folder."""
    rng = np.random.default_rng(7)
    root = tmp_path / "flash"
    written = {}
    for relative, n in LAYOUT.items():
        columns = CAT1_COLUMNS if relative.startswith("Cat1") else CAT3_COLUMNS
        arrays = _arrays(rng, n, columns)
        save_flash_episode(root / relative, **arrays)
        written[relative] = arrays
    (root / "Cat1" / "notes").mkdir()  # unrelated folder: ignored
    return root, written


def _expected(written, *folders: str) -> dict[str, np.ndarray]:
    return {key: np.concatenate([written[f][key] for f in folders]) for key in ("rf", "gps", "img", "lidar")}


def _rewrite(path: Path, **arrays: np.ndarray) -> None:
    np.savez_compressed(path, **arrays)


# --------------------------------------------------------------------------- loading


def test_episodes_concatenate_categories_in_order(flash):
    root, written = flash
    data = load_flash(root)
    assert list(data) == [0, 1, 2]
    expected = _expected(written, "Cat1/run_a/episode_0", "Cat3/x/y/z/episode_0")
    ep = data[0]
    assert set(ep) == {"gps", "image", "lidar", "rss", "feedback", "category"}
    assert ep["rss"].shape == (9, W) and ep["rss"].dtype == np.float32
    np.testing.assert_allclose(ep["rss"], expected["rf"], rtol=1e-6)
    np.testing.assert_array_equal(ep["feedback"], expected["rf"] > 0)
    assert set(np.unique(ep["feedback"])) <= {0, 1}
    np.testing.assert_allclose(ep["gps"], expected["gps"], rtol=1e-6)
    assert ep["gps"].dtype == np.float32
    assert ep["image"].dtype == np.uint8 and ep["image"].shape == (9, 90, 160, 3)
    np.testing.assert_array_equal(ep["image"], expected["img"])
    assert ep["lidar"].dtype == np.int8 and ep["lidar"].shape == (9, 20, 20, 20)
    np.testing.assert_array_equal(ep["lidar"], expected["lidar"])
    np.testing.assert_array_equal(ep["category"], [1] * 3 + [3] * 6)
    assert data[2]["rss"].shape == (5, W)
    np.testing.assert_array_equal(data[2]["category"], [1] * 5)


def test_category_filter_and_discovery(flash):
    root, written = flash
    data = load_flash(root, categories=[3], modalities=[])
    assert list(data) == [0, 1]
    np.testing.assert_allclose(data[1]["rss"], written["Cat3/x/episode_1"]["rf"], rtol=1e-6)
    assert np.all(data[1]["category"] == 3)
    folders = find_episodes(root)
    assert [(f.category, f.episode) for f in folders] == [(1, 1), (1, 2), (1, 0), (3, 1), (3, 0)]  # by path
    with pytest.raises(ValueError, match="categories"):
        load_flash(root, categories=[5])


def test_active_sectors_keep_ever_nonzero_columns(flash):
    root, written = flash
    np.testing.assert_array_equal(active_sectors(root), ACTIVE)
    data = load_flash(root, sectors="active", modalities=["gps"])
    expected = _expected(written, "Cat1/run_a/episode_0", "Cat3/x/y/z/episode_0")["rf"][:, ACTIVE]
    np.testing.assert_allclose(data[0]["rss"], expected, rtol=1e-6)
    np.testing.assert_array_equal(data[0]["feedback"], expected > 0)
    # the active set is that of the whole data set, also when one category is loaded
    only_cat1 = load_flash(root, categories=[1], sectors="active", modalities=[])
    assert only_cat1[1]["rss"].shape == (4, len(ACTIVE))
    picked = load_flash(root, sectors=[6, 1], modalities=[])
    expected = _expected(written, "Cat1/episode_1", "Cat3/x/episode_1")["rf"][:, [6, 1]]
    np.testing.assert_allclose(picked[1]["rss"], expected, rtol=1e-6)


@pytest.mark.parametrize("sectors", ["some", [0, 8], [-1], [1, 1], [], [0.5]])
def test_bad_sector_option(flash, sectors):
    with pytest.raises(ValueError, match="sectors"):
        load_flash(flash[0], sectors=sectors, modalities=[])


def test_modalities_skip_files(flash):
    root, _ = flash
    (root / "Cat1/episode_1/image.npz").write_bytes(b"not an archive")
    data = load_flash(root, modalities=["gps"])
    assert set(data[1]) == {"gps", "rss", "feedback", "category"}
    with pytest.raises(ValueError, match="modalities"):
        load_flash(root, modalities=["radar"])


# --------------------------------------------------------------------------- split


def test_split_is_seeded_disjoint_and_80_20(flash):
    data = load_flash(flash[0], modalities=["gps"])
    train, test = split_episode(data, seed=3)
    again_train, again_test = split_episode(data, seed=3)
    for episode, arrays in data.items():
        n = arrays["rss"].shape[0]
        assert train[episode]["rss"].shape[0] + test[episode]["rss"].shape[0] == n
        assert test[episode]["rss"].shape[0] == max(1, round(0.2 * n))
        for key in arrays:
            np.testing.assert_array_equal(train[episode][key], again_train[episode][key])
            np.testing.assert_array_equal(test[episode][key], again_test[episode][key])
    # rows of train and test are disjoint and together are the episode
    rows = lambda a: {tuple(r) for r in a["gps"].tolist()}  # noqa: E731
    for episode, arrays in data.items():
        assert rows(train[episode]).isdisjoint(rows(test[episode]))
        assert rows(train[episode]) | rows(test[episode]) == rows(arrays)

    tr, te = split_indices(100, seed=0)
    assert len(tr) == 80 and len(te) == 20 and not set(tr) & set(te)
    assert set(tr) | set(te) == set(range(100))
    np.testing.assert_array_equal(te, split_indices(100, seed=0)[1])
    assert not np.array_equal(te, split_indices(100, seed=1)[1])
    single_train, single_test = split_episode(data[0], seed=3)
    assert single_train["rss"].shape[0] + single_test["rss"].shape[0] == data[0]["rss"].shape[0]
    with pytest.raises(ValueError, match="test_fraction"):
        split_indices(10, test_fraction=1.0)


# --------------------------------------------------------------------------- errors


def test_truncated_lidar_names_file(flash):
    root, _ = flash
    path = root / "Cat3/x/episode_1/lidar.npz"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="cannot read") as info:
        load_flash(root)
    assert str(path) in str(info.value)


def test_wrong_key_lists_present_keys(flash):
    root, written = flash
    path = root / "Cat1/episode_1/gps.npz"
    _rewrite(path, position=written["Cat1/episode_1"]["gps"])
    with pytest.raises(DataError) as info:
        load_flash(root)
    assert str(path) in str(info.value) and "'gps'" in str(info.value) and "position" in str(info.value)


def test_wrong_shape_names_file(flash):
    root, _ = flash
    path = root / "Cat1/run_a/episode_0/image.npz"
    _rewrite(path, img=np.zeros((3, 90, 160), dtype=np.uint8))
    with pytest.raises(DataError, match="dimensions") as info:
        load_flash(root)
    assert str(path) in str(info.value)
    _rewrite(path, img=np.zeros((3, 160, 90, 3), dtype=np.uint8))
    with pytest.raises(DataError, match=r"\(N, 90, 160, 3\)"):
        load_flash(root)


def test_missing_file_names_file(flash):
    root, _ = flash
    path = root / "Cat3/x/y/z/episode_0/rf.npz"
    path.unlink()
    with pytest.raises(DataError, match="missing file") as info:
        load_flash(root, modalities=[])
    assert str(path) in str(info.value)


def test_mismatched_samples_names_file(flash):
    root, written = flash
    path = root / "Cat1/episode_1/lidar.npz"
    _rewrite(path, lidar=written["Cat1/episode_1"]["lidar"][:2])
    with pytest.raises(DataError, match="2 samples") as info:
        load_flash(root)
    assert str(path) in str(info.value)


def test_width_mismatch_between_folders(flash):
    root, _ = flash
    path = root / "Cat3/x/episode_1/rf.npz"
    _rewrite(path, rf=np.ones((7, W + 1)))
    with pytest.raises(DataError, match="W = 9") as info:
        load_flash(root, modalities=[])
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("filename", "arrays", "message"),
    [
        ("lidar.npz", {"lidar": np.full((4, 20, 20, 20), 3.0)}, "values must be in"),
        ("gps.npz", {"gps": np.full((4, 2), np.nan)}, "NaN"),
        ("image.npz", {"img": np.full((4, 90, 160, 3), 300.0)}, r"\[0, 255\]"),
        ("rf.npz", {"rf": np.array(["a"] * 4 * W).reshape(4, W)}, "dtype"),
    ],
)
def test_bad_values_name_file(flash, filename, arrays, message):
    root, _ = flash
    path = root / "Cat1/episode_1" / filename
    _rewrite(path, **arrays)
    with pytest.raises(DataError, match=message) as info:
        load_flash(root)
    assert str(path) in str(info.value)


def test_empty_or_misplaced_root(tmp_path):
    with pytest.raises(DataError) as info:
        load_flash(tmp_path)
    assert str(tmp_path) in str(info.value)
    with pytest.raises(DataError, match="not a directory"):
        load_flash(tmp_path / "absent")
    (tmp_path / "stray" / "episode_0").mkdir(parents=True)
    with pytest.raises(DataError, match="Cat1..Cat4"):
        load_flash(tmp_path)


# --------------------------------------------------------------------------- writer


def test_writer_round_trip_and_validation(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "Cat2" / "ped" / "episode_4"
    img = rng.uniform(0, 255, size=(3, 90, 160, 3))
    lidar = rng.choice(np.array([0, 1, -1, -2]), size=(3, 20, 20, 20))
    rf = np.array([[0.0, 1.5, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.25]])
    save_flash_episode(folder, rf=rf, gps=np.zeros((3, 2)), img=img, lidar=lidar)
    assert sorted(p.name for p in folder.iterdir()) == ["gps.npz", "image.npz", "lidar.npz", "rf.npz"]
    with np.load(folder / "rf.npz") as archive:
        assert archive.files == ["rf"]
    data = load_flash(tmp_path)
    assert list(data) == [4]
    np.testing.assert_array_equal(data[4]["image"], np.rint(img).astype(np.uint8))
    np.testing.assert_array_equal(data[4]["lidar"], lidar)
    np.testing.assert_array_equal(data[4]["feedback"], rf > 0)
    np.testing.assert_array_equal(data[4]["category"], [2, 2, 2])

    with pytest.raises(ValueError, match="^gps: "):
        save_flash_episode(folder, rf=rf, gps=np.zeros((3, 3)), img=img, lidar=lidar)
    with pytest.raises(ValueError, match="^lidar: .*samples"):
        save_flash_episode(folder, rf=rf, gps=np.zeros((3, 2)), img=img, lidar=lidar[:2])
    with pytest.raises(ValueError, match="^lidar: values"):
        save_flash_episode(folder, rf=rf, gps=np.zeros((3, 2)), img=img, lidar=lidar + 5)
