"""The corridor FL study (``v2xsim corridor FILE --out DIR``): time-to-accuracy of
federated GBA-Vehicle training on the road, per strategy, speed and traffic density, and
what the FL traffic costs beam alignment.

Every combination of ``[sweep]`` (speeds x vehicles x seeds x strategies) is one corridor
run (:mod:`v2xsim.sim.corridor.run`); per (speed, vehicles, seed) the study adds a run
without FL (the same world: cars, RSUs and radio draws are the same) and, with
``sweep.priority_comparison``, a run of the first strategy with the other setting of
``fl.priority``. Outputs:

* ``runs.csv``: one row per run (effective sum rate, feedback queueing, rounds, failures,
  handovers, final accuracy, time to the target accuracy);
* ``curves.csv``: the held-out metric of the global model against simulated time (the
  latest aggregated model at each instant), mean and 95 % CI over seeds;
* ``time_to_accuracy.csv``: when each strategy first reached ``sweep.target``;
* ``sum_rate.csv``: effective sum rate without FL, with each strategy, and with priority
  for feedback; paired differences over seeds;
* ``fl_corridor.png`` and ``summary.json`` (configuration, provenance, wall time).

Each run keeps its own directory under ``runs/``; a rerun skips finished runs and resumes
unfinished ones after their last round.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from v2xsim.sim.corridor.config import CorridorScenario, load_corridor
from v2xsim.sim.corridor.run import Point, run_point
from v2xsim.stats import mean_ci, paired_difference
from v2xsim.tables import json_default, table_cell

METRICS = ("exact_match", "top1_beam_hit", "bit_accuracy", "sum_rate")


@dataclass(frozen=True)
class RunSpec:
    """One run of the study."""

    speed_kmh: float
    vehicles: int
    seed: int
    strategy: str | None  # None: no FL
    priority: bool

    @property
    def slug(self) -> str:
        what = "none" if self.strategy is None else self.strategy + ("-priority" if self.priority else "")
        return f"{self.speed_kmh:g}kmh-{self.vehicles}cars-seed{self.seed}-{what}"

    def point(self, scenario: CorridorScenario) -> Point:
        return Point(scenario, speed_kmh=self.speed_kmh, vehicles=self.vehicles, seed=self.seed,
                     strategy=self.strategy or scenario.fl.strategy.name, fl_enabled=self.strategy is not None,
                     priority=self.priority)


def study_runs(scenario: CorridorScenario) -> list[RunSpec]:
    """Every run of the study, in order."""
    sweep = scenario.sweep
    speeds = sweep.speeds_kmh or [scenario.traffic.speed_kmh]
    densities = sweep.vehicles or [scenario.traffic.vehicles]
    seeds = sweep.seeds or [scenario.seed]
    strategies = sweep.strategies or [scenario.fl.strategy.name]
    priority = scenario.fl.priority
    runs = []
    for speed in speeds:
        for vehicles in densities:
            for seed in seeds:
                for strategy in strategies:
                    runs.append(RunSpec(speed, vehicles, seed, strategy, priority))
                if sweep.baseline:
                    runs.append(RunSpec(speed, vehicles, seed, None, False))
                if sweep.priority_comparison:
                    runs.append(RunSpec(speed, vehicles, seed, strategies[0], not priority))
    return runs


def _run_one(scenario: CorridorScenario, spec: RunSpec, directory: str) -> dict[str, Any]:
    """One run in a worker: its summary and rounds (the engine stays in the worker)."""
    out = Path(directory)
    done = out / "point.json"
    point = spec.point(scenario)
    if done.exists():
        saved = json.loads(done.read_text())
        if saved.get("key") == point.key():
            return saved
    summary = run_point(point, out, quiet=True)
    summary.pop("engine")
    rounds = summary.pop("rounds")  # every round, also those before a resume
    result = {"key": point.key(), "summary": summary, "rounds": rounds, "initial": summary.get("initial", {})}
    done.write_text(json.dumps(result, default=json_default) + "\n")
    return json.loads(done.read_text())


def run_corridor_file(path: str | Path, overrides: list[str] | None, out_dir: Path, *, quiet: bool = False,
                      workers: int | None = None) -> dict[str, Any]:
    """Run a corridor scenario file's study into ``out_dir``."""
    scenario = load_corridor(path, overrides)
    return run_corridor_study(scenario, out_dir, quiet=quiet, workers=workers)


def run_corridor_study(scenario: CorridorScenario, out_dir: Path, *, quiet: bool = False,
                       workers: int | None = None) -> dict[str, Any]:
    from v2xsim.executors import create_executor
    from v2xsim.provenance import provenance

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = study_runs(scenario)
    started = time.perf_counter()
    if not quiet:
        print(f"corridor study {scenario.name}: {len(runs)} runs", file=sys.stderr)
    if scenario.evaluation.enabled:  # data and GBA-RSU once, before the workers load them
        from v2xsim.sim.corridor.run import prepare_learning

        prepare_learning(runs[0].point(scenario), store=None, quiet=quiet)
    results: dict[int, dict[str, Any]] = {}
    arguments = [(scenario, spec, str(out_dir / "runs" / spec.slug)) for spec in runs]
    with create_executor("local", **({"workers": workers} if workers else {})) as executor:
        for index, result in executor.map(_run_one, arguments):
            results[index] = result
            if not quiet:
                elapsed = time.perf_counter() - started
                left = elapsed / len(results) * (len(runs) - len(results))
                s = result["summary"]
                print(f"[{len(results)}/{len(runs)}] {runs[index].slug}: {s['rounds_done']} rounds, effective sum "
                      f"rate {s['effective_sum_rate']:.2f} bit/s/Hz ({elapsed:.0f} s, about {left:.0f} s left)",
                      file=sys.stderr, flush=True)
    ordered = [results[i] for i in range(len(runs))]
    metric, target = scenario.sweep.metric, scenario.sweep.target
    run_rows = [_run_row(spec, result, metric, target) for spec, result in zip(runs, ordered)]
    _write(out_dir / "runs.csv", run_rows)
    curves = accuracy_curves(runs, ordered, scenario, metric)
    _write(out_dir / "curves.csv", curves)
    reach = time_to_accuracy(run_rows)
    _write(out_dir / "time_to_accuracy.csv", reach)
    rates = sum_rate_table(run_rows)
    _write(out_dir / "sum_rate.csv", rates)
    if curves:
        from v2xsim.plots import corridor_plots

        corridor_plots(curves, rates, out_dir / "fl_corridor.png", metric=metric,
                       title=f"{scenario.name}: {metric} of the global model vs simulated time")
    summary = {"scenario": scenario.name, "runs": len(runs), "metric": metric, "target": target,
               "wall_s": time.perf_counter() - started, "time_to_accuracy": reach, "sum_rate": rates,
               "configuration": scenario.model_dump(mode="json"), "provenance": provenance({})}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=json_default) + "\n")
    if not quiet:
        for row in rates:
            paired = "" if row["vs_no_fl"] is None else (
                f"; vs no FL {row['vs_no_fl']:+.3f} [{_cell(row['vs_no_fl_ci_low'], 3)}, "
                f"{_cell(row['vs_no_fl_ci_high'], 3)}]")
            print(f"{row['speed_kmh']:g} km/h, {row['vehicles']} cars: {row['case']}: effective sum rate "
                  f"{row['mean']:.2f} [{_cell(row['ci_low'])}, {_cell(row['ci_high'])}]{paired}", file=sys.stderr)
        print(f"wrote runs.csv, curves.csv, time_to_accuracy.csv, sum_rate.csv, fl_corridor.png and summary.json "
              f"to {out_dir}", file=sys.stderr)
    return summary


def _cell(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _case(spec_strategy: str | None, priority: bool) -> str:
    if spec_strategy is None:
        return "no FL"
    return spec_strategy + (" + priority" if priority else "")


def _run_row(spec: RunSpec, result: dict[str, Any], metric: str, target: float) -> dict[str, Any]:
    s = result["summary"]
    reached = next((r["close_s"] for r in result["rounds"] if (r.get(metric) is not None and r[metric] >= target)),
                   None)
    return {"speed_kmh": spec.speed_kmh, "vehicles": spec.vehicles, "seed": spec.seed,
            "case": _case(spec.strategy, spec.priority), "strategy": spec.strategy or "", "priority": int(spec.priority),
            "simulated_s": s["simulated_s"], "wall_s": s["wall_s"], "rounds": s["rounds_done"],
            "failures": s["failures"], "handovers": s["handovers"],
            "effective_sum_rate": s["effective_sum_rate"], "mean_feedback_wait_s": s["mean_feedback_wait_s"],
            "feedback_waits_behind_upload": s["feedback_waits_behind_upload"],
            "bytes_up": s["totals"]["bytes_up"], "compute_s": s["totals"]["compute_s"],
            f"final_{metric}": s["final"].get(metric), "time_to_target_s": reached,
            "training_wall_s": s.get("training_wall_s")}


def accuracy_curves(runs: list[RunSpec], results: list[dict[str, Any]], scenario: CorridorScenario,
                    metric: str, points: int = 41) -> list[dict[str, Any]]:
    """``metric`` of the latest global model at each of ``points`` instants of the
    horizon (the initial model's before the first aggregation), mean and CI over seeds,
    per case x speed x vehicles."""
    grid = np.linspace(0.0, scenario.duration_s, points)
    groups: dict[tuple, list[np.ndarray]] = {}
    for spec, result in zip(runs, results):
        if spec.strategy is None:
            continue
        initial = result["summary"].get("initial", {}).get(metric)
        closes = [(r["close_s"], r[metric]) for r in result["rounds"] if r.get(metric) is not None]
        if initial is None and not closes:
            continue
        values = np.full(len(grid), np.nan if initial is None else float(initial))
        for close, value in closes:
            values[grid >= close] = value
        groups.setdefault((_case(spec.strategy, spec.priority), spec.speed_kmh, spec.vehicles), []).append(values)
    rows = []
    for (case, speed, vehicles), series in groups.items():
        stacked = np.stack(series)
        for index, t in enumerate(grid):
            column = stacked[:, index]
            column = column[np.isfinite(column)]
            if len(column) == 0:
                continue
            stats = mean_ci(column)
            rows.append({"case": case, "speed_kmh": speed, "vehicles": vehicles, "time_s": float(t),
                         "n": stats.n, "mean": stats.mean, "ci_low": stats.ci_low, "ci_high": stats.ci_high})
    return rows


def time_to_accuracy(run_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per case x speed x vehicles: how many seeds reached the target and the mean
    (CI) time of those that did [s]."""
    groups: dict[tuple, list] = {}
    for row in run_rows:
        if row["strategy"]:
            groups.setdefault((row["case"], row["speed_kmh"], row["vehicles"]), []).append(row["time_to_target_s"])
    out = []
    for (case, speed, vehicles), times in groups.items():
        reached = [t for t in times if t is not None]
        stats = mean_ci(reached) if reached else None
        out.append({"case": case, "speed_kmh": speed, "vehicles": vehicles, "seeds": len(times),
                    "reached": len(reached), "mean_s": None if stats is None else stats.mean,
                    "ci_low": None if stats is None else stats.ci_low,
                    "ci_high": None if stats is None else stats.ci_high})
    return out


def sum_rate_table(run_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Effective sum rate per case x speed x vehicles (mean, CI over seeds) and, paired by
    seed, its difference to the run without FL (``vs_no_fl``) and, for a case with
    priority, to the same strategy without it (``vs_no_priority``)."""
    groups: dict[tuple, dict[int, float]] = {}
    for row in run_rows:
        groups.setdefault((row["speed_kmh"], row["vehicles"], row["case"]), {})[row["seed"]] = \
            row["effective_sum_rate"]
    out = []
    for (speed, vehicles, case), by_seed in groups.items():
        stats = mean_ci(list(by_seed.values()))
        row = {"speed_kmh": speed, "vehicles": vehicles, "case": case, "n": stats.n, "mean": stats.mean,
               "ci_low": stats.ci_low, "ci_high": stats.ci_high}
        for column, other in (("vs_no_fl", "no FL" if case != "no FL" else None),
                              ("vs_no_priority", case.removesuffix(" + priority") if case.endswith(" + priority")
                               else None)):
            row.update({column: None, f"{column}_ci_low": None, f"{column}_ci_high": None})
            base = groups.get((speed, vehicles, other)) if other else None
            seeds = sorted(set(by_seed) & set(base)) if base else []
            if seeds:
                diff = paired_difference([by_seed[s] for s in seeds], [base[s] for s in seeds])
                row.update({column: diff.mean, f"{column}_ci_low": diff.ci_low, f"{column}_ci_high": diff.ci_high})
        out.append(row)
    return out


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        path.write_text("")
        return
    columns = list(rows[0])
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (v if isinstance(v, str) else table_cell(v, digits=6)) for k, v in row.items()})


__all__ = ["RunSpec", "accuracy_curves", "run_corridor_file", "run_corridor_study", "study_runs",
           "sum_rate_table", "time_to_accuracy"]
