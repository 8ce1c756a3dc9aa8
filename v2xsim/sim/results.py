"""Writing results: results.csv (one row per scheme x point x seed), summary.csv (per
scheme x point: mean, standard error and 95 % confidence interval across seeds),
paired.csv (the compared scheme minus the best baseline, seed by seed), events.csv and
summary.json (configuration, statistics and provenance); when the mobility model names
traffic states (e.g. SUMO's traffic-light phase), states.csv (the effective sum rate per
scheme x point x seed x state) and states_summary.csv (its mean and confidence interval
across seeds)."""

from __future__ import annotations

import csv
import json
import platform
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from v2xsim import __version__
from v2xsim.config import Scenario
from v2xsim.provenance import provenance
from v2xsim.sim.engine import RunOutput
from v2xsim.stats import CONFIDENCE, mean_ci, paired_difference
from v2xsim.tables import table_cell

RESULT_COLUMNS = (
    "scheme", "speed_kmh", "num_vehicles", "seed", "t_coherence_s", "t_delay_s", "sum_rate",
    "effective_sum_rate", "formula_effective_sum_rate", "overhead_share", "alignments", "mean_vehicles",
    "mean_served", "paper_t_coherence_s", "simulated_s", "channel", "aging",
)


#: per-point statistics of these result columns go to summary.csv
STATISTIC_COLUMNS = ("effective_sum_rate", "sum_rate", "t_delay_s", "t_coherence_s")
SUMMARY_COLUMNS = ("scheme", "speed_kmh", "num_vehicles", "metric", "seeds", "mean", "std_error", "ci95_low",
                   "ci95_high")
#: per traffic state (:attr:`v2xsim.sim.engine.RunOutput.states`): states.csv, and its
#: statistics across seeds in states_summary.csv
STATE_COLUMNS = ("scheme", "speed_kmh", "num_vehicles", "seed", "state", "time_s", "effective_sum_rate",
                 "mean_vehicles")
STATE_STATISTIC_COLUMNS = ("effective_sum_rate", "mean_vehicles", "time_s")
STATE_SUMMARY_COLUMNS = ("scheme", "speed_kmh", "num_vehicles", "state", "metric", "seeds", "mean", "std_error",
                         "ci95_low", "ci95_high")
PAIRED_COLUMNS = ("scheme", "baseline", "speed_kmh", "num_vehicles", "seeds", "mean_difference", "std_error",
                  "ci95_low", "ci95_high")


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: table_cell(row[key], digits=10) for key in columns})


def result_rows(outputs: Sequence[RunOutput]) -> list[dict[str, Any]]:
    return [row.as_row() for output in outputs for row in output.rows]


def point_statistics(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and confidence interval across seeds of every statistic column, per scheme x
    (speed, K), in the order the rows come."""
    groups: dict[tuple[str, float, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["scheme"], row["speed_kmh"], row["num_vehicles"]), []).append(row)
    out = []
    for (scheme, speed, count), members in groups.items():
        for metric in STATISTIC_COLUMNS:
            stat = mean_ci([r[metric] for r in members])
            out.append({"scheme": scheme, "speed_kmh": speed, "num_vehicles": count, "metric": metric,
                        "seeds": stat.n, "mean": stat.mean, "std_error": stat.std_error, "ci95_low": stat.ci_low,
                        "ci95_high": stat.ci_high})
    return out


def state_statistics(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and confidence interval across seeds of the per-state columns, per scheme x
    (speed, K) x state, in the order the rows come."""
    groups: dict[tuple[str, float, int, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["scheme"], row["speed_kmh"], row["num_vehicles"], row["state"]), []).append(row)
    out = []
    for (scheme, speed, count, state), members in groups.items():
        for metric in STATE_STATISTIC_COLUMNS:
            stat = mean_ci([r[metric] for r in members])
            out.append({"scheme": scheme, "speed_kmh": speed, "num_vehicles": count, "state": state,
                        "metric": metric, "seeds": stat.n, "mean": stat.mean, "std_error": stat.std_error,
                        "ci95_low": stat.ci_low, "ci95_high": stat.ci_high})
    return out


def paired_comparisons(rows: Sequence[dict[str, Any]], compare: str | None,
                       baselines: Sequence[str]) -> list[dict[str, Any]]:
    """``compare`` minus the best baseline (highest mean effective sum rate at that point),
    seed by seed on the same worlds, per (speed, K)."""
    if compare is None:
        return []
    by_point: dict[tuple[float, int], dict[str, dict[int, float]]] = {}
    for row in rows:
        point = by_point.setdefault((row["speed_kmh"], row["num_vehicles"]), {})
        point.setdefault(row["scheme"], {})[row["seed"]] = row["effective_sum_rate"]
    out = []
    for (speed, count), schemes in by_point.items():
        candidates = [b for b in baselines if b in schemes]
        if compare not in schemes or not candidates:
            continue
        best = max(candidates, key=lambda b: (float(np.mean(list(schemes[b].values()))), b))
        seeds = sorted(set(schemes[compare]) & set(schemes[best]))
        stat = paired_difference([schemes[compare][s] for s in seeds], [schemes[best][s] for s in seeds])
        out.append({"scheme": compare, "baseline": best, "speed_kmh": speed, "num_vehicles": count,
                    "seeds": stat.n, "mean_difference": stat.mean, "std_error": stat.std_error,
                    "ci95_low": stat.ci_low, "ci95_high": stat.ci_high})
    return out


def write_outputs(scenario: Scenario, outputs: Sequence[RunOutput], out_dir: Path, *,
                  scenario_path: str | None = None, elapsed_s: float | None = None,
                  models: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write results.csv, summary.csv, paired.csv, events.csv (if enabled) and
    summary.json; returns the summary. ``models`` names the trained models used."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = result_rows(outputs)
    # the training seed of each row when the scenario varies it (the CIs then cover training too)
    write_csv(out_dir / "results.csv", rows,
              RESULT_COLUMNS + (("training_seed",) if scenario.sweep.training_seeds else ()))
    statistics = point_statistics(rows)
    write_csv(out_dir / "summary.csv", statistics, SUMMARY_COLUMNS)
    paired = paired_comparisons(rows, scenario.output.compare, scenario.output.baselines)
    write_csv(out_dir / "paired.csv", paired, PAIRED_COLUMNS)
    if scenario.output.event_log:
        cycles = [c for output in outputs for c in output.cycles]
        columns = ("speed_kmh", "num_vehicles", "seed", "scheme", "start_s", "delay_s", "period_s",
                   "vehicles", "reporting", "served", "apply_sum_rate", "bits", "data_time_s", "complete")
        write_csv(out_dir / "events.csv", cycles, columns)
    states = [row for output in outputs for row in output.states]
    if states:
        write_csv(out_dir / "states.csv", states, STATE_COLUMNS)
        write_csv(out_dir / "states_summary.csv", state_statistics(states), STATE_SUMMARY_COLUMNS)
    per_scheme: dict[str, dict[str, float]] = {}
    for row in rows:
        entry = per_scheme.setdefault(row["scheme"], {"points": 0, "mean_effective_sum_rate": 0.0,
                                                       "mean_sum_rate": 0.0})
        entry["points"] += 1
        entry["mean_effective_sum_rate"] += row["effective_sum_rate"]
        entry["mean_sum_rate"] += row["sum_rate"]
    for entry in per_scheme.values():
        entry["mean_effective_sum_rate"] /= entry["points"]
        entry["mean_sum_rate"] /= entry["points"]
    simulated = sum(o.simulated_s for o in outputs)
    wall = sum(o.wall_s for o in outputs)
    summary = {
        "scenario": scenario.name,
        "scenario_file": scenario_path,
        "description": scenario.description,
        "v2xsim_version": __version__,
        "python": platform.python_version(),
        "configuration": scenario.model_dump(mode="json"),
        "points": len(outputs),
        "schemes": per_scheme,
        "units": {"sum_rate": "bit/s/Hz", "effective_sum_rate": "bit/s/Hz", "t_coherence_s": "s", "t_delay_s": "s"},
        "simulated_seconds": simulated,
        "events": sum(o.events for o in outputs),
        "confidence": CONFIDENCE,
        "statistics": statistics,
        "paired": paired,
        "provenance": provenance(models),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    # wall-clock figures vary run to run; kept out of summary.json so it stays reproducible
    elapsed = wall if elapsed_s is None else elapsed_s
    (out_dir / "timing.json").write_text(json.dumps({
        "elapsed_wall_seconds": elapsed,
        "summed_point_seconds": wall,
        "simulated_seconds_per_wall_second": simulated / elapsed if elapsed else 0.0,
        "simulated_seconds_per_point_second": simulated / wall if wall else 0.0,
    }, indent=2) + "\n")
    return summary
