"""The GBA-Vehicle study's fusion comparison: which fusion rules it trains, how the study
file names them, and the fusion table."""

import tomllib
from pathlib import Path

import pytest

from v2xsim.errors import ConfigError
from v2xsim.studies.vehicle_deployment import fusion_table, load_vehicle_study

ROOT = Path(__file__).resolve().parents[2]
PATH = Path("study.toml")


def study(**data):
    return load_vehicle_study({"study": "vehicle_deployment", **data}, PATH)


def test_the_shipped_study_compares_all_three_fusions():
    path = ROOT / "scenarios" / "vehicle_deployment.toml"
    loaded = load_vehicle_study(tomllib.loads(path.read_text()), path)
    assert loaded.extra_fusions("sum") == ["mean", "bn_sum"]


def test_fusions_list_default_and_the_old_boolean():
    assert study().extra_fusions("sum") == ["bn_sum", "mean"]  # every rule but the trained one
    assert study(fusions=["sum", "bn_sum", "bn_sum"]).extra_fusions("sum") == ["bn_sum"]
    assert study(fusions=[]).extra_fusions("mean") == []
    # fusion_baseline (before `fusions`) keeps its meaning: the other of sum / mean, or nothing
    assert study(fusion_baseline=True).extra_fusions("sum") == ["mean"]
    assert study(fusion_baseline=True).extra_fusions("mean") == ["sum"]
    assert study(fusion_baseline=True).extra_fusions("bn_sum") == ["mean"]
    assert study(fusion_baseline=False).extra_fusions("sum") == []


def test_bad_fusion_options_name_the_key_and_the_valid_rules():
    with pytest.raises(ConfigError, match=r"fusions: unknown 'bn'; valid: bn_sum, mean, sum"):
        study(fusions=["sum", "bn"])
    with pytest.raises(ConfigError, match="fusion_baseline"):
        study(fusions=["sum"], fusion_baseline=True)


def row(fusion, trained, sensors="R-L-G", deployment="pruning", value=0.5):
    keys = ("exact_match", "exact_match_los", "exact_match_nlos", "top1_beam_hit", "top1_beam_hit_los",
            "top1_beam_hit_nlos", "bit_accuracy", "bit_accuracy_los", "bit_accuracy_nlos", "sum_rate",
            "sum_rate_los_snapshots", "sum_rate_nlos_snapshots")
    return {"trained_on": trained, "sensors": sensors, "deployment": deployment, "fusion": fusion,
            **{k: value for k in keys}}


def test_fusion_table_has_one_block_per_rule_and_only_pruned_all_sensor_models():
    rows = [row("sum", "all sensors"), row("sum", "all sensors", sensors="G"),
            row("sum", "all sensors", deployment="sensor", value=0.9),
            row("sum", "all sensors, no modality dropout", value=0.8), row("sum", "GPS only", sensors="G", value=0.7),
            row("mean", "all sensors, mean fusion", value=0.25),
            row("bn_sum", "all sensors, bn_sum fusion", value=0.75)]
    reference = {"test_samples": 40, "nlos_samples": 4, "test_snapshots": 4, "los_snapshots": 2}
    table = fusion_table(rows, reference)
    lines = [line for line in table.splitlines() if line.startswith("| ") and "fusion |" not in line]
    assert [line.split(" | ")[:2] for line in lines] == [["| sum", "R-L-G"], ["| sum", "G"], ["| mean", "R-L-G"],
                                                         ["| bn_sum", "R-L-G"]]
    assert "0.900" not in table and "0.800" not in table and "0.700" not in table
    assert "| bn_sum | R-L-G | 0.750 |" in table and "4 NLoS" in table
