import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STUDY = ROOT / "scenarios" / "rsu_ablation.toml"
TINY = ["--set", "num_vehicles=[1, 3]", "--set", "samples_per_k=20",
        "--set", "training={hidden=8, steps=20, batch_size=16}",
        "--set", 'variants=[{label="GNN"}, {label="GNN, 5 graphs", train_samples_per_k=5}, '
                 '{label="MLP", architecture="mlp"}]',
        "--set", 'baselines=["zf_sweep"]', "--set", 'radio={num_antennas=4, num_beams=6}']


def v2xsim(*args, cache):
    env = {**os.environ, "V2XSIM_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "v2xsim", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env, stdin=subprocess.DEVNULL, timeout=600)


@pytest.mark.slow
def test_tiny_study_writes_tables_and_plot(tmp_path):
    result = v2xsim("study", STUDY, "--out", tmp_path / "out", *TINY, "--quiet", cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "out" / "table.md").read_text()
    for label in ("zf_sweep", "GNN", "GNN (reordered)", "GNN, 5 graphs", "MLP", "MLP (reordered)"):
        assert f"| {label} |" in table
    assert (tmp_path / "out" / "sum_rate_vs_k.png").stat().st_size > 10_000
    assert "nan" not in (tmp_path / "out" / "table.csv").read_text().lower()


@pytest.mark.slow
def test_tiny_paper_profile_study_has_a_panel_per_table_and_explains_its_findings(tmp_path):
    """profile = "paper" trains with the paper's settings (constant rate, the sum-rate loss
    alone, hidden 384 unless overridden); table.md names the profile and reads Table III's
    middle rows and the Transformer's road order."""
    import json

    import torch

    variants = ('variants=[{label="GBA-RSU"}, {label="w/ renormalisation only", options={non_negative=false}, '
                'table="III"}, {label="w/ non-negativity only", options={renormalise=false}, table="III"}, '
                '{label="Transformer", architecture="transformer", table="5"}]')
    tiny = ["--set", "num_vehicles=[1, 3]", "--set", "samples_per_k=20", "--set", "profile=\"paper\"",
            "--set", "training={hidden=8, steps=20, batch_size=16}", "--set", variants,
            "--set", 'baselines=["wmmse_ce"]', "--set", 'radio={num_antennas=4, num_beams=6}']
    result = v2xsim("study", STUDY, "--out", tmp_path / "out", *tiny, "--quiet", cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["profile"] == "paper"
    notes = " ".join(summary["findings"])
    assert "Table III at K = 3" in notes and "Fig. 5 at K = 3" in notes and "road order leaks position" in notes
    assert "RSU training profile: paper" in (tmp_path / "out" / "table.md").read_text()
    configs = [torch.load(path, weights_only=False)["config"] for path in (tmp_path / "cache").glob("rsu-*.pt")]
    assert configs and all(c["schedule"] == "constant" and c["beam_ce"] == 0.0 and c["lr"] == 1e-3
                           and c["hidden"] == 8 for c in configs)
    over = [r["over_budget"] for r in summary["rows"] if r["variant"] == "GBA-RSU"]
    assert over and all(share == 0.0 for share in over)  # renormalised allocations never exceed the budget


def test_bad_training_graph_count_exits_2_naming_it(tmp_path):
    result = v2xsim("study", STUDY, "--out", tmp_path, "--set", 'variants=[{label="x", train_samples_per_k=0}]',
                    cache=tmp_path / "cache")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "train_samples_per_k" in result.stderr


def test_bad_study_key_exits_2_with_one_line(tmp_path):
    result = v2xsim("study", STUDY, "--out", tmp_path, "--set", "variants=[{label=\"x\", arch=\"gnn\"}]",
                    cache=tmp_path / "cache")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "variants.0.arch: unknown key" in result.stderr


VEHICLE_STUDY = ROOT / "scenarios" / "vehicle_deployment.toml"
TINY_VEHICLE = ["--set", "data={num_episodes=3, trials_per_category=3, samples_per_trial=2, categories=[1, 3]}",
                "--set", "training={features={gps=16, image=16, lidar=16}, hidden=16, image_width=4, epochs=2}",
                "--set", "rsu={hidden=8, steps=20, batch_size=16}"]


@pytest.mark.slow
def test_tiny_vehicle_study_reports_every_sensor_set_and_deployment(tmp_path):
    result = v2xsim("study", VEHICLE_STUDY, "--out", tmp_path / "out", *TINY_VEHICLE, "--quiet",
                    cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "out" / "table.md").read_text()
    for sensors in ("R-L-G", "L-G", "R-G", "G"):
        for deployment in ("pruning", "sensor", "model"):
            assert f"| all sensors | {sensors} | {deployment} |" in table
    assert "| GPS only | G | pruning |" in table and "| true feedback |" in table
    assert "nan" not in (tmp_path / "out" / "table.csv").read_text().lower()
    assert (tmp_path / "out" / "deployment.png").stat().st_size > 10_000


def test_dataset_command_writes_the_flash_layout_and_rejects_bad_options(tmp_path):
    result = v2xsim("dataset", "flash-like", "--out", tmp_path / "data", "--set", "num_episodes=2",
                    "--set", "trials_per_category=1", "--set", "samples_per_trial=2", "--quiet", cache=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "Cat4" / "trial_0" / "episode_1" / "lidar.npz").exists()
    bad = v2xsim("dataset", "flash-like", "--out", tmp_path / "other", "--set", "trialz=1", cache=tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "trialz" in bad.stderr
