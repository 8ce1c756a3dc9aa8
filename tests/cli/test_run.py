import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # whole-CLI runs with tiny trainings

ROOT = Path(__file__).resolve().parents[2]
HEADLINE = ROOT / "scenarios" / "speed_sweep.toml"
# the headline's schemes, gba with tiny networks and data (trained into a private cache)
TINY_GBA = ('{name="gba", options={training={hidden=8, steps=20, batch_size=16, data={num_vehicles=[1, 3], '
            'samples_per_k=20}}, vehicle_training={features={gps=16, image=16, lidar=16}, hidden=16, '
            'image_width=4, epochs=1}, data={num_episodes=2, trials_per_category=1, samples_per_trial=2}}}')
FAST = ["--set", "simulation.duration_s=0.3", "--set", "sweep.speed_kmh=[30, 250]",
        "--set", "traffic.num_vehicles=3", "--quiet",
        "--set", f'schemes=[{{name="oracle"}}, {{name="zf_sweep"}}, {{name="wmmse_ce"}}, {TINY_GBA}]']
CACHE = {}


def v2xsim(*args, cwd=ROOT):
    env = {**os.environ, **CACHE}
    return subprocess.run([sys.executable, "-m", "v2xsim", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, stdin=subprocess.DEVNULL, timeout=600, env=env)


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    CACHE["V2XSIM_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    CACHE.clear()


@pytest.fixture(scope="module")
def headline_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = v2xsim("run", HEADLINE, "--out", out, *FAST)
    assert result.returncode == 0, result.stderr
    assert "training" not in result.stderr  # --quiet silences the first run's training progress
    return out


def test_run_writes_the_contract_outputs(headline_run):
    with (headline_run / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    required = {"scheme", "speed_kmh", "num_vehicles", "seed", "t_coherence_s", "t_delay_s", "sum_rate",
                "effective_sum_rate"}
    assert required <= set(rows[0])
    assert {(r["scheme"], float(r["speed_kmh"])) for r in rows} == {
        (s, v) for s in ("oracle", "zf_sweep", "wmmse_ce", "gba") for v in (30.0, 250.0)}
    assert all("nan" not in value.lower() for row in rows for value in row.values())
    summary = json.loads((headline_run / "summary.json").read_text())
    assert set(summary["schemes"]) == {"oracle", "zf_sweep", "wmmse_ce", "gba"}
    models = summary["provenance"]["models"]  # the trained networks gba used, by name and content hash
    # GBA-RSU after stage 1 and after stage 3 (retrained on GBA-Vehicle's predictions)
    assert sorted(name.split("-")[0] for name in models) == ["rsu", "rsu", "vehicle"]
    assert all(len(digest) == 16 for digest in models.values())
    assert (headline_run / "summary.csv").exists() and (headline_run / "paired.csv").exists()
    assert (headline_run / "effective_sum_rate_vs_speed.png").stat().st_size > 10_000
    assert (headline_run / "rate_and_overhead_vs_speed.png").exists()
    assert (headline_run / "events.csv").exists()
    assert not (headline_run / ".checkpoints").exists()


def test_same_scenario_and_seed_give_byte_identical_results(headline_run, tmp_path):
    result = v2xsim("run", HEADLINE, "--out", tmp_path, *FAST, "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "results.csv").read_bytes() == (headline_run / "results.csv").read_bytes()
    assert (tmp_path / "summary.json").read_bytes() == (headline_run / "summary.json").read_bytes()


def test_another_seed_changes_the_results(headline_run, tmp_path):
    result = v2xsim("run", HEADLINE, "--out", tmp_path, *FAST, "--seed", "7")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "results.csv").read_bytes() != (headline_run / "results.csv").read_bytes()


@pytest.mark.parametrize("overrides,key", [
    (["--set", "traffic.colour=1"], "traffic.colour: unknown key"),
    (["--set", "traffic.speed_kmh=-3"], "traffic.speed_kmh"),
    (["--set", "traffic.num_vehicles=-1"], "traffic.num_vehicles"),
    (["--set", "road.lanes=[]"], "road.lanes"),
    (["--set", "road.coverage_angle_deg=180"], "road.coverage_angle_deg"),
    (["--set", "radio.num_antennas=\"many\""], "radio.num_antennas"),
    (["--set", "sweep.speed_kmh=[10, -20]"], "sweep.speed_kmh"),
    (["--set", "schemes=[{name=\"zf\"}]"], "unknown scheme 'zf'; valid: gba, oracle, wmmse_cb, wmmse_ce, zf_sweep"),
])
def test_invalid_scenarios_exit_2_with_one_line(tmp_path, overrides, key):
    result = v2xsim("run", HEADLINE, "--out", tmp_path, *overrides, "--quiet")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert key in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_scenario_file_exits_2(tmp_path):
    result = v2xsim("run", tmp_path / "missing.toml", "--out", tmp_path)
    assert result.returncode == 2 and "missing.toml" in result.stderr and "Traceback" not in result.stderr


def test_usage_errors_exit_2():
    result = v2xsim("run")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_train_command_fills_the_model_store_once(tmp_path):
    """``v2xsim train`` trains every model the scenario needs into the store; a second call
    finds them there and trains nothing."""
    scenario = tmp_path / "gba.toml"
    scenario.write_text(f"schemes = [{TINY_GBA}]\n")
    cache = tmp_path / "store"
    env_cache = {**CACHE, "V2XSIM_CACHE": str(cache)}
    first = subprocess.run([sys.executable, "-m", "v2xsim", "train", str(scenario)], capture_output=True, text=True,
                           cwd=ROOT, stdin=subprocess.DEVNULL, timeout=600, env={**os.environ, **env_cache})
    assert first.returncode == 0, first.stderr
    assert "training" in first.stderr and "models ready" in first.stderr
    # GBA-RSU stage 1 and stage 3, GBA-Vehicle
    assert len(list(cache.glob("rsu-*.pt"))) == 2 and len(list(cache.glob("vehicle-*.pt"))) == 1
    assert not list(cache.glob("*.partial.pt"))
    again = subprocess.run([sys.executable, "-m", "v2xsim", "train", str(scenario)], capture_output=True,
                           text=True, cwd=ROOT, stdin=subprocess.DEVNULL, timeout=600,
                           env={**os.environ, **env_cache})
    assert again.returncode == 0 and "training" not in again.stderr


def test_seeds_option_runs_consecutive_seeds_and_reports_intervals(tmp_path):
    result = v2xsim("run", HEADLINE, "--out", tmp_path, *FAST, "--seed", "5", "--seeds", "2",
                    "--set", 'schemes=[{name="zf_sweep"}, {name="wmmse_ce"}]')
    assert result.returncode == 0, result.stderr
    with (tmp_path / "results.csv").open() as handle:
        assert {row["seed"] for row in csv.DictReader(handle)} == {"5", "6"}
    with (tmp_path / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(row["seeds"] == "2" and row["ci95_low"] != "" for row in rows)
    bad = v2xsim("run", HEADLINE, "--out", tmp_path, "--seeds", "0", "--quiet")
    assert bad.returncode == 2 and "--seeds" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
