"""The FL imbalance study (Table II / Fig. 6 shapes): the CI-sized file end to end, the
table maths, and bad study files."""

import csv
import json
from pathlib import Path

import pytest

from v2xsim.errors import ConfigError
from v2xsim.studies import read_study_file, run_study_file
from v2xsim.studies.fl_imbalance import fig6_summary, load_fl_study, table2, table2_markdown

TINY = Path(__file__).resolve().parents[2] / "scenarios" / "fl_imbalance_tiny.toml"


@pytest.mark.slow
def test_the_ci_sized_study_writes_table2_and_fig6_for_every_strategy_and_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("V2XSIM_CACHE", str(tmp_path / "cache"))
    summary = run_study_file(TINY, [], tmp_path / "out", quiet=True)
    out = tmp_path / "out"
    rows = list(csv.DictReader((out / "table2.csv").open()))
    assert {(r["strategy"], r["setting"]) for r in rows} == {
        (s, setting) for s in ("UB", "DA", "FedAvg", "FLASH")
        for setting in ("label", "sensor_type", "sensor_performance")}
    for row in rows:
        assert 0 <= float(row["exact_match"]) <= 1 and float(row["sum_rate"]) >= 0
    fig6 = list(csv.DictReader((out / "fig6.csv").open()))
    assert len(fig6) == 4 * 3 * 3  # strategies x (RGB, LiDAR, both) x completeness values
    for name in ("table2.md", "table2.png", "fig6.png", "rounds_label.png", "summary.json", "runs.csv"):
        assert (out / name).exists(), name
    ran = json.loads((out / "summary.json").read_text())["ran"]
    assert ran["profile"] == "cpu" and ran["training"]["rounds"] == 3
    assert summary["runs"] and all((Path(r["dir"]) / "model.pt").exists() for r in summary["runs"])


def test_table2_gives_means_and_confidence_intervals_across_seeds():
    study = load_fl_study(read_study_file(TINY, ["seeds=[0, 1]", 'settings=["label"]', 'fig6.setting="label"']), TINY)
    runs = [{"strategy": s.label, "setting": "label", "seed": seed, "sum_rate": 2.0 + seed, "exact_match": 0.5,
             "bit_accuracy": 0.9, "top1_beam_hit": None} for s in study.strategies for seed in (0, 1)]
    rows = table2(runs, study)
    first = rows[0]
    assert first["sum_rate"] == pytest.approx(2.5) and first["seeds"] == 2
    # t(0.975, 1) = 12.706; standard error 0.5
    assert first["sum_rate_ci95_high"] - first["sum_rate"] == pytest.approx(12.706 * 0.5, rel=1e-3)
    assert "top1_beam_hit" not in first
    assert "2.50 ± 6.35" in table2_markdown(rows, study)
    summary = fig6_summary([{"strategy": "DA", "series": "RGB", "completeness": 0.5, "sum_rate": v} for v in (1, 3)])
    assert summary[0]["sum_rate"] == 2 and summary[0]["seeds"] == 2


@pytest.mark.parametrize("overrides,message", [
    (['fig6.setting="balanced"'], "fig6.setting: 'balanced' is not one of settings"),
    (['fig6.mode="trucks"'], "fig6.mode"),
    (["fig6.completeness=[1.0, 1.5]"], r"fig6.completeness: every value must be in \[0, 1\]"),
    (['strategies=[{label="A", name="fedavg"}, {label="A", name="flash"}]'], "labels must differ"),
    (['strategies=[{label="A", name="fedsgd"}]'], r"strategy.name: unknown FL strategy 'fedsgd'"),
    (['base.seed=3'], r"base.seed: set by the study"),
    (['settings=["noisy"]'], r"settings: unknown setting 'noisy'; valid: balanced"),
])
def test_bad_study_files_are_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_fl_study(read_study_file(TINY, overrides), TINY)
