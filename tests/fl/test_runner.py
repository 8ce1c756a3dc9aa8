"""The FL runner: rounds, checkpoints, resume after a kill, determinism, outputs."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from v2xsim.errors import ConfigError
from v2xsim.fl.experiment import experiment_from_dict
from v2xsim.fl.runner import prepare, run_experiment
from v2xsim.store import ModelStore, load_saved

TINY = {
    "name": "tiny", "seed": 0, "setting": "sensor_type",
    "data": {"num_episodes": 4, "trials_per_category": 3, "samples_per_trial": 2},
    "model": {"features": {"gps": 16, "image": 16, "lidar": 16}, "hidden": 16, "image_width": 4},
    "rsu": {"hidden": 16, "steps": 50, "batch_size": 64, "data": {"num_vehicles": [1, 2, 3, 4], "samples_per_k": 100}},
    "strategy": {"name": "fedavg"},
    "training": {"rounds": 3, "batch_size": 16},
}


def experiment(**changes):
    data = {**TINY, **changes}
    return experiment_from_dict(data)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("fl-cache")


@pytest.fixture(scope="module")
def store(cache):
    return ModelStore(cache, quiet=True)


@pytest.fixture(scope="module")
def prepared(store):
    return prepare(experiment(), store=store, quiet=True)


def final_weights(out: Path) -> dict:
    return load_saved(out / "model.pt")["model"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("strategy", ["fedavg", "flash", "modality_aware", "centralized", "da"])
def test_every_strategy_runs_rounds_and_writes_its_table(tmp_path, prepared, strategy):
    changes = {"strategy": {"name": strategy}}
    if strategy == "da":  # two DA- rounds, then one DA+ round with a small generation budget
        changes.update(strategy={"name": "da", "options": {"plus_rounds": 1}},
                       da={"synthetic_cap": 2, "synthesis_steps": 5})
    summary = run_experiment(experiment(**changes), tmp_path, prepared=prepared, quiet=True)
    rows = list(csv.DictReader((tmp_path / "rounds.csv").open()))
    assert [int(r["round"]) for r in rows] == [1, 2, 3]
    assert summary["complete"] and summary["strategy"] == strategy
    for row in rows:
        for column in ("bit_accuracy", "exact_match", "sum_rate", "zeta", "bytes_up", "bytes_down"):
            assert row[column] != "" and float(row[column]) >= 0
    full = summary["cost"]["full_model_bytes"]
    up = int(rows[0]["bytes_up"])
    vehicles = len(summary["data"]["vehicles"])
    if strategy == "fedavg":
        assert up == vehicles * full
    if strategy == "modality_aware":  # sensor-type imbalance: some vehicles lack a branch
        lacking = [v for v in summary["data"]["vehicles"].values() if len(v["modalities"]) < 3]
        assert lacking and up < vehicles * full
        for vehicle in summary["data"]["vehicles"].values():  # per-vehicle kappa (Eq. 15) and zeta
            assert all((vehicle["kappa"][m] == 0.0) == (m not in vehicle["modalities"]) for m in vehicle["kappa"])
            assert 0.0 <= vehicle["zeta"] <= 1.0
    if strategy == "flash":  # one group down per vehicle, the whole model up
        assert int(rows[0]["bytes_down"]) < vehicles * full and up == vehicles * full
    if strategy == "da":
        assert [r["stage"] for r in rows] == ["minus", "minus", "plus"]
        assert all(float(rows[0][f"drop_{m}"]) >= 0 for m in ("gps", "image", "lidar"))
        assert int(rows[0]["bytes_da"]) > 0 and int(rows[2]["bytes_da"]) == 0
        assert float(rows[2]["synthetic_samples"]) > 0 and rows[0]["synthetic_samples"] == ""
    assert (tmp_path / "model.pt").exists() and (tmp_path / "summary.json").exists()


def test_same_experiment_and_seed_give_identical_rounds_and_weights(tmp_path, store, prepared):
    run_experiment(experiment(strategy={"name": "flash"}), tmp_path / "a", store=store, quiet=True)
    run_experiment(experiment(strategy={"name": "flash"}), tmp_path / "b", prepared=prepared, quiet=True)
    assert (tmp_path / "a" / "rounds.csv").read_text() == (tmp_path / "b" / "rounds.csv").read_text()
    assert_same_weights(final_weights(tmp_path / "a"), final_weights(tmp_path / "b"))


@pytest.mark.parametrize("strategy", [
    {"name": "flash"},
    # server-side optimiser state (FedAdam's moments) travels in the checkpoint too
    {"name": "flower", "options": {"strategy": "FedAdam", "options": {"eta": 0.01}}},
])
def test_a_stopped_run_resumes_to_the_uninterrupted_weights(tmp_path, prepared, strategy):
    if strategy["name"] == "flower":
        pytest.importorskip("flwr")
    config = experiment(strategy=strategy)
    run_experiment(config, tmp_path / "whole", prepared=prepared, quiet=True)
    run_experiment(config, tmp_path / "parts", prepared=prepared, quiet=True, stop_after_rounds=1)
    assert load_saved(tmp_path / "parts" / "checkpoint.pt")["round"] == 1
    assert not (tmp_path / "parts" / "model.pt").exists()
    run_experiment(config, tmp_path / "parts", prepared=prepared, quiet=True)
    assert (tmp_path / "whole" / "rounds.csv").read_text() == (tmp_path / "parts" / "rounds.csv").read_text()
    assert_same_weights(final_weights(tmp_path / "whole"), final_weights(tmp_path / "parts"))


def test_a_checkpoint_of_another_experiment_is_refused(tmp_path, store, prepared):
    run_experiment(experiment(), tmp_path, prepared=prepared, quiet=True, stop_after_rounds=1)
    with pytest.raises(ConfigError, match="another experiment"):
        run_experiment(experiment(seed=1), tmp_path, store=store, quiet=True)


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_resumes_and_matches(tmp_path, cache, store):
    """A real SIGKILL while round 2+ trains; the rerun resumes from the last complete round."""
    toml = tmp_path / "exp.toml"
    toml.write_text(TOML_TINY)
    env = {**os.environ, "V2XSIM_CACHE": str(cache), "PYTHONHASHSEED": "0"}
    command = [sys.executable, "-m", "v2xsim", "fl", str(toml), "--out", str(tmp_path / "killed"), "--quiet",
               "--set", "training.rounds=6"]
    reference = [sys.executable, "-m", "v2xsim", "fl", str(toml), "--out", str(tmp_path / "whole"), "--quiet",
                 "--set", "training.rounds=6"]
    subprocess.run(reference, env=env, check=True, timeout=600)
    process = subprocess.Popen(command, env=env)
    checkpoint = tmp_path / "killed" / "checkpoint.pt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = load_saved(checkpoint)["round"] if checkpoint.exists() else 0
    assert done < 6, "the run finished before it could be killed; make it longer"
    subprocess.run(command, env=env, check=True, timeout=600)
    assert (tmp_path / "whole" / "rounds.csv").read_text() == (tmp_path / "killed" / "rounds.csv").read_text()
    assert_same_weights(final_weights(tmp_path / "whole"), final_weights(tmp_path / "killed"))


TOML_TINY = """
name = "tiny"
seed = 0
setting = "sensor_type"
[data]
num_episodes = 4
trials_per_category = 3
samples_per_trial = 2
[model]
features = {gps = 16, image = 16, lidar = 16}
hidden = 16
image_width = 4
[rsu]
hidden = 16
steps = 50
batch_size = 64
data = {num_vehicles = [1, 2, 3, 4], samples_per_k = 100}
[strategy]
name = "flash"
[training]
rounds = 3
batch_size = 16
"""


@pytest.mark.parametrize("changes,message", [
    ({"setting": "extreme"}, "setting: unknown 'extreme'; valid: balanced, label"),
    ({"profile": "gpu"}, "profile: unknown 'gpu'"),
    ({"data": {"num_vehicles": 3}}, r"data.num_vehicles: unknown option; valid: .*num_episodes"),
    ({"model": {"width": 3}}, r"model.width: unknown option"),
    ({"da": {"gamma": 1}}, r"da.gamma: unknown option; valid: alpha, beta"),
    ({"strategy": {"name": "fedsgd"}}, r"strategy.name: unknown FL strategy 'fedsgd'; valid: "),
    ({"training": {"rounds": 0}}, r"training.rounds"),
    ({"training": {"lr": float("nan")}}, r"training.lr"),
    ({"radio": {"tx_power_dbm": "loud"}}, r"radio.tx_power_dbm"),
])
def test_bad_experiments_are_refused_naming_the_key(changes, message):
    with pytest.raises(ConfigError, match=message):
        experiment(**changes)


def test_cli_fl_bad_file_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('setting = "extreme"\n')
    result = subprocess.run([sys.executable, "-m", "v2xsim", "fl", str(bad), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "setting: unknown 'extreme'" in result.stderr


def test_run_refuses_an_fl_experiment_and_names_the_command(tmp_path):
    shipped = Path(__file__).resolve().parents[2] / "scenarios" / "fl_fedavg.toml"
    result = subprocess.run([sys.executable, "-m", "v2xsim", "run", str(shipped), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "an FL experiment file" in result.stderr and "v2xsim fl" in result.stderr
