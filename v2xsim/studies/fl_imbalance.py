"""FL under data imbalance: Table II and Fig. 6 of seed 002 on FLASH-like data.

Table II: every strategy (UB = centralised, DA, FedAvg, FLASH by default) trains
GBA-Vehicle in every imbalance setting (label; + sensor-type; + sensor-performance);
the table gives the held-out exact-match accuracy and the sum rate GBA-RSU reaches with
the predicted feedback, per strategy x setting, with 95 % confidence intervals across the
study's seeds (one FL run per seed; seeds change the data, the split and the training).

Fig. 6: the final models of one setting are deployed with fewer sensors than they were
trained with: the completeness of RGB, of LiDAR, or of both falls from 1 to 0 at test time
(whole vehicles lose the sensor, or random samples do); the sum rate is averaged over
``trials`` random draws of which vehicles / samples lose it.

Every run is an FL experiment of its own in ``OUT/runs/<setting>/<strategy>/seed<k>/`` with
its per-round table and checkpoint, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from v2xsim.config import PluginOptions, format_validation_error
from v2xsim.errors import ConfigError
from v2xsim.stats import mean_ci

FIG6_SERIES = {"RGB": (True, False), "LiDAR": (False, True), "both": (True, True)}


class StrategyEntry(BaseModel):
    """One row of Table II: a label and an FL strategy with options."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    label: str
    name: str
    options: PluginOptions = Field(default_factory=dict)


class Fig6Section(BaseModel):
    """``[fig6]``: test-time sensor loss on the models of one setting."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    setting: str = "sensor_type"
    completeness: list[float] = Field(default_factory=lambda: [1.0, 0.8, 0.6, 0.4, 0.2, 0.0], min_length=2)
    mode: str = "vehicles"
    trials: int = Field(5, ge=1)


class FLImbalanceStudy(BaseModel):
    """A study file with ``study = "fl_imbalance"``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    study: str = "fl_imbalance"
    name: str = "fl_imbalance"
    description: str = ""
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    profile: str = "cpu"
    settings: list[str] = Field(default_factory=lambda: ["label", "sensor_type", "sensor_performance"],
                                min_length=1)
    strategies: list[StrategyEntry] = Field(min_length=1)
    #: sections shared by every run (an FL experiment's road, radio, data, model, rsu, training, da)
    base: PluginOptions = Field(default_factory=dict)
    fig6: Fig6Section = Field(default_factory=Fig6Section)


def load_fl_study(data: dict[str, Any], path: Path) -> FLImbalanceStudy:
    """Validate a parsed study file; every run's experiment is validated up front."""
    try:
        study = FLImbalanceStudy.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{path}: {format_validation_error(error)}") from None
    labels = [s.label for s in study.strategies]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{path}: strategies: labels must differ, got {labels}")
    from v2xsim.fl.experiment import SETTINGS

    for setting in study.settings:
        if setting not in SETTINGS:
            raise ConfigError(f"{path}: settings: unknown setting {setting!r}; valid: {', '.join(SETTINGS)}")
    if study.fig6.mode not in ("vehicles", "samples"):
        raise ConfigError(f"{path}: fig6.mode: use 'vehicles' or 'samples', got {study.fig6.mode!r}")
    if any(not 0 <= c <= 1 for c in study.fig6.completeness):
        raise ConfigError(f"{path}: fig6.completeness: every value must be in [0, 1]")
    if study.fig6.setting not in study.settings:
        raise ConfigError(f"{path}: fig6.setting: {study.fig6.setting!r} is not one of settings {study.settings}")
    for setting in study.settings:
        for entry in study.strategies:
            experiment_of(study, setting, entry, study.seeds[0], path)
    return study


def experiment_of(study: FLImbalanceStudy, setting: str, entry: StrategyEntry, seed: int, path: Path | str = "study"):
    from v2xsim.fl.experiment import experiment_from_dict

    reserved = {"experiment", "name", "seed", "setting", "profile", "strategy"} & set(study.base)
    if reserved:
        raise ConfigError(f"{path}: base.{sorted(reserved)[0]}: set by the study, not in [base]")
    data = {**study.base, "name": f"{study.name}-{setting}-{entry.label}-seed{seed}", "seed": seed,
            "setting": setting, "profile": study.profile,
            "strategy": {"name": entry.name, "options": dict(entry.options)}}
    return experiment_from_dict(data, f"{path} ({setting}, {entry.label})")


def run_fl_study(study: FLImbalanceStudy, out_dir: Path, *, quiet: bool = False) -> dict[str, Any]:
    """Run every (setting, strategy, seed), then write table2.csv/.md, fig6.csv, plots and
    summary.json."""
    from v2xsim.fl.runner import prepare, run_experiment
    from v2xsim.store import ModelStore

    store = ModelStore(quiet=quiet)
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    total = len(study.settings) * len(study.strategies) * len(study.seeds)
    fig6_rows: list[dict[str, Any]] = []
    for setting in study.settings:
        for seed in study.seeds:
            prepared = None
            for entry in study.strategies:
                experiment = experiment_of(study, setting, entry, seed)
                if prepared is None:
                    prepared = prepare(experiment, store=store, quiet=quiet)
                run_dir = out_dir / "runs" / setting / entry.label / f"seed{seed}"
                summary = run_experiment(experiment, run_dir, quiet=quiet, prepared=prepared)
                runs.append({"setting": setting, "strategy": entry.label, "seed": seed, "dir": str(run_dir),
                             **summary["final"], "rounds": summary["rounds_done"],
                             "bytes_up": summary["totals"]["bytes_up"], "bytes_down": summary["totals"]["bytes_down"],
                             "bytes_da": summary["totals"]["bytes_da"], "train_zeta": summary["data"]["train_zeta"]})
                if setting == study.fig6.setting:
                    fig6_rows += fig6_points(study, entry.label, seed, run_dir, prepared)
                if not quiet:
                    elapsed = time.perf_counter() - started
                    left = elapsed / len(runs) * (total - len(runs))
                    print(f"study {study.name}: {len(runs)}/{total} runs, {elapsed:.0f} s, about {left:.0f} s left",
                          file=sys.stderr, flush=True)
    table = table2(runs, study)
    fig6 = fig6_summary(fig6_rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write(out_dir / "runs.csv", runs)
    _write(out_dir / "table2.csv", table)
    _write(out_dir / "fig6.csv", fig6)
    markdown = table2_markdown(table, study)
    (out_dir / "table2.md").write_text(markdown)
    training = experiment_of(study, study.settings[0], study.strategies[0], study.seeds[0]).resolved_training()
    summary = {"study": study.name, "configuration": study.model_dump(mode="json"),
               "ran": {"profile": study.profile, "training": training, "seeds": study.seeds},
               "table2": table, "fig6": fig6, "runs": runs}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    plot_table2(table, study, out_dir / "table2.png")
    plot_fig6(fig6, study, out_dir / "fig6.png")
    from v2xsim.studies.fl import plot_rounds

    for setting in study.settings:
        series = {entry.label: out_dir / "runs" / setting / entry.label / f"seed{study.seeds[0]}" / "rounds.csv"
                  for entry in study.strategies}
        plot_rounds(series, out_dir / f"rounds_{setting}.png",
                    title=f"{study.name}: {setting} setting, seed {study.seeds[0]}, {study.profile} profile")
    if not quiet:
        print(markdown)
    return summary


def fig6_points(study: FLImbalanceStudy, label: str, seed: int, run_dir: Path, prepared) -> list[dict[str, Any]]:
    """Sum rate of one final model as RGB / LiDAR / both lose completeness at test time."""
    import copy

    from v2xsim.fl.evaluation import availability_at_test_time, evaluate_global
    from v2xsim.store import load_saved

    model = copy.deepcopy(prepared.initial_model)
    model.load_state_dict(load_saved(run_dir / "model.pt")["model"])
    model.eval()
    bed = prepared.held_out
    rows = []
    for series, (rgb, lidar) in FIG6_SERIES.items():
        for completeness in study.fig6.completeness:
            rates, accuracies = [], []
            for trial in range(study.fig6.trials if completeness < 1 else 1):
                rng = np.random.default_rng([seed, trial, 606])
                available = availability_at_test_time(
                    bed.test_set.available, image=completeness if rgb else 1.0, lidar=completeness if lidar else 1.0,
                    mode=study.fig6.mode, rng=rng, episode=bed.test_set.episode)
                result = evaluate_global(model, bed.with_available(available), contributions=False)
                rates.append(result["sum_rate"])
                accuracies.append(result["exact_match"])
            rows.append({"strategy": label, "seed": seed, "series": series, "completeness": completeness,
                         "sum_rate": float(np.mean(rates)), "exact_match": float(np.mean(accuracies))})
    return rows


def table2(runs: list[dict[str, Any]], study: FLImbalanceStudy) -> list[dict[str, Any]]:
    """Per strategy x setting: mean and 95 % CI across seeds of sum rate and accuracies."""
    out = []
    for entry in study.strategies:
        for setting in study.settings:
            mine = [r for r in runs if r["strategy"] == entry.label and r["setting"] == setting]
            row: dict[str, Any] = {"strategy": entry.label, "setting": setting, "seeds": len(mine)}
            for metric in ("sum_rate", "exact_match", "bit_accuracy", "top1_beam_hit"):
                values = [r[metric] for r in mine if r.get(metric) is not None]
                if not values:
                    continue
                stat = mean_ci(values)
                row[metric] = stat.mean
                row[f"{metric}_ci95_low"] = stat.ci_low
                row[f"{metric}_ci95_high"] = stat.ci_high
            out.append(row)
    return out


def fig6_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fig. 6 points averaged over seeds (with CIs when there are several)."""
    keys = sorted({(r["strategy"], r["series"], r["completeness"]) for r in rows},
                  key=lambda k: (k[0], list(FIG6_SERIES).index(k[1]), -k[2]))
    out = []
    for strategy, series, completeness in keys:
        values = [r["sum_rate"] for r in rows if (r["strategy"], r["series"], r["completeness"]) ==
                  (strategy, series, completeness)]
        stat = mean_ci(values)
        out.append({"strategy": strategy, "series": series, "completeness": completeness, "seeds": len(values),
                    "sum_rate": stat.mean, "sum_rate_ci95_low": stat.ci_low, "sum_rate_ci95_high": stat.ci_high})
    return out


def table2_markdown(table: list[dict[str, Any]], study: FLImbalanceStudy) -> str:
    def cell(row: dict[str, Any], metric: str, scale: float = 1.0) -> str:
        if metric not in row:
            return "-"
        text = f"{row[metric] * scale:.2f}"
        if row.get(f"{metric}_ci95_low") is not None:
            text += f" ± {(row[f'{metric}_ci95_high'] - row[metric]) * scale:.2f}"
        return text

    header = "| strategy | " + " | ".join(f"{s}: sum rate | {s}: exact match [%]" for s in study.settings) + " |"
    lines = [header, "|---|" + "---|---|" * len(study.settings)]
    for entry in study.strategies:
        cells = []
        for setting in study.settings:
            row = next(r for r in table if r["strategy"] == entry.label and r["setting"] == setting)
            cells += [cell(row, "sum_rate"), cell(row, "exact_match", 100.0)]
        lines.append(f"| {entry.label} | " + " | ".join(cells) + " |")
    seeds = len(study.seeds)
    note = (f"\nSum rate [bit/s/Hz] of GBA-RSU on the predicted feedback and exact-match accuracy of the W-bit "
            f"feedback, held-out snapshots; {'mean ± 95 % CI half-width over ' + str(seeds) + ' seeds' if seeds > 1 else 'one seed (no CI: add seeds)'}; "
            f"profile {study.profile!r}.\n")
    return "\n".join(lines) + "\n" + note


def plot_table2(table: list[dict[str, Any]], study: FLImbalanceStudy, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(study.strategies)
    x = np.arange(len(study.settings))
    for axis, metric, scale, label in ((axes[0], "sum_rate", 1.0, "sum rate [bit/s/Hz]"),
                                       (axes[1], "exact_match", 100.0, "exact-match accuracy [%]")):
        for index, entry in enumerate(study.strategies):
            rows = [next(r for r in table if r["strategy"] == entry.label and r["setting"] == s) for s in study.settings]
            values = [r.get(metric, np.nan) * scale for r in rows]
            errors = [((r[metric] - r[f"{metric}_ci95_low"]) * scale) if r.get(f"{metric}_ci95_low") is not None
                      else 0.0 for r in rows]
            axis.bar(x + (index - (len(study.strategies) - 1) / 2) * width, values, width, yerr=errors,
                     label=entry.label, capsize=3)
        axis.set_xticks(x, study.settings)
        axis.set_ylabel(label)
        axis.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle(f"Seed 002 Table II shape on FLASH-like data ({study.profile} profile, {len(study.seeds)} seed(s))")
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out


def plot_fig6(rows: list[dict[str, Any]], study: FLImbalanceStudy, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for axis, series in zip(axes, FIG6_SERIES):
        for entry in study.strategies:
            mine = sorted((r for r in rows if r["strategy"] == entry.label and r["series"] == series),
                          key=lambda r: -r["completeness"])
            axis.plot([r["completeness"] for r in mine], [r["sum_rate"] for r in mine], marker="o", label=entry.label)
        axis.invert_xaxis()
        axis.set(xlabel=f"completeness of {series} at test time", title=f"{series} missing ({study.fig6.mode})")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("sum rate [bit/s/Hz]")
    axes[0].legend(fontsize=8)
    figure.suptitle(f"Seed 002 Fig. 6 shape: models of the {study.fig6.setting} setting")
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else (f"{row[k]:.6g}" if isinstance(row[k], float)
                                                                else row[k])) for k in columns})
