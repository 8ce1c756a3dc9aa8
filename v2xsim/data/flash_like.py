"""FLASH-like data from the simulated world, written in the real FLASH layout.

Each category holds several *trials* (sub-folders ``trial_<j>``). In a trial, ``num_episodes``
cars (episode ``k`` = vehicle ``k``, as in FLASH) drive through the RSU coverage at the same
time, each in its own lane position and speed, and a snapshot is taken every
``sample_period_s``. Per snapshot and vehicle the generator stores

- ``rf``: received power per codebook beam [mW] from the channel backend. With the
  802.11ad measurement model (the default) it is what the vehicle measured from each
  sector's SSW frame (:meth:`v2xsim.radio.Radio.measure`): every decoded sector, as FLASH
  records it, 0 for frames below the control-PHY floor; the feedback bits (power above
  ``radio.sensitivity_dbm``) are then stored in ``v2xsim.npz`` as ``feedback``. With the
  ideal measurement (``radio.measurement.ideal = true``) it is the exact power, 0 where it
  is below the receiver sensitivity (so ``feedback = rf > 0`` is the W-bit feedback);
- ``gps``: the position [m] plus GPS noise;
- ``image``: the rendered view of the vehicle's side camera (:mod:`v2xsim.sensing.camera`);
- ``lidar``: the ray-cast FLASH grid (:mod:`v2xsim.sensing.lidar`).

Categories, as in FLASH (blockers are placed afresh in every trial, so GPS alone cannot
know them): 1 LoS passing (only the background: far-side pedestrians and parked cars);
2 NLoS pedestrian (groups of pedestrians crossing the road or waiting at the near kerb);
3 NLoS static car (stopped trucks / vans in the near lanes); 4 NLoS moving car (trucks
driving in the near lanes at their own speed).

Imbalance knobs: ``segment_fraction`` < 1 confines each vehicle to its own stretch of the
road within a trial (label imbalance, reported as ``zeta``); ``image_completeness`` and
``lidar_completeness`` remove a sensor from whole vehicles (``missing="vehicles"``) or
drop samples at random (``missing="samples"``), reported as ``kappa``.

Beside the four FLASH files, each episode folder holds ``v2xsim.npz`` (ignored by other
FLASH tools) with ``available`` (N, 3) bool for gps / image / lidar, ``channel`` (N, Nt)
complex64 [sqrt(W)], ``position`` (N, 3) [m], ``trial`` (N,) so sum rates can be computed
from simultaneous samples, ``los`` (N,) bool (no box on the RSU-vehicle segment), and,
with the measurement model only, ``feedback`` (N, W) uint8 (the W feedback bits; the
loader :func:`load_flash_like` puts them in place of ``rf > 0``);
``dataset.json`` at the root records the configuration and the measured ``zeta``, ``kappa`` and LoS shares.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from v2xsim import build
from v2xsim.cache import config_hash
from v2xsim.config import BlockersConfig, RadioConfig, RoadConfig, format_validation_error
from v2xsim.data.flash import CATEGORIES, find_episodes, load_flash, save_flash_episode
from v2xsim.errors import ConfigError, DataError
from v2xsim.formats import MODALITIES
from v2xsim.geometry import Boxes, Snapshot, on_ground, segment_hits, vehicle_boxes
from v2xsim.metrics import label_overlap, modality_completeness, rss_vector
from v2xsim.progress import silenced
from v2xsim.sensing import SensorConfig, sense
from v2xsim.units import kmh_to_mps

MISSING_MODES = ("vehicles", "samples")
EXTRA_FILE = "v2xsim.npz"
EXTRA_KEYS = ("available", "channel", "position", "trial", "los")
#: extra key written only by the 802.11ad measurement model (feedback bits from the threshold)
OPTIONAL_EXTRA_KEYS = ("feedback",)
#: bumped whenever the files a configuration produces change (names cached data sets)
DATA_FORMAT = 2
#: label-imbalance preset towards FLASH's zeta = 2.9 % (seed 002, Section V-A): each vehicle
#: keeps one lane and 5 % of the road. It reaches zeta of about 0.11, not 0.03: blocked
#: samples hear nothing here, and that shared all-zero label puts a floor under the overlap.
FLASH_SEGMENT_FRACTION = 0.05
#: speed range of the moving trucks of category 4 [km/h]
MOVING_TRUCK_SPEED_KMH = (20.0, 60.0)


@dataclass(frozen=True, kw_only=True)
class FlashLikeConfig:
    """What to generate.

    Attributes:
        road, radio, blockers: scenario sections (:class:`v2xsim.config.RoadConfig`,
            :class:`v2xsim.config.RadioConfig`, :class:`v2xsim.config.BlockersConfig`
            fields; defaults = the headline road). The blockers are the background of
            every category (far-sidewalk pedestrians, far-kerb parked cars).
        categories: FLASH categories to write (1..4).
        num_episodes: vehicles (episodes) per trial.
        trials_per_category: trials (fresh blocker layouts) per category. Many short
            trials generalise better than a few long ones: consecutive snapshots are alike.
        samples_per_trial: snapshots per trial. sample_period_s: time between them [s].
        speed_kmh: (low, high) range of vehicle speeds [km/h].
        segment_fraction: share of the covered road each vehicle drives through within a
            trial (wrapping around); 1 = everyone covers everything (balanced labels).
        fixed_lanes: every vehicle keeps one lane in all trials (else a random lane per trial).
        image_completeness, lidar_completeness: kappa of RGB / LiDAR (GPS is always on).
        missing: "vehicles" (whole vehicles lack the sensor) or "samples" (random loss).
        gps_noise_m: GPS error standard deviation [m]. lidar_dropout: LiDAR point loss.
        backend: channel backend ("geometric", or "sionna_rt": channels, camera and LiDAR
            all come from the same ray-traced 3-D scene).
        channel: options of the channel backend.
        seed: all randomness.
    """

    road: dict[str, Any] = field(default_factory=dict)
    radio: dict[str, Any] = field(default_factory=dict)
    blockers: dict[str, Any] = field(default_factory=dict)
    categories: tuple[int, ...] = (1, 2, 3, 4)
    num_episodes: int = 10
    trials_per_category: int = 25
    samples_per_trial: int = 4
    sample_period_s: float = 0.25
    speed_kmh: tuple[float, float] = (20.0, 60.0)
    segment_fraction: float = 1.0
    fixed_lanes: bool = False
    image_completeness: float = 1.0
    lidar_completeness: float = 1.0
    missing: str = "vehicles"
    gps_noise_m: float = 0.5
    lidar_dropout: float = 0.1
    backend: str = "geometric"
    channel: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "categories", tuple(int(c) for c in self.categories))
        object.__setattr__(self, "speed_kmh", tuple(float(s) for s in self.speed_kmh))
        if not self.categories or any(c not in CATEGORIES for c in self.categories):
            raise ValueError(f"categories must be a non-empty subset of 1..4, got {list(self.categories)}")
        for name in ("num_episodes", "trials_per_category", "samples_per_trial"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.num_episodes < 2:
            raise ValueError(f"num_episodes must be >= 2 (zeta compares vehicles), got {self.num_episodes}")
        if not self.sample_period_s > 0:
            raise ValueError(f"sample_period_s must be > 0, got {self.sample_period_s}")
        low, high = self.speed_kmh if len(self.speed_kmh) == 2 else (math.nan, math.nan)
        if not (0 < low <= high):
            raise ValueError(f"speed_kmh must be (low, high) with 0 < low <= high, got {list(self.speed_kmh)}")
        if not 0 < self.segment_fraction <= 1:
            raise ValueError(f"segment_fraction must be in (0, 1], got {self.segment_fraction}")
        for name in ("image_completeness", "lidar_completeness"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.missing not in MISSING_MODES:
            raise ValueError(f"missing must be one of {', '.join(MISSING_MODES)}, got {self.missing!r}")
        if not self.gps_noise_m >= 0:
            raise ValueError(f"gps_noise_m must be >= 0, got {self.gps_noise_m}")
        if not 0 <= self.lidar_dropout < 1:
            raise ValueError(f"lidar_dropout must be in [0, 1), got {self.lidar_dropout}")


@dataclass
class _Site:
    layout: Any
    radio: Any
    channel: Any
    blockers: BlockersConfig


def _site(config: FlashLikeConfig) -> _Site:
    sections = []
    for key, section in (("road", RoadConfig), ("radio", RadioConfig), ("blockers", BlockersConfig)):
        try:
            sections.append(section.model_validate(getattr(config, key)))
        except ValidationError as error:  # one line naming the field
            first = error.errors()[0]
            raise ConfigError(f"{key}.{format_validation_error(error)}" if first["loc"] else
                              f"{key}: {first['msg']}") from None
    road, radio, blockers = sections
    site = build.site(road, radio, seed=config.seed)
    channel = build.channel_backend(config.backend, dict(config.channel), layout=site.layout, radio=radio,
                                    seed=config.seed)
    return _Site(site.layout, site.radio, channel, blockers)


@dataclass
class _Plan:
    """Random draws shared by every trial of a data set: one generator per trial (world
    and sensors), one per trial for the sweep measurement noise, the sensor availability
    and each vehicle's stretch of road."""

    trial_rngs: list[np.random.Generator]
    measurement_rngs: list[np.random.Generator]
    available: np.ndarray
    starts: np.ndarray


def _plan(config: FlashLikeConfig, site: _Site) -> _Plan:
    trials = len(config.categories) * config.trials_per_category
    seeds = np.random.SeedSequence([config.seed, 424242])
    availability_rng, *trial_rngs = [np.random.default_rng(s) for s in seeds.spawn(1 + trials)]
    measurement_rngs = [np.random.default_rng(s) for s in np.random.SeedSequence([config.seed, 424243]).spawn(trials)]
    per_vehicle = trials * config.samples_per_trial
    available = _availability(config, availability_rng, per_vehicle)
    # each vehicle keeps its own stretch of road in every trial (its trajectory), as the
    # time-offset FLASH episodes do: the source of label imbalance
    x_min, x_max = site.layout.x_range
    segment = config.segment_fraction * (x_max - x_min)
    starts = (availability_rng.uniform(x_min, x_max - segment, config.num_episodes)
              if config.segment_fraction < 1 else np.full(config.num_episodes, x_min))
    return _Plan(trial_rngs, measurement_rngs, available, starts)


def _category_blockers(category: int, layout, background_config: BlockersConfig, rng: np.random.Generator,
                       times: np.ndarray) -> list[Boxes]:
    """Blocker boxes of one trial at every sample time (list over time)."""
    x_min, x_max = layout.x_range
    span = x_max - x_min
    lanes = layout.lane_centres
    # background in every category: far-sidewalk pedestrians and far-kerb parked cars
    background = build.blockers(background_config, layout, rng)
    if category == 1:
        return [background] * len(times)
    if category == 2:
        # groups of pedestrians crossing the road (walking across at ~1.4 m/s) or waiting
        count = int(rng.integers(3, 7))
        x = rng.uniform(x_min, x_max, count)
        y0 = rng.uniform(-0.5, layout.road_width, count)
        walk = rng.choice([-1.4, 0.0, 1.4], count)
        out = []
        for t in times:
            y = np.clip(y0 + walk * t, -1.0, layout.road_width + 0.5)
            out.append(Boxes.concat(background, on_ground("pedestrian", x, y)))
        return out
    if category == 3:
        # stopped trucks / vans in the lanes nearest the RSU
        count = int(rng.integers(1, 3))
        x = rng.uniform(x_min, x_max, count)
        lane = rng.integers(0, max(1, len(lanes) - 1), count)
        still = Boxes.concat(background, on_ground("truck", x, lanes[lane]))
        return [still] * len(times)
    # category 4: trucks driving in the near lanes at their own speed (wrapping around)
    count = int(rng.integers(1, 3))
    x0 = rng.uniform(x_min, x_max, count)
    lane = rng.integers(0, max(1, len(lanes) - 1), count)
    speed = kmh_to_mps(rng.uniform(*MOVING_TRUCK_SPEED_KMH, count))
    out = []
    for t in times:
        x = x_min + np.mod(x0 - x_min + speed * t, span)
        out.append(Boxes.concat(background, on_ground("truck", x, lanes[lane])))
    return out


def _trial(config: FlashLikeConfig, site: _Site, category: int, rng: np.random.Generator,
           sensor_config, available: np.ndarray, start: np.ndarray, *,
           measurement_rng: np.random.Generator | None = None, sensors: bool = True) -> dict[str, np.ndarray]:
    """Arrays of one trial, indexed [episode, sample, ...]; vehicle k drives within
    ``[start[k], start[k] + segment_fraction x coverage)`` [m].

    ``measurement_rng`` draws the sweep measurement noise (non-ideal measurement only).
    ``sensors = False`` leaves out GPS, camera and LiDAR (channels, positions and the
    sweep only; the positions and channels are the same either way)."""
    layout, radio = site.layout, site.radio
    x_min, x_max = layout.x_range
    span = x_max - x_min
    k, n = config.num_episodes, config.samples_per_trial
    times = np.arange(n) * config.sample_period_s
    lanes = layout.lane_centres
    lane = rng.integers(0, len(lanes), k)
    if config.fixed_lanes:
        lane = np.arange(k) % len(lanes)
    speed = kmh_to_mps(rng.uniform(*config.speed_kmh, k))
    segment = config.segment_fraction * span
    phase = rng.uniform(0, segment, k)
    blockers = _category_blockers(category, layout, site.blockers, rng, times)
    ids = np.arange(k)
    width = radio.codebook.shape[1]
    out = {
        "rf": np.zeros((k, n, width), dtype=np.float32),
        "channel": np.zeros((k, n, radio.codebook.shape[0]), dtype=np.complex64),
        "position": np.zeros((k, n, 3), dtype=np.float32),
        "los": np.zeros((k, n), dtype=bool),
    }
    if sensors:
        out.update(gps=np.zeros((k, n, 2), dtype=np.float32), img=np.zeros((k, n, 90, 160, 3), dtype=np.uint8),
                   lidar=np.zeros((k, n, 20, 20, 20), dtype=np.int8))
    measured = not radio.measurement.ideal
    if measured:
        out["feedback"] = np.zeros((k, n, width), dtype=np.uint8)
    for step, t in enumerate(times):
        x = start + np.mod(phase + speed * t, segment)
        positions = np.stack([x, lanes[lane], np.full(k, layout.antenna_height_m)], axis=1)
        obstacles = Boxes.concat(vehicle_boxes(layout, positions, ids), blockers[step])
        h = site.channel.channels(positions, obstacles, ids)
        rss_w = rss_vector(h, radio.codebook, radio.p_max)
        if measured:  # what the vehicle measured from every decoded SSW frame; bits from the threshold
            reported = radio.measure(rss_w, measurement_rng)
            out["rf"][:, step] = reported * 1e3
            out["feedback"][:, step] = reported > radio.feedback_threshold
        else:
            out["rf"][:, step] = np.where(rss_w > radio.feedback_threshold, rss_w * 1e3, 0.0)
        if sensors:
            # a backend with its own 3-D scene renders its own camera and LiDAR
            scene = site.channel.scene_sensor()
            readings = (scene.sense if scene is not None else sense)(
                layout, Snapshot(ids=ids, positions=positions, obstacles=obstacles), rng, config=sensor_config)
            out["gps"][:, step] = readings["gps"]
            out["img"][:, step] = readings["image"]
            out["lidar"][:, step] = readings["lidar"]
        out["channel"][:, step] = h
        out["position"][:, step] = positions
        rsu = np.broadcast_to(layout.rsu_position, positions.shape)
        hits = segment_hits(rsu, positions, obstacles)
        own = obstacles.owner[None, :] == ids[:, None]
        out["los"][:, step] = ~(hits & ~own).any(axis=1)
    if sensors:  # sensors a vehicle lacks (or lost) leave zeros in the FLASH files
        out["img"][~available[:, :, 1]] = 0
        out["lidar"][~available[:, :, 2]] = 0
    return out


def _availability(config: FlashLikeConfig, rng: np.random.Generator, total: int) -> np.ndarray:
    """(K, total, 3) bool: which sensors each vehicle has at each of its samples."""
    k = config.num_episodes
    have = np.ones((k, total, 3), dtype=bool)
    for column, completeness in ((1, config.image_completeness), (2, config.lidar_completeness)):
        if completeness >= 1:
            continue
        if config.missing == "vehicles":
            lacking = rng.permutation(k)[: int(round(k * (1 - completeness)))]
            have[lacking, :, column] = False
        else:
            have[:, :, column] = rng.random((k, total)) < completeness
    return have


def generate_flash_like(out: str | os.PathLike, config: FlashLikeConfig | None = None, *,
                        quiet: bool = False) -> dict[str, Any]:
    """Write a FLASH-layout data set to ``out``; returns (and writes to
    ``out/dataset.json``) its summary: configuration, zeta, kappa, LoS share per category.

    Deterministic: the same configuration writes identical arrays. A directory that
    already holds a finished data set of the same configuration is left as it is.
    """
    quiet = quiet or silenced()
    config = config or FlashLikeConfig()
    root = Path(out)
    summary_path = root / "dataset.json"
    if summary_path.exists():
        try:
            previous = json.loads(summary_path.read_text())
        except (OSError, json.JSONDecodeError):
            previous = {}
        if previous.get("config") == _plain(config) and previous.get("format") == DATA_FORMAT:
            return previous
    if root.exists() and any(root.iterdir()):
        raise DataError(f"{root}: output directory is not empty (and holds no data set of this configuration)")
    site = _site(config)
    sensor_config = SensorConfig(gps_noise_m=config.gps_noise_m, lidar_dropout=config.lidar_dropout)
    plan = _plan(config, site)
    trial_seeds, available, starts = plan.trial_rngs, plan.available, plan.starts
    per_vehicle = len(config.categories) * config.trials_per_category * config.samples_per_trial
    measured = not site.radio.measurement.ideal
    feedback: list[list[np.ndarray]] = [[] for _ in range(config.num_episodes)]
    decoded: list[np.ndarray] = []
    los_share: dict[str, float] = {}
    started = time.perf_counter()
    trial_index = 0
    column = 0
    for category in config.categories:
        los = []
        for trial in range(config.trials_per_category):
            rows = slice(column, column + config.samples_per_trial)
            arrays = _trial(config, site, category, trial_seeds[trial_index], sensor_config, available[:, rows],
                            starts, measurement_rng=plan.measurement_rngs[trial_index])
            for episode in range(config.num_episodes):
                folder = root / f"Cat{category}" / f"trial_{trial}" / f"episode_{episode}"
                save_flash_episode(folder, rf=arrays["rf"][episode], gps=arrays["gps"][episode],
                                   img=arrays["img"][episode], lidar=arrays["lidar"][episode])
                extra = {"feedback": arrays["feedback"][episode]} if measured else {}
                np.savez_compressed(folder / EXTRA_FILE, available=available[episode, rows],
                                    channel=arrays["channel"][episode], position=arrays["position"][episode],
                                    trial=np.full(config.samples_per_trial, trial_index),
                                    los=arrays["los"][episode], **extra)
                feedback[episode].append(arrays["feedback"][episode] > 0 if measured else arrays["rf"][episode] > 0)
                decoded.append((arrays["rf"][episode] > 0).sum(axis=1))
            los.append(arrays["los"])
            trial_index += 1
            column += config.samples_per_trial
            if not quiet:
                done = trial_index
                total = len(config.categories) * config.trials_per_category
                print(f"\rFLASH-like data: trial {done}/{total}, {time.perf_counter() - started:.0f} s",
                      end="\n" if done == total else "", file=sys.stderr, flush=True)
        los_share[str(category)] = float(np.mean(np.concatenate([a.ravel() for a in los])))
    counts = available.sum(axis=1)  # (K, 3)
    summary = {
        "format": DATA_FORMAT,
        "config": _plain(config),
        "num_samples": int(per_vehicle * config.num_episodes),
        "num_beams": int(site.radio.codebook.shape[1]),
        "zeta": float(label_overlap([np.concatenate(f) for f in feedback])),
        "kappa": dict(zip(MODALITIES, (float(v) for v in modality_completeness(counts)))),
        "los_share": los_share,
        "mean_beams_heard": float(np.mean([np.concatenate(f).sum(axis=1).mean() for f in feedback])),
        "rf_units": "received power [mW], 0 below the sensitivity",
    }
    if measured:  # (the ideal radio's summary stays as it always was)
        summary["rf_units"] = ("received power [mW] as the vehicle measured it from each SSW frame (SNR field "
                               "quantised), 0 = frame not decoded; feedback bits (v2xsim.npz) = above the sensitivity")
        summary["mean_sectors_decoded"] = float(np.concatenate(decoded).mean())
    summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def _plain(config: FlashLikeConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(config)))


def load_extras(root: str | os.PathLike, *, categories=None) -> dict[int, dict[str, np.ndarray]]:
    """The generator's extra arrays (``available``, ``channel``, ``position``, ``trial``, ``los``) per
    episode, in the sample order of :func:`v2xsim.data.flash.load_flash`."""
    parts: dict[int, dict[str, list[np.ndarray]]] = {}
    for item in find_episodes(root, categories=categories):
        path = item.path / EXTRA_FILE
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {key: f[key] for key in EXTRA_KEYS}
                arrays.update({key: f[key] for key in OPTIONAL_EXTRA_KEYS if key in f.files})
        except (OSError, KeyError, ValueError, EOFError) as error:
            raise DataError(f"{path}: cannot read the generator's extra arrays ({error})") from None
        episode = parts.setdefault(item.episode, {})
        for key, array in arrays.items():
            episode.setdefault(key, []).append(array)
    return {e: {key: np.concatenate(chunks) for key, chunks in parts[e].items()} for e in sorted(parts)}


def load_flash_like(root: str | os.PathLike, *, categories=None, modalities=None) -> dict[int, dict[str, np.ndarray]]:
    """:func:`load_flash` plus the generator's extra arrays merged into each episode.

    A data set written with the 802.11ad measurement model carries its feedback bits
    (received power above the sensitivity) in ``v2xsim.npz``; they replace
    :func:`load_flash`'s ``rss > 0`` (which there means "sector decoded")."""
    data = load_flash(root, categories=categories, modalities=modalities)
    extras = load_extras(root, categories=categories)
    for episode, arrays in data.items():
        if episode not in extras or len(extras[episode]["trial"]) != len(arrays["rss"]):
            raise DataError(f"{root}: episode {episode} has no matching {EXTRA_FILE} files")
        if "feedback" in extras[episode] and extras[episode]["feedback"].shape != arrays["rss"].shape:
            raise DataError(f"{root}: episode {episode}: some {EXTRA_FILE} files hold feedback bits and some do not")
        arrays.update(extras[episode])
    return data


def trial_split(data: dict[int, dict[str, np.ndarray]], *, test_fraction: float = 0.2,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Trials for training and testing (whole trials, so neighbouring snapshots never
    straddle the split), seeded; every category keeps at least one training trial."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    first = data[min(data)]
    trials = np.unique(first["trial"])
    rng = np.random.default_rng([seed, 99])
    test = []
    for category in np.unique(first["category"]):
        mine = np.unique(first["trial"][first["category"] == category])
        count = min(len(mine) - 1, max(1, int(round(test_fraction * len(mine))))) if len(mine) > 1 else 0
        test.extend(rng.choice(mine, count, replace=False).tolist())
    test_trials = np.array(sorted(test), dtype=int)
    return np.setdiff1d(trials, test_trials), test_trials


def snapshot_rows(data: dict[int, dict[str, np.ndarray]], trials: np.ndarray) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Sample indices of ``trials`` per episode, and the (S, K) rows of the resulting
    :class:`~v2xsim.training.vehicle.SensorSet` that form each simultaneous snapshot
    (every episode holds the same snapshots in the same order)."""
    episodes = sorted(data)
    indices = {e: np.flatnonzero(np.isin(data[e]["trial"], trials)) for e in episodes}
    count = len(indices[episodes[0]])
    if any(len(i) != count for i in indices.values()):
        raise ValueError("episodes do not hold the same snapshots; sum rates need simultaneous samples")
    rows = np.arange(len(episodes))[None, :] * count + np.arange(count)[:, None]
    return indices, rows


def dataset_dir(config: FlashLikeConfig, cache: Path) -> Path:
    """Cache folder of the data set of ``config`` (named by a hash of the configuration)."""
    return Path(cache) / f"flashlike-{config_hash({'format': DATA_FORMAT, 'config': _plain(config)})}"


PRESETS: dict[str, dict[str, Any]] = {
    "balanced": {},
    # each vehicle sees its own short stretch of road, as FLASH's time-offset trials do
    "flash": {"segment_fraction": FLASH_SEGMENT_FRACTION, "fixed_lanes": True},
}


def config_from_overrides(overrides: list[str], *, preset: str = "balanced") -> FlashLikeConfig:
    """A :class:`FlashLikeConfig` from a preset plus ``key=value`` texts (TOML values);
    unknown keys raise ``ConfigError`` listing the valid ones."""
    from dataclasses import fields

    from v2xsim.config import apply_overrides, finite_options

    if preset not in PRESETS:
        raise ConfigError(f"preset: unknown {preset!r}; valid: {', '.join(PRESETS)}")
    values = apply_overrides(dict(PRESETS[preset]), overrides)
    try:  # every number finite, as in a scenario file
        finite_options(values)
    except ValueError as error:
        raise ConfigError(f"--set {error}") from None
    valid = [f.name for f in fields(FlashLikeConfig)]
    for key in values:
        if key not in valid:
            raise ConfigError(f"--set {key}: unknown data-set option; valid: {', '.join(valid)}")
    try:
        return FlashLikeConfig(**values)
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error)) from None


# ------------------------------------------------------------------ sector statistics
def sweep_channels(config: FlashLikeConfig) -> dict[str, np.ndarray]:
    """The channels of every sample of the data set ``config`` describes, without rendering
    sensors or writing files (the same positions and channels :func:`generate_flash_like`
    writes): ``channel`` (S, Nt) [sqrt(W)], ``los`` (S,) bool, ``category`` (S,),
    ``track`` (S,) (one label per vehicle and trial; its samples are consecutive, in time
    order), S = categories x trials x episodes x samples."""
    site = _site(config)
    plan = _plan(config, site)
    parts: dict[str, list[np.ndarray]] = {"channel": [], "los": [], "category": [], "track": []}
    n, k = config.samples_per_trial, config.num_episodes
    trial_index = 0
    column = 0
    for category in config.categories:
        for _ in range(config.trials_per_category):
            rows = slice(column, column + n)
            arrays = _trial(config, site, category, plan.trial_rngs[trial_index], None, plan.available[:, rows],
                            plan.starts, measurement_rng=plan.measurement_rngs[trial_index], sensors=False)
            parts["channel"].append(arrays["channel"].reshape(k * n, -1))
            parts["los"].append(arrays["los"].reshape(-1))
            parts["category"].append(np.full(k * n, category))
            parts["track"].append(np.repeat(trial_index * k + np.arange(k), n))
            trial_index += 1
            column += n
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


#: what the sector study compares: today's radio, the measured sweep on the ideal array,
#: and the measured sweep on the hardware array
SECTOR_VARIANTS = ("ideal radio", "ideal array, measured", "hardware array, measured")
SECTOR_GROUPS = ("LoS", "NLoS", "all")


@dataclass
class SectorStudy:
    """Per-sample sector statistics of the FLASH-like sweeps for several radios.

    Attributes:
        name: scenario name. seed: the scenario seed.
        radios: the radio section of each variant (label -> :class:`RadioConfig`).
        codebooks: the beams each variant's array radiates (label -> (Nt, W)).
        samples: per-sample statistics per variant (label -> name -> (S,) array,
            :func:`v2xsim.radio.sector_statistics`).
        los, category, track: (S,) per sample.
        summary: medians per variant and group (label -> "LoS" / "NLoS" / "all" -> name -> value).
    """

    name: str
    seed: int
    radios: dict[str, RadioConfig]
    codebooks: dict[str, np.ndarray]
    samples: dict[str, dict[str, np.ndarray]]
    los: np.ndarray
    category: np.ndarray
    track: np.ndarray
    summary: dict[str, dict[str, dict[str, float]]]

    def table(self) -> str:
        """The medians as plain-text tables, one per group of samples."""
        labels = list(self.summary)
        radio = self.radios[labels[-1]]
        m, a = radio.measurement, radio.array
        lines = [f"Sector statistics of the FLASH-like sweeps of {self.name!r} (seed {self.seed}), "
                 f"{len(self.los)} samples: medians over the samples",
                 f"  measured sweep: decoding floor {m.floor_dbm:g} dBm, power estimated over {m.estimation_chips} "
                 f"chips, {'SSW SNR field (0.25 dB, -8..55.75 dB)' if m.quantise else 'unquantised'}; "
                 f"feedback threshold {radio.sensitivity_dbm:g} dBm",
                 f"  hardware array: {a.phase_bits}-bit phase shifters" if a.phase_bits else
                 "  hardware array: continuous phases"]
        lines[-1] += (f", element errors {a.amplitude_error_db:g} dB / {a.phase_error_deg:g} deg (std), "
                      f"{a.failed_elements} failed, {'calibrated' if a.calibrated else 'not calibrated'}")
        rows = [("sectors heard", "heard", "{:.0f}"), ("best - 2nd [dB]", "best_minus_second_db", "{:.1f}"),
                ("best - 5th [dB]", "best_minus_fifth_db", "{:.1f}"),
                ("best - median heard [dB]", "best_minus_median_db", "{:.1f}"),
                ("within 3 dB of best", "within_3db", "{:.0f}"), ("within 6 dB of best", "within_6db", "{:.0f}"),
                ("best-sector changes [%]", "best_changes", "{:.0f}")]
        width = max(len(label) for label in labels) + 2
        for group in SECTOR_GROUPS:
            count = int(self.summary[labels[0]][group]["samples"])
            lines += ["", f"{group} samples ({count})".ljust(26) + "".join(label.rjust(width) for label in labels)]
            for title, key, fmt in rows:
                cells = []
                for label in labels:
                    value = self.summary[label][group].get(key, math.nan)
                    value = 100 * value if key == "best_changes" else value
                    cells.append(("-" if not math.isfinite(value) else fmt.format(value)).rjust(width))
                lines.append(f"  {title}".ljust(26) + "".join(cells))
        lines += ["", "heard: sectors reported > 0 (ideal radio: above the feedback threshold; measured: SSW frame "
                  "decoded). within N dB: the other sectors (the best not counted). best-sector changes: "
                  "consecutive positions of one vehicle (one sample period apart) whose strongest sector differs."]
        return "\n".join(lines) + "\n"

    def write_samples(self, path: str | os.PathLike) -> Path:
        """Per-sample statistics as CSV (one row per variant and sample)."""
        from v2xsim.radio import SECTOR_STATISTICS

        path = Path(path)
        names = list(SECTOR_STATISTICS) + ["best"]
        with path.open("w") as f:
            f.write("radio,sample,category,track,los," + ",".join(names) + "\n")
            for label, stats in self.samples.items():
                for i in range(len(self.los)):
                    cells = [f"{float(stats[name][i]):g}" for name in names]
                    f.write(f"\"{label}\",{i},{self.category[i]},{self.track[i]},{int(self.los[i])},"
                            + ",".join(cells) + "\n")
        return path


def sector_variants(radio: RadioConfig, seed: int) -> dict[str, RadioConfig]:
    """The radios :func:`sector_study` compares for a scenario's ``radio``: today's (ideal
    measurement and array), the measured sweep on the ideal array and on the hardware
    array. The measurement and array are the scenario's own where it sets them non-ideal,
    else the documented realistic defaults (``ideal = false``); the hardware array's seed
    is resolved from ``seed`` as a run does."""
    from v2xsim.config import ArrayConfig, MeasurementConfig

    measurement = radio.measurement if not radio.measurement.ideal else MeasurementConfig(ideal=False)
    array = radio.array if not radio.array.ideal else ArrayConfig(ideal=False)
    hardware = build.with_array_seed(radio.model_copy(update={"measurement": measurement, "array": array}), seed)
    return {
        SECTOR_VARIANTS[0]: radio.model_copy(update={"measurement": MeasurementConfig(ideal=True),
                                                     "array": ArrayConfig(ideal=True)}),
        SECTOR_VARIANTS[1]: radio.model_copy(update={"measurement": measurement, "array": ArrayConfig(ideal=True)}),
        SECTOR_VARIANTS[2]: hardware,
    }


def sector_study(*, name: str, road: RoadConfig, radio: RadioConfig, blockers: BlockersConfig, seed: int,
                 backend: str = "geometric", channel: dict[str, Any] | None = None,
                 trials_per_category: int = 25, samples_per_trial: int = 4) -> SectorStudy:
    """Sector statistics of the FLASH-like sweeps of a scenario's road, radio and blockers
    for the radios of :func:`sector_variants`: every variant sweeps the same channels
    (the FLASH-like trials of ``seed``, all four categories); the measurement noise of
    every variant comes from the same stream (common random numbers)."""
    from v2xsim.radio import sector_statistics, summarise_sector_statistics

    config = FlashLikeConfig(road=road.model_dump(), radio=radio.model_dump(), blockers=blockers.model_dump(),
                             trials_per_category=trials_per_category, samples_per_trial=samples_per_trial,
                             backend=backend, channel=dict(channel or {}), seed=seed)
    sweep = sweep_channels(config)
    h = sweep["channel"].astype(complex)
    groups = {"LoS": sweep["los"], "NLoS": ~sweep["los"], "all": np.ones(len(h), dtype=bool)}
    radios = sector_variants(radio, seed)
    codebooks, samples, summary = {}, {}, {}
    for label, section in radios.items():
        built = build.link_budget(section, road, seed=seed)
        power = rss_vector(h, built.codebook, built.p_max)
        if section.measurement.ideal:  # today's rf: exact power above the feedback threshold
            reported = np.where(power > built.feedback_threshold, power, 0.0)
        else:
            reported = built.measure(power, np.random.default_rng([seed, 424244]))
        codebooks[label] = built.codebook
        samples[label] = sector_statistics(reported)
        summary[label] = {group: summarise_sector_statistics(reported[mask], sweep["track"][mask])
                          for group, mask in groups.items()}
    return SectorStudy(name=name, seed=seed, radios=radios, codebooks=codebooks, samples=samples, los=sweep["los"],
                       category=sweep["category"], track=sweep["track"], summary=summary)
