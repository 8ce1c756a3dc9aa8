"""Writing results: results.csv, events.csv, summary.json."""

from __future__ import annotations

import csv
import json
import math
import platform
from pathlib import Path
from typing import Any, Sequence

from v2xsim import __version__
from v2xsim.config import Scenario
from v2xsim.sim.engine import RunOutput

RESULT_COLUMNS = (
    "scheme", "speed_kmh", "num_vehicles", "seed", "t_coherence_s", "t_delay_s", "sum_rate",
    "effective_sum_rate", "formula_effective_sum_rate", "overhead_share", "alignments", "mean_vehicles",
    "mean_served", "paper_t_coherence_s", "simulated_s", "channel", "aging",
)


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"refusing to write a non-finite value ({value}) to a result table")
        return f"{value:.10g}"
    return value


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _fmt(row[key]) for key in columns})


def result_rows(outputs: Sequence[RunOutput]) -> list[dict[str, Any]]:
    return [row.as_row() for output in outputs for row in output.rows]


def write_outputs(scenario: Scenario, outputs: Sequence[RunOutput], out_dir: Path, *,
                  scenario_path: str | None = None, elapsed_s: float | None = None) -> dict[str, Any]:
    """Write results.csv, events.csv (if enabled) and summary.json; returns the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = result_rows(outputs)
    write_csv(out_dir / "results.csv", rows, RESULT_COLUMNS)
    if scenario.output.event_log:
        cycles = [c for output in outputs for c in output.cycles]
        columns = ("speed_kmh", "num_vehicles", "seed", "scheme", "start_s", "delay_s", "period_s",
                   "vehicles", "reporting", "served", "apply_sum_rate", "bits", "data_time_s", "complete")
        write_csv(out_dir / "events.csv", cycles, columns)
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
