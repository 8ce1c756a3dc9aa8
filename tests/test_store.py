"""The model store: checkpoints named by kind and key, atomic writes, resume state."""

import torch

from v2xsim.cache import cache_dir, config_hash
from v2xsim.store import ModelStore


def test_checkpoint_round_trip_and_partial_is_dropped_when_final(tmp_path):
    store = ModelStore(tmp_path / "models")
    checkpoint = store.checkpoint("rsu", "abc")
    assert checkpoint.final.name == "rsu-abc.pt" and checkpoint.partial.name == "rsu-abc.partial.pt"
    assert checkpoint.finished() is None and checkpoint.resume() is None
    checkpoint.save_partial({"step": 3, "w": torch.ones(2)})
    assert checkpoint.resume()["step"] == 3
    checkpoint.save_final({"model": {"w": torch.zeros(2)}})
    assert torch.equal(checkpoint.finished()["model"]["w"], torch.zeros(2))
    assert not checkpoint.partial.exists()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["rsu-abc.pt"]  # no temporary files


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("V2XSIM_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path and cache_dir("rt") == tmp_path / "rt"
    assert ModelStore().directory == tmp_path


def test_config_hash_is_order_free_and_sensitive():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": (1, 2), "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
    assert len(config_hash({"a": 1})) == 16 and len(config_hash({"a": 1}, length=None)) == 64
