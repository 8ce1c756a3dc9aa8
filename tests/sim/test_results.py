"""Result tables: per-point statistics across seeds, paired comparisons, provenance."""

import csv
import json

import pytest

from v2xsim.sim.results import paired_comparisons, point_statistics
from v2xsim.sim.runner import run_to_directory


def row(scheme, seed, rate, speed=30.0):
    return {"scheme": scheme, "speed_kmh": speed, "num_vehicles": 4, "seed": seed, "effective_sum_rate": rate,
            "sum_rate": rate + 1.0, "t_delay_s": 0.02, "t_coherence_s": 0.06}


def test_point_statistics_and_paired_comparison_pick_the_best_baseline_per_point():
    rows = [row("gba", s, 10.0 + s) for s in range(3)] + [row("zf_sweep", s, 8.0 + s) for s in range(3)] + \
           [row("wmmse_ce", s, 9.0 + 0.5 * s) for s in range(3)]
    stats = {(r["scheme"], r["metric"]): r for r in point_statistics(rows)}
    assert stats[("gba", "effective_sum_rate")]["mean"] == pytest.approx(11.0)
    assert stats[("gba", "effective_sum_rate")]["seeds"] == 3
    assert stats[("gba", "effective_sum_rate")]["ci95_low"] < 11.0 < stats[("gba", "effective_sum_rate")]["ci95_high"]
    (paired,) = paired_comparisons(rows, "gba", ["zf_sweep", "wmmse_ce"])
    assert paired["baseline"] == "wmmse_ce"  # mean 9.5 beats zf_sweep's 9.0
    assert paired["mean_difference"] == pytest.approx(1.5)
    assert paired_comparisons(rows, "gba", ["nobody"]) == [] and paired_comparisons(rows, None, ["zf_sweep"]) == []


def test_a_run_with_seeds_writes_statistics_paired_comparison_and_provenance(scenario_factory, tmp_path):
    scenario = scenario_factory(schemes=[{"name": "zf_sweep"}, {"name": "wmmse_ce"}],
                                simulation={"duration_s": 0.3}, sweep={"speed_kmh": [30.0], "seeds": [0, 1, 2]},
                                output={"plots": True, "compare": "wmmse_ce", "baselines": ["zf_sweep"]})
    run_to_directory(scenario, tmp_path, workers=1, quiet=True)
    with (tmp_path / "summary.csv").open() as handle:
        summary = [r for r in csv.DictReader(handle) if r["metric"] == "effective_sum_rate"]
    assert {r["scheme"] for r in summary} == {"zf_sweep", "wmmse_ce"}
    assert all(r["seeds"] == "3" and float(r["ci95_low"]) <= float(r["mean"]) <= float(r["ci95_high"]) for r in summary)
    with (tmp_path / "paired.csv").open() as handle:
        (paired,) = list(csv.DictReader(handle))
    assert paired["scheme"] == "wmmse_ce" and paired["baseline"] == "zf_sweep" and paired["seeds"] == "3"
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["confidence"] == 0.95 and len(data["paired"]) == 1
    provenance = data["provenance"]
    assert provenance["packages"]["torch"] and provenance["packages"]["simpy"] and provenance["packages"]["numpy"]
    assert provenance["git"] is None or len(provenance["git"]["commit"]) == 40
    assert (tmp_path / "effective_sum_rate_vs_speed.png").stat().st_size > 10_000


def test_one_seed_leaves_the_interval_blank_not_nan(scenario_factory, tmp_path):
    scenario = scenario_factory(schemes=[{"name": "zf_sweep"}], simulation={"duration_s": 0.2},
                                output={"plots": False})
    run_to_directory(scenario, tmp_path, workers=1, quiet=True)
    text = (tmp_path / "summary.csv").read_text()
    assert "nan" not in text.lower()
    first = next(csv.DictReader(text.splitlines()))
    assert first["seeds"] == "1" and first["std_error"] == "" and first["ci95_low"] == ""
