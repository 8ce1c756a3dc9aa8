"""The corridor study: its run list, accuracy curves, time to accuracy and the paired
sum-rate table (pure functions), and one small study end to end."""

from __future__ import annotations

import csv
import json

import pytest

from v2xsim.sim.corridor.config import corridor_from_dict
from v2xsim.studies.fl_corridor import (RunSpec, accuracy_curves, study_runs, sum_rate_table, time_to_accuracy)


def test_the_study_runs_every_combination_with_a_baseline_and_the_priority_twin():
    scenario = corridor_from_dict({"sweep": {"speeds_kmh": [30.0, 60.0], "vehicles": [10], "seeds": [0, 1],
                                             "strategies": ["fedavg", "modality_aware"]}})
    runs = study_runs(scenario)
    assert len(runs) == 2 * 1 * 2 * (2 + 1 + 1)
    assert RunSpec(30.0, 10, 1, None, False) in runs
    assert RunSpec(60.0, 10, 0, "fedavg", True) in runs  # the first strategy with priority
    assert len({r.slug for r in runs}) == len(runs)


def _result(closes, values, initial):
    return {"summary": {"initial": {"top1_beam_hit": initial}},
            "rounds": [{"close_s": c, "top1_beam_hit": v} for c, v in zip(closes, values)]}


def test_accuracy_curves_hold_the_latest_model_and_average_over_seeds():
    scenario = corridor_from_dict({"duration_s": 10.0})
    runs = [RunSpec(60.0, 10, 0, "fedavg", False), RunSpec(60.0, 10, 1, "fedavg", False),
            RunSpec(60.0, 10, 0, None, False)]
    results = [_result([2.0, 6.0], [0.2, 0.6], 0.0), _result([4.0], [0.4], 0.1), _result([], [], None)]
    rows = accuracy_curves(runs, results, scenario, "top1_beam_hit", points=6)  # t = 0, 2, 4, 6, 8, 10
    means = [r["mean"] for r in rows]
    assert [r["time_s"] for r in rows] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    assert means == pytest.approx([0.05, 0.15, 0.3, 0.5, 0.5, 0.5])
    assert all(r["case"] == "fedavg" and r["n"] == 2 for r in rows)


def test_time_to_accuracy_counts_seeds_that_never_reach_it():
    rows = [{"strategy": "fedavg", "case": "fedavg", "speed_kmh": 60.0, "vehicles": 10, "time_to_target_s": t}
            for t in (10.0, 20.0, None)]
    (row,) = time_to_accuracy(rows)
    assert (row["seeds"], row["reached"], row["mean_s"]) == (3, 2, 15.0)


def test_sum_rate_differences_are_paired_by_seed():
    rows = [{"speed_kmh": 60.0, "vehicles": 10, "case": case, "seed": seed, "effective_sum_rate": rate}
            for case, rates in (("no FL", [10.0, 20.0, 30.0]), ("fedavg", [9.0, 19.5, 29.0]),
                                ("fedavg + priority", [9.5, 20.0, 29.0]))
            for seed, rate in enumerate(rates)]
    table = {r["case"]: r for r in sum_rate_table(rows)}
    assert table["fedavg"]["vs_no_fl"] == pytest.approx((-1.0 - 0.5 - 1.0) / 3)
    assert table["fedavg"]["ci_low"] < 10.0  # unpaired spread is wide ...
    assert table["fedavg"]["vs_no_fl_ci_high"] - table["fedavg"]["vs_no_fl_ci_low"] < 3.0  # ... paired is not
    assert table["no FL"]["vs_no_fl"] is None
    assert table["fedavg + priority"]["vs_no_priority"] == pytest.approx(1.0 / 3)
    assert table["fedavg"]["vs_no_priority"] is None


@pytest.mark.slow
def test_a_small_corridor_study_end_to_end(tmp_path):
    from v2xsim.cli import main

    out = tmp_path / "study"
    args = ["corridor", "scenarios/fl_corridor_ci.toml", "--out", str(out), "--quiet",
            "--set", "duration_s=20.0", "--set", "sweep.speeds_kmh=[60.0]", "--set", "traffic.vehicles=12",
            "--set", "sweep.vehicles=[12]", "--set", 'sweep.strategies=["fedavg"]',
            "--set", "fl.min_samples=4", "--set", "evaluation.survey_s=4.0", "--set", "evaluation.rsu.steps=20"]
    assert main(args) == 0
    for name in ("runs.csv", "curves.csv", "time_to_accuracy.csv", "sum_rate.csv", "fl_corridor.png",
                 "summary.json"):
        assert (out / name).exists(), name
    with (out / "runs.csv").open() as handle:
        runs = list(csv.DictReader(handle))
    assert {r["case"] for r in runs} == {"fedavg", "no FL", "fedavg + priority"}
    assert all(int(r["rounds"]) > 0 for r in runs if r["strategy"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"] == 6 and "provenance" in summary
    before = (out / "runs.csv").read_bytes()
    assert main(args) == 0  # a rerun reuses every finished run
    assert (out / "runs.csv").read_bytes() == before
