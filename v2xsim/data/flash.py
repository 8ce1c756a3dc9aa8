"""Reader and writer for the FLASH multimodal mmWave data set layout.

On disk (real FLASH, and the FLASH-like generator which writes through
:func:`save_flash_episode`)::

    ROOT/Cat{1..4}/<any sub-folders, any depth>/episode_{i}/
        rf.npz     key "rf"     (N, W)            RSS per sector (0 = not received)
        gps.npz    key "gps"    (N, 2)            position
        image.npz  key "img"    (N, 90, 160, 3)   RGB, uint8 or float in [0, 255]
        lidar.npz  key "lidar"  (N, 20, 20, 20)   0 empty, 1 obstacle, -1 base station, -2 receiver

Episode ``i`` is one trial, i.e. one "vehicle". The categories are
1 LoS passing, 2 NLoS pedestrian, 3 NLoS static car, 4 NLoS moving car.

Every problem with a file raises :class:`v2xsim.errors.DataError` whose message starts with
the offending path; bad arguments raise ``ValueError`` naming the parameter.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from v2xsim.errors import DataError
from v2xsim.formats import IMAGE_SHAPE, LIDAR_SHAPE, LIDAR_VALUES, MODALITIES

CATEGORIES: dict[int, str] = {
    1: "LoS passing",
    2: "NLoS pedestrian",
    3: "NLoS static car",
    4: "NLoS moving car",
}
"""FLASH scenario categories by number (the ``Cat{k}`` folder)."""


_CATEGORY_DIR = re.compile(r"Cat(\d+)")
_EPISODE_DIR = re.compile(r"episode_(\d+)")


@dataclass(frozen=True)
class _FileSpec:
    filename: str  # file inside the episode folder
    key: str  # array name inside the npz
    trailing: tuple[int, ...] | None  # shape after N; None = exactly one free axis (W)


_SPECS: dict[str, _FileSpec] = {
    "rss": _FileSpec("rf.npz", "rf", None),
    "gps": _FileSpec("gps.npz", "gps", (2,)),
    "image": _FileSpec("image.npz", "img", IMAGE_SHAPE),
    "lidar": _FileSpec("lidar.npz", "lidar", LIDAR_SHAPE),
}


@dataclass(frozen=True)
class EpisodeFolder:
    """One ``episode_{i}`` folder found under a FLASH root."""

    episode: int
    category: int
    path: Path


# --------------------------------------------------------------------------- discovery


def find_episodes(root: str | os.PathLike, *, categories: Iterable[int] | None = None) -> list[EpisodeFolder]:
    """Every episode folder under ``root``, sorted by (category, path relative to root).

    The category is read from the first folder below ``root`` (``Cat{k}``); episode folders
    may sit at any depth under it. Folders inside an episode folder are not searched.

    Raises:
        DataError: ``root`` is not a directory, an episode folder is not under a
            ``Cat{1..4}`` folder, or no episode folder (of the wanted categories) exists.
    """
    root_path = Path(root)
    wanted = _check_categories(categories)
    if not root_path.is_dir():
        raise DataError(f"{root_path}: FLASH root is not a directory")
    found: list[tuple[int, str, EpisodeFolder]] = []
    for dirpath, dirnames, _ in os.walk(root_path):
        dirnames.sort()
        here = Path(dirpath)
        match = _EPISODE_DIR.fullmatch(here.name)
        if match is None or here == root_path:
            continue
        dirnames[:] = []  # an episode folder is a leaf
        relative = here.relative_to(root_path)
        category = _category_of(relative, here)
        if wanted is not None and category not in wanted:
            continue
        found.append((category, relative.as_posix(), EpisodeFolder(int(match.group(1)), category, here)))
    if not found:
        which = "" if wanted is None else f" of categories {sorted(wanted)}"
        raise DataError(f"{root_path}: no episode_<i> folder{which} found under Cat1..Cat4")
    found.sort(key=lambda item: (item[0], item[1]))
    return [item[2] for item in found]


def _category_of(relative: Path, folder: Path) -> int:
    match = _CATEGORY_DIR.fullmatch(relative.parts[0]) if len(relative.parts) > 1 else None
    if match is None:
        raise DataError(f"{folder}: episode folder is not inside a Cat1..Cat4 folder of the root")
    category = int(match.group(1))
    if category not in CATEGORIES:
        raise DataError(f"{folder}: category folder Cat{category} is not one of Cat1..Cat4")
    return category


def _check_categories(categories: Iterable[int] | None) -> set[int] | None:
    if categories is None:
        return None
    if isinstance(categories, (int, np.integer)):
        categories = [int(categories)]
    wanted = set()
    for value in categories:
        is_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        if not is_int or int(value) not in CATEGORIES:
            raise ValueError(f"categories: {value!r} is not one of {sorted(CATEGORIES)}")
        wanted.add(int(value))
    if not wanted:
        raise ValueError("categories: empty; pass None for all categories")
    return wanted


def _check_modalities(modalities: Iterable[str] | None) -> tuple[str, ...]:
    if modalities is None:
        return MODALITIES
    if isinstance(modalities, str):
        modalities = [modalities]
    chosen = []
    for name in modalities:
        if name not in MODALITIES:
            raise ValueError(f"modalities: unknown {name!r}; valid: {', '.join(MODALITIES)}")
        if name not in chosen:
            chosen.append(name)
    return tuple(m for m in MODALITIES if m in chosen)


# --------------------------------------------------------------------------- array checks


def _problem(kind: str, array: np.ndarray, width: int | None = None) -> str | None:
    """Why ``array`` is not a valid ``kind`` array, or None. ``width`` fixes W for rss."""
    spec = _SPECS[kind]
    if array.dtype.kind not in "iuf":
        return f"dtype {array.dtype} is not a real numeric type"
    expected_ndim = 1 + (1 if spec.trailing is None else len(spec.trailing))
    if array.ndim != expected_ndim:
        return f"expected {expected_ndim} dimensions {_shape_text(kind, width)}, got shape {array.shape}"
    if array.shape[0] == 0:
        return "contains no samples (N = 0)"
    if spec.trailing is None:
        if array.shape[1] == 0:
            return "has no sector columns (W = 0)"
        if width is not None and array.shape[1] != width:
            return f"expected shape {_shape_text(kind, width)}, got {array.shape}"
    elif array.shape[1:] != spec.trailing:
        return f"expected shape {_shape_text(kind, width)}, got {array.shape}"
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        return "contains NaN or infinite values"
    if kind == "image" and array.size:
        low, high = array.min(), array.max()
        if low < 0 or high > 255:
            return f"pixel values must lie in [0, 255], got [{low}, {high}]"
    if kind == "lidar" and not np.all(np.isin(array, LIDAR_VALUES)):
        bad = np.unique(array[~np.isin(array, LIDAR_VALUES)])[:5]
        return f"values must be in {{0, 1, -1, -2}}, found {bad.tolist()}"
    return None


def _shape_text(kind: str, width: int | None) -> str:
    spec = _SPECS[kind]
    tail = ("W" if width is None else str(width),) if spec.trailing is None else spec.trailing
    return "(N, " + ", ".join(str(t) for t in tail) + ")"


def _convert(kind: str, array: np.ndarray) -> np.ndarray:
    """Cast a checked array to the loader's output dtype."""
    if kind == "image":
        if array.dtype == np.uint8:
            return array
        if array.dtype.kind == "f":
            array = np.rint(array)  # [0, 255] already checked
        return array.astype(np.uint8)
    if kind == "lidar":
        return array.astype(np.int8, copy=False)
    return array.astype(np.float32, copy=False)


# --------------------------------------------------------------------------- file reading


def _read(folder: Path, kind: str, width: int | None = None) -> np.ndarray:
    """Read, check and convert one modality file of an episode folder."""
    spec = _SPECS[kind]
    path = folder / spec.filename
    if not path.is_file():
        expected = f"array {spec.key!r} of shape {_shape_text(kind, width)}"
        raise DataError(f"{path}: missing file (expected {expected})")
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError) as exc:
        raise DataError(f"{path}: cannot read npz file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: not an .npz archive (a bare .npy array?)")
    try:
        if spec.key not in archive.files:
            raise DataError(f"{path}: no array {spec.key!r}; keys present: {sorted(archive.files)}")
        array = archive[spec.key]
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError, KeyError) as exc:
        raise DataError(f"{path}: cannot read array {spec.key!r} ({type(exc).__name__}: {exc})") from exc
    finally:
        archive.close()
    problem = _problem(kind, array, width)
    if problem is not None:
        raise DataError(f"{path}: array {spec.key!r} {problem}")
    return _convert(kind, array)


def _read_rss(folders: Sequence[EpisodeFolder]) -> list[np.ndarray]:
    """rf arrays of ``folders`` (float32), all with the W of the first one."""
    arrays: list[np.ndarray] = []
    first: Path | None = None
    for item in folders:
        rss = _read(item.path, "rss")
        if arrays and rss.shape[1] != arrays[0].shape[1]:
            raise DataError(
                f"{item.path / 'rf.npz'}: has W = {rss.shape[1]} sector columns but "
                f"{first} has W = {arrays[0].shape[1]}"
            )
        if first is None:
            first = item.path / "rf.npz"
        arrays.append(rss)
    return arrays


def _active_columns(arrays: Sequence[np.ndarray], root: Path) -> np.ndarray:
    nonzero = np.zeros(arrays[0].shape[1], dtype=bool)
    for rss in arrays:
        nonzero |= np.any(rss != 0, axis=0)
    columns = np.flatnonzero(nonzero)
    if columns.size == 0:
        raise DataError(f"{root}: no sector column of any rf.npz is ever non-zero")
    return columns


def active_sectors(root: str | os.PathLike) -> np.ndarray:
    """Indices (int64, ascending) of the rf.npz columns non-zero in at least one sample.

    Computed over every category and episode under ``root``; these are the columns
    ``load_flash(root, sectors="active")`` keeps, in this order (34 for the GBA paper's
    processing of FLASH).
    """
    root_path = Path(root)
    return _active_columns(_read_rss(find_episodes(root_path)), root_path)


def _resolve_sectors(sectors, width: int) -> np.ndarray:
    """Validated column indices for an explicit sector sequence."""
    usage = "use 'all', 'active' or a sequence of column indices"
    if isinstance(sectors, str):
        raise ValueError(f"sectors: unknown {sectors!r}; {usage}")
    try:
        columns = np.asarray(list(sectors))
    except TypeError:
        raise ValueError(f"sectors: got {sectors!r}; {usage}") from None
    if columns.size == 0:
        raise ValueError("sectors: empty sequence")
    if columns.ndim != 1 or columns.dtype.kind not in "iu":
        raise ValueError(f"sectors: column indices must be integers, got {sectors!r}")
    if columns.min() < 0 or columns.max() >= width:
        raise ValueError(
            f"sectors: indices must lie in [0, {width - 1}] (W = {width}), got {columns.tolist()}"
        )
    if np.unique(columns).size != columns.size:
        raise ValueError(f"sectors: repeated column indices in {columns.tolist()}")
    return columns.astype(np.int64)


# --------------------------------------------------------------------------- loader


def load_flash(
    root: str | os.PathLike,
    *,
    categories: Iterable[int] | None = None,
    sectors: str | Sequence[int] = "all",
    modalities: Iterable[str] | None = None,
) -> dict[int, dict[str, np.ndarray]]:
    """Load a FLASH-layout data set, one entry per episode (= vehicle).

    Args:
        root: data-set root holding ``Cat1`` .. ``Cat4``.
        categories: category numbers to load (1..4); None = all present.
        sectors: ``"all"`` keeps every rf.npz column; ``"active"`` keeps the columns that
            are non-zero anywhere in the whole data set under ``root`` (every category,
            regardless of ``categories``; see :func:`active_sectors`); a sequence of
            column indices keeps those columns in the given order.
        modalities: subset of ``("gps", "image", "lidar")`` to load; None = all. Skipping
            image / LiDAR makes loading much faster.

    Returns:
        ``{episode: arrays}`` sorted by episode, where ``arrays`` holds (N = samples of
        this episode over all loaded categories, concatenated by category, then by folder
        path):

        - ``rss`` (N, W) float32: RSS per sector, as stored (0 = not received);
        - ``feedback`` (N, W) uint8: W-bit feedback ``rss > 0``;
        - ``category`` (N,) int64: FLASH category 1..4 of each sample;
        - ``gps`` (N, 2) float32 (note: degree coordinates lose ~0.5 m to float32);
        - ``image`` (N, 90, 160, 3) uint8 (float files must be in [0, 255]; rounded);
        - ``lidar`` (N, 20, 20, 20) int8 with values 0, 1, -1, -2.

    Raises:
        DataError: a file is missing, unreadable or malformed (message starts with its
            path), the modalities of one folder disagree on N, folders disagree on W, or
            ``root`` holds no episode folder.
        ValueError: an invalid option (message names it).
    """
    root_path = Path(root)
    chosen = _check_modalities(modalities)
    if isinstance(sectors, str) and sectors not in ("all", "active"):
        raise ValueError(f"sectors: unknown {sectors!r}; use 'all', 'active' or a sequence of column indices")
    folders = find_episodes(root_path, categories=categories)

    if isinstance(sectors, str) and sectors == "active":
        every = find_episodes(root_path)
        rss_by_path = dict(zip((f.path for f in every), _read_rss(every)))
        columns: np.ndarray | None = _active_columns(list(rss_by_path.values()), root_path)
        rss_list = [rss_by_path[f.path] for f in folders]
    else:
        rss_list = _read_rss(folders)
        width = rss_list[0].shape[1]
        columns = None if isinstance(sectors, str) and sectors == "all" else _resolve_sectors(sectors, width)

    parts: dict[int, dict[str, list[np.ndarray]]] = {}
    for item, rss in zip(folders, rss_list):
        n = rss.shape[0]
        sample = {"rss": rss if columns is None else rss[:, columns]}
        for kind in chosen:
            array = _read(item.path, kind)
            if array.shape[0] != n:
                raise DataError(
                    f"{item.path / _SPECS[kind].filename}: has {array.shape[0]} samples but "
                    f"{item.path / 'rf.npz'} has {n}"
                )
            sample[kind] = array
        sample["category"] = np.full(n, item.category, dtype=np.int64)
        episode = parts.setdefault(item.episode, {})
        for key, array in sample.items():
            episode.setdefault(key, []).append(array)

    data: dict[int, dict[str, np.ndarray]] = {}
    for episode in sorted(parts):
        arrays = {key: np.concatenate(chunks, axis=0) for key, chunks in parts[episode].items()}
        arrays["rss"] = np.ascontiguousarray(arrays["rss"], dtype=np.float32)
        arrays["feedback"] = (arrays["rss"] > 0).astype(np.uint8)
        data[episode] = arrays
    return data


# --------------------------------------------------------------------------- train / test split


def split_indices(
    num_samples: int, *, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split of ``range(num_samples)`` into sorted (train, test) index arrays.

    The test part holds ``round(test_fraction * num_samples)`` samples, but at least one
    and at most ``num_samples - 1`` when ``num_samples >= 2``. Same arguments, same split.
    """
    if isinstance(num_samples, bool) or int(num_samples) != num_samples or num_samples < 0:
        raise ValueError(f"num_samples must be a non-negative integer, got {num_samples!r}")
    test_fraction = float(test_fraction)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    num_samples = int(num_samples)
    num_test = math.floor(test_fraction * num_samples + 0.5)
    if num_samples >= 2:
        num_test = min(max(num_test, 1), num_samples - 1)
    order = np.random.default_rng(seed).permutation(num_samples)
    return np.sort(order[num_test:]), np.sort(order[:num_test])


def split_episode(
    data: Mapping[int, Mapping[str, np.ndarray]] | Mapping[str, np.ndarray],
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[dict, dict]:
    """Split every episode's samples into train and test parts (80/20 by default).

    ``data`` is either the output of :func:`load_flash` (episode -> arrays), split episode
    by episode, or a single episode's arrays. Every array is indexed along its first
    axis (N); samples keep their time order. Episode ``k`` is split with the generator
    seeded by ``(seed, k)``; a single episode with ``seed`` alone (see
    :func:`split_indices`). Deterministic for a given seed.

    Returns:
        ``(train, test)`` with the same structure as ``data``.
    """
    if not isinstance(data, Mapping) or not data:
        raise ValueError("data: expected a non-empty mapping (load_flash output or one episode)")
    values = list(data.values())
    if all(isinstance(v, Mapping) for v in values):
        train: dict = {}
        test: dict = {}
        for episode, arrays in data.items():
            train[episode], test[episode] = _split_arrays(
                arrays,
                test_fraction=test_fraction,
                seed=(int(seed), int(episode)),
                where=f"data[{episode!r}]",
            )
        return train, test
    return _split_arrays(data, test_fraction=test_fraction, seed=seed, where="data")


def _split_arrays(
    arrays: Mapping[str, np.ndarray], *, test_fraction: float, seed, where: str
) -> tuple[dict, dict]:
    lengths = {key: np.shape(value)[0] if np.ndim(value) else None for key, value in arrays.items()}
    distinct = {n for n in lengths.values()}
    if not lengths or None in distinct or len(distinct) != 1:
        raise ValueError(f"{where}: arrays must share the sample axis N, got first dimensions {lengths}")
    train_idx, test_idx = split_indices(distinct.pop(), test_fraction=test_fraction, seed=seed)
    train = {key: np.asarray(value)[train_idx] for key, value in arrays.items()}
    test = {key: np.asarray(value)[test_idx] for key, value in arrays.items()}
    return train, test


# --------------------------------------------------------------------------- writer


def save_flash_episode(
    directory: str | os.PathLike,
    *,
    rf: np.ndarray,
    gps: np.ndarray,
    img: np.ndarray,
    lidar: np.ndarray,
) -> Path:
    """Write one episode folder in the FLASH layout (four compressed .npz files).

    Args:
        directory: the ``.../Cat{k}/.../episode_{i}`` folder; created if needed, existing
            files are replaced.
        rf: (N, W) RSS per sector (written float32).
        gps: (N, 2) position (written float64).
        img: (N, 90, 160, 3) RGB in [0, 255] (written uint8; floats are rounded).
        lidar: (N, 20, 20, 20) with values 0, 1, -1, -2 (written int8).

    Returns:
        The folder path. Raises ``ValueError`` naming the argument when an array is
        malformed or the four disagree on N.
    """
    folder = Path(directory)
    given = {"rss": ("rf", rf), "gps": ("gps", gps), "image": ("img", img), "lidar": ("lidar", lidar)}
    checked: dict[str, np.ndarray] = {}
    for kind, (name, value) in given.items():
        array = np.asarray(value)
        problem = _problem(kind, array)
        if problem is not None:
            raise ValueError(f"{name}: {problem}")
        checked[kind] = array
    n = checked["rss"].shape[0]
    for kind, (name, _) in given.items():
        if checked[kind].shape[0] != n:
            raise ValueError(f"{name}: has {checked[kind].shape[0]} samples but rf has {n}")
    out = {
        "rss": checked["rss"].astype(np.float32),
        "gps": checked["gps"].astype(np.float64),
        "image": _convert("image", checked["image"]),
        "lidar": _convert("lidar", checked["lidar"]),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for kind, array in out.items():
        spec = _SPECS[kind]
        _write_npz(folder / spec.filename, spec.key, array)
    return folder


def _write_npz(path: Path, key: str, array: np.ndarray) -> None:
    """Write ``{key: array}`` compressed to ``path`` atomically (temp file + rename)."""
    handle, temp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".npz.tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez_compressed(stream, **{key: array})
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
