"""GBA-RSU stage 3 on GBA-Vehicle's predictions (seed 002, Algorithm 1 lines 24-32):
configuration names, resuming, that the retrained network learns the vehicles' mistakes,
and the graphs built from the FLASH-like snapshots."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from v2xsim.cache import config_hash
from v2xsim.config import RadioConfig
from v2xsim.store import ModelStore
from v2xsim.training.rsu import (CHECKPOINT_FORMAT, DataConfig, RSUTrainingConfig, make_drops, rsu_sum_rates,
                                 train_rsu)
from v2xsim.training.stage3 import retrain_rsu, stage1_of, stage3_config

RADIO = RadioConfig(num_antennas=8, num_beams=12).model_dump()
STAGE1 = RSUTrainingConfig(hidden=16, steps=150, batch_size=64,
                           data=DataConfig(radio=RADIO, num_vehicles=(3,), samples_per_k=200))


def test_stage1_names_are_those_from_before_stage3_and_schedules_existed():
    fields = {k: v for k, v in STAGE1.__dict__.items() if k not in ("stage3_feedback", "stage3_source", "schedule")}
    fields["data"] = STAGE1.data.__dict__
    assert STAGE1.key() == config_hash({"format": CHECKPOINT_FORMAT, **fields})
    third = stage3_config(STAGE1, source="flashlike-x/vehicle-y", steps=40)
    assert third.key() != STAGE1.key()
    assert stage1_of(third) == STAGE1
    assert stage3_config(STAGE1, source="other", steps=40).key() != third.key()
    assert replace(STAGE1, schedule="constant").key() != STAGE1.key()
    with pytest.raises(ValueError, match="stage-1 configuration"):
        stage3_config(third, source="z")
    with pytest.raises(ValueError, match="stage3_feedback must be one of error_model, vehicle"):
        replace(STAGE1, stage3_feedback="oracle")
    with pytest.raises(ValueError, match="retrain_rsu"):
        train_rsu(third, store=ModelStore(quiet=True))


@pytest.fixture(scope="module")
def biased(tmp_path_factory):
    """Stage-1 GBA-RSU, and graphs whose 'predicted' feedback always reports the strongest
    beam plus two wrong ones (a systematic vehicle mistake)."""
    store = ModelStore(tmp_path_factory.mktemp("stage3"), quiet=True)
    base = train_rsu(STAGE1, store=store)
    drops = make_drops(STAGE1.data, seed=5)
    power = np.abs(drops.beam_space) ** 2
    predicted = np.zeros_like(drops.feedback)
    best = power.argmax(axis=-1)
    rows = np.indices(best.shape)
    for shift in (0, 3, 7):
        predicted[rows[0], rows[1], (best + shift) % power.shape[-1]] = 1.0
    return store, base, replace(drops, predicted=predicted)


@pytest.mark.slow
def test_stage3_learns_the_vehicles_mistakes(biased):
    store, base, drops = biased
    config = stage3_config(STAGE1, source="test-bias", steps=300)
    retrained = retrain_rsu(config, base, drops, store=store)
    before = rsu_sum_rates(base, drops, feedback=drops.predicted).mean()
    after = rsu_sum_rates(retrained, drops, feedback=drops.predicted).mean()
    assert after > before  # the biased bits now lead to better beams
    again = retrain_rsu(config, base, drops_factory=lambda: pytest.fail("a finished network is loaded"), store=store)
    for key, value in retrained.state_dict().items():
        assert torch.equal(value, again.state_dict()[key])


@pytest.mark.slow
def test_interrupted_stage3_resumes_bit_identically(biased, tmp_path):
    _, base, drops = biased
    config = stage3_config(STAGE1, source="test-resume", steps=30)
    whole = retrain_rsu(config, base, drops, store=ModelStore(tmp_path / "a", quiet=True))
    store = ModelStore(tmp_path / "b", quiet=True)
    retrain_rsu(config, base, drops, store=store, stop_after=12)
    resumed = retrain_rsu(config, base, drops, store=store)
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key])


def test_stage3_refuses_graphs_without_predictions(biased):
    store, base, drops = biased
    with pytest.raises(ValueError, match="predicted feedback"):
        retrain_rsu(stage3_config(STAGE1, source="none", steps=5), base, replace(drops, predicted=None), store=store)
