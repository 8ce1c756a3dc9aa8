"""Realignment study: effective sum rate vs a fixed realignment period, given as a multiple
of the beam coherence time ``T_contact / W`` of the nominal speed, per scheme and speed.

The GBA paper realigns once per coherence time. A shorter period spends more time aligning
(sweep schemes pay 20 ms each time); a longer one serves vehicles with beams (and powers)
that have aged. Every (factor, speed, seed) point is one co-simulation of the base scenario
with ``realignment.policy = "fixed"``; all schemes of a point share one world, so their
comparison is paired.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from v2xsim.config import PluginOptions, format_validation_error, load_scenario, scenario_from_dict
from v2xsim.errors import ConfigError
from v2xsim.stats import mean_ci
from v2xsim.timing import beam_coherence_time
from v2xsim.units import kmh_to_mps


class RealignmentStudy(BaseModel):
    """A realignment study file (``study = "realignment"``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    study: str = "realignment"
    name: str = "realignment"
    description: str = ""
    #: base scenario file (relative to the study file) and ``--set`` style overrides of it
    scenario: str
    overrides: list[str] = Field(default_factory=list)
    #: realignment periods as multiples of T_contact / W at each speed
    factors: list[float] = Field(min_length=1)
    speed_kmh: list[float] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    plot: PluginOptions = Field(default_factory=dict)


def load_realignment_study(data: dict[str, Any], path: Path) -> tuple[RealignmentStudy, Any]:
    """The validated study and its base scenario."""
    try:
        study = RealignmentStudy.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{path}: {format_validation_error(error)}") from None
    for name, values in (("factors", study.factors), ("speed_kmh", study.speed_kmh)):
        if any(not v > 0 for v in values):
            raise ConfigError(f"{path}: {name}: every value must be > 0")
    base = load_scenario(path.parent / study.scenario, study.overrides)
    return study, base


def study_points(study: RealignmentStudy, base) -> list[tuple[float, Any, tuple[float, int, int]]]:
    """(factor, scenario with the fixed period, (speed, K, seed)) for every point."""
    road, radio = base.road, base.radio
    points = []
    for factor in study.factors:
        for speed in study.speed_kmh:
            coherence = beam_coherence_time(road.rsu_height_m, math.radians(road.coverage_angle_deg),
                                            kmh_to_mps(speed), radio.num_beams)
            data = base.model_dump(mode="json")
            data["realignment"] = {**data["realignment"], "policy": "fixed", "period_ms": factor * coherence * 1e3}
            scenario = scenario_from_dict(data)
            for seed in study.seeds:
                points.append((factor, scenario, (speed, base.traffic.num_vehicles, seed)))
    return points


def run_realignment_study(study: RealignmentStudy, base, out_dir: Path, *, quiet: bool = False,
                          workers: int | None = None) -> dict[str, Any]:
    """Run every point (local worker processes), write table.csv, summary.csv, table.md,
    summary.json and effective_sum_rate_vs_period.png."""
    from v2xsim.executors import create_executor
    from v2xsim.sim.runner import _run_one, prepare_models
    from v2xsim.threads import POINT_TORCH_THREADS, torch_threads

    prepare_models(base, quiet=quiet)
    points = study_points(study, base)
    rows: list[dict[str, Any]] = []
    with create_executor("local", workers=workers) as executor, torch_threads(POINT_TORCH_THREADS):
        for done, (index, output) in enumerate(executor.map(_run_one, [(s, p) for _, s, p in points]), start=1):
            factor, scenario, _ = points[index]
            for row in output.rows:
                rows.append({"factor": factor, "period_ms": scenario.realignment.period_ms, **row.as_row()})
            if not quiet:
                print(f"\r{study.name}: {done}/{len(points)} points", end="\n" if done == len(points) else "",
                      file=sys.stderr, flush=True)
    rows.sort(key=lambda r: (r["scheme"], r["speed_kmh"], r["factor"], r["seed"]))
    summary = []
    groups: dict[tuple[str, float, float], list[float]] = {}
    for r in rows:
        groups.setdefault((r["scheme"], r["speed_kmh"], r["factor"]), []).append(r["effective_sum_rate"])
    for (scheme, speed, factor), values in groups.items():
        stat = mean_ci(values)
        summary.append({"scheme": scheme, "speed_kmh": speed, "factor": factor, "seeds": stat.n, "mean": stat.mean,
                        "ci95_low": stat.ci_low, "ci95_high": stat.ci_high})
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = ["factor", "period_ms", "scheme", "speed_kmh", "num_vehicles", "seed", "effective_sum_rate",
               "sum_rate", "t_delay_s", "overhead_share"]
    _write(out_dir / "table.csv", rows, columns)
    _write(out_dir / "summary.csv", summary, ["scheme", "speed_kmh", "factor", "seeds", "mean", "ci95_low",
                                               "ci95_high"])
    best = best_factors(summary)
    (out_dir / "table.md").write_text(markdown_table(summary, best))
    result = {"study": study.name, "configuration": study.model_dump(mode="json"),
              "scenario": base.model_dump(mode="json"), "summary": summary, "best_factor": best}
    (out_dir / "summary.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    plot_periods(summary, out_dir / "effective_sum_rate_vs_period.png", title=study.name)
    if not quiet:
        print(markdown_table(summary, best))
    return result


def best_factors(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per scheme and speed, the factor with the highest mean effective sum rate."""
    out: dict[tuple[str, float], dict[str, Any]] = {}
    for r in summary:
        key = (r["scheme"], r["speed_kmh"])
        if key not in out or r["mean"] > out[key]["mean"]:
            out[key] = {"scheme": r["scheme"], "speed_kmh": r["speed_kmh"], "factor": r["factor"], "mean": r["mean"]}
    return sorted(out.values(), key=lambda r: (r["scheme"], r["speed_kmh"]))


def markdown_table(summary: list[dict[str, Any]], best: list[dict[str, Any]]) -> str:
    """Mean effective sum rate [bit/s/Hz] (95 % CI) per scheme x speed (rows) and factor."""
    factors = sorted({r["factor"] for r in summary})
    lines = ["| scheme | km/h | " + " | ".join(f"{f:g} T_coh" for f in factors) + " | best |",
             "|---|---|" + "---|" * len(factors) + "---|"]
    by_key = {(r["scheme"], r["speed_kmh"], r["factor"]): r for r in summary}
    for b in best:
        cells = []
        for f in factors:
            r = by_key.get((b["scheme"], b["speed_kmh"], f))
            if r is None:
                cells.append("-")
            elif r["ci95_low"] is None:
                cells.append(f"{r['mean']:.2f}")
            else:
                cells.append(f"{r['mean']:.2f} ± {(r['ci95_high'] - r['ci95_low']) / 2:.2f}")
        lines.append(f"| {b['scheme']} | {b['speed_kmh']:g} | " + " | ".join(cells) + f" | {b['factor']:g} |")
    return "\n".join(lines) + "\n"


def plot_periods(summary: list[dict[str, Any]], path: Path, *, title: str) -> Path:
    """One panel per speed: mean effective sum rate vs period factor per scheme, CI bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    speeds = sorted({r["speed_kmh"] for r in summary})
    schemes = list(dict.fromkeys(r["scheme"] for r in summary))
    fig, axes = plt.subplots(1, len(speeds), figsize=(3.6 * len(speeds), 3.8), squeeze=False, sharey=True)
    for ax, speed in zip(axes[0], speeds):
        for scheme in schemes:
            mine = sorted((r for r in summary if r["scheme"] == scheme and r["speed_kmh"] == speed),
                          key=lambda r: r["factor"])
            xs = [r["factor"] for r in mine]
            (line,) = ax.plot(xs, [r["mean"] for r in mine], marker="o", label=scheme)
            if all(r["ci95_low"] is not None for r in mine):
                ax.fill_between(xs, [r["ci95_low"] for r in mine], [r["ci95_high"] for r in mine],
                                color=line.get_color(), alpha=0.15, linewidth=0)
        ax.axvline(1.0, color="k", linewidth=0.8, linestyle=":")
        ax.set_title(f"{speed:g} km/h")
        ax.set_xlabel("realignment period / (T_contact / W)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("effective sum rate [bit/s/Hz]")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"{title}: mean of seeds, 95 % CI")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _write(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else f"{row[k]:.10g}" if isinstance(row.get(k), float)
                                 else row.get(k)) for k in columns})
