"""FLASH-like data under the radio models: the ideal radio writes what it always wrote;
the measured sweep writes every decoded sector to rf.npz and the feedback bits apart;
the sector statistics of the FLASH-like sweeps for the ideal and the hardware array."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from v2xsim.config import BlockersConfig, RadioConfig, RoadConfig
from v2xsim.data.flash import load_flash
from v2xsim.data.flash_like import (SECTOR_VARIANTS, FlashLikeConfig, generate_flash_like, load_flash_like,
                                    sector_study, sweep_channels)
from v2xsim.radio import quantise_ssw_snr
from v2xsim import build

GOLDEN = json.loads((Path(__file__).resolve().parents[1] / "ideal_radio_golden.json").read_text())["flash_like"]
TINY = dict(num_episodes=3, trials_per_category=1, samples_per_trial=2, categories=(1, 2))


IDEAL = {"measurement": {"ideal": True}, "array": {"ideal": True}}


def test_ideal_radio_writes_the_same_data_as_before(tmp_path):
    summary = generate_flash_like(tmp_path, FlashLikeConfig(**TINY, radio=IDEAL), quiet=True)
    data = load_flash(tmp_path)
    digest = hashlib.sha256()
    for episode in sorted(data):
        digest.update(np.ascontiguousarray(data[episode]["rss"]).tobytes())
    assert digest.hexdigest() == GOLDEN["rf_sha256"]
    summary = json.loads(json.dumps(summary))
    # the same data; only the recorded configuration now spells the ideal radio out
    assert summary["config"]["radio"] == IDEAL
    assert {k: v for k, v in summary.items() if k != "config"} == \
        {k: v for k, v in GOLDEN["summary"].items() if k != "config"}
    assert {k: v for k, v in summary["config"].items() if k != "radio"} == \
        {k: v for k, v in GOLDEN["summary"]["config"].items() if k != "radio"}
    with np.load(next(tmp_path.rglob("v2xsim.npz"))) as f:
        assert "feedback" not in f.files


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    root = tmp_path_factory.mktemp("measured")
    config = FlashLikeConfig(**TINY)  # the default radio: measured sweep, hardware array
    return root, config, generate_flash_like(root, config, quiet=True)


def test_measured_rf_holds_every_decoded_sector_and_feedback_comes_from_the_threshold(measured):
    root, config, summary = measured
    radio = build.site(RoadConfig(), RadioConfig(**config.radio), seed=config.seed).radio
    flash = load_flash(root)  # FLASH's own reading: feedback = rf > 0 = sector decoded
    ours = load_flash_like(root)  # with the feedback bits the generator stored
    for episode in flash:
        rf_w = flash[episode]["rss"].astype(float) * 1e-3
        decoded = rf_w > 0
        bits = ours[episode]["feedback"].astype(bool)
        np.testing.assert_array_equal(bits, rf_w > radio.feedback_threshold * (1 + 1e-6))
        assert np.all(decoded[bits])  # a reported beam was decoded
        assert decoded.sum() > 2 * bits.sum()  # many more sectors decoded than above -58 dBm
        snr_db = 10 * np.log10(rf_w[decoded] / radio.noise_power)
        np.testing.assert_allclose(snr_db, quantise_ssw_snr(snr_db), atol=1e-3)  # float32 mW on the 0.25 dB grid
    assert summary["mean_sectors_decoded"] > 2 * summary["mean_beams_heard"]
    assert "SSW" in summary["rf_units"]


def test_gba_vehicle_learns_the_feedback_bits_not_the_decoded_sectors(measured):
    from v2xsim.training.vehicle import SensorSet

    root, _, _ = measured
    episodes = load_flash_like(root)
    samples = SensorSet.from_episodes(episodes)
    bits = np.concatenate([episodes[e]["feedback"] for e in sorted(episodes)]).astype(np.float32)
    np.testing.assert_array_equal(samples.feedback, bits)
    assert samples.feedback.sum() < (samples.rss > 0).sum()


def test_measured_data_are_deterministic(measured, tmp_path):
    root, config, _ = measured
    generate_flash_like(tmp_path, config, quiet=True)
    a, b = load_flash_like(root), load_flash_like(tmp_path)
    for episode in a:
        np.testing.assert_array_equal(a[episode]["rss"], b[episode]["rss"])
        np.testing.assert_array_equal(a[episode]["feedback"], b[episode]["feedback"])


def test_sweep_channels_are_the_data_sets_channels(measured):
    root, config, _ = measured
    sweep = sweep_channels(config)
    extras = load_flash_like(root)
    # sample order of sweep_channels: trial, episode, time; of the loader: episode, trial, time
    per_episode = np.stack([extras[e]["channel"] for e in sorted(extras)])  # (K, trials x samples, Nt)
    k, n = config.num_episodes, config.samples_per_trial
    trials = len(config.categories) * config.trials_per_category
    reordered = per_episode.reshape(k, trials, n, -1).transpose(1, 0, 2, 3).reshape(-1, per_episode.shape[-1])
    np.testing.assert_array_equal(sweep["channel"], reordered)
    assert len(np.unique(sweep["track"])) == trials * k


def test_sector_study_compares_the_ideal_and_the_hardware_array():
    study = sector_study(name="tiny", road=RoadConfig(), radio=RadioConfig(),
                         blockers=BlockersConfig(pedestrians=2, parked_cars=1), seed=0, trials_per_category=2)
    assert list(study.summary) == list(SECTOR_VARIANTS)
    today, ideal, hardware = (study.summary[label]["LoS"] for label in SECTOR_VARIANTS)
    assert not study.radios[SECTOR_VARIANTS[2]].array.ideal and study.radios[SECTOR_VARIANTS[1]].array.ideal
    assert not np.allclose(study.codebooks[SECTOR_VARIANTS[1]], study.codebooks[SECTOR_VARIANTS[2]])
    # the -78 dBm decoding floor hears far more sectors than the -58 dBm feedback threshold
    assert ideal["heard"] > today["heard"] and hardware["heard"] > today["heard"]
    # 2-bit phases and element errors raise the side lobes: the sweep is flatter
    assert hardware["best_minus_median_db"] < ideal["best_minus_median_db"]
    table = study.table()
    for label in SECTOR_VARIANTS:
        assert label in table
    assert "within 3 dB of best" in table and "best-sector changes" in table
