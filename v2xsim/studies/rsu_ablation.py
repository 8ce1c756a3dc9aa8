"""RSU-side ablations of seed 002: Table III (beam projection), Table IV (random dropping)
and Fig. 5 (GNN vs MLP vs Transformer, with and without vehicle reordering).

Every variant is trained (or loaded from the cache) on FLASH-like drops with ground-truth
feedback, then evaluated on held-out drops per K, with the vehicles in road order and
randomly reordered; classical schemes (``baselines``: by default ``zf_sweep``, the paper's
``wmmse_ce``, the stronger ``wmmse_cb`` and the ``oracle``) are evaluated on the same drops.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from v2xsim.config import PluginOptions
from v2xsim.errors import ConfigError


class VariantConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    label: str
    architecture: str = "gnn"
    options: PluginOptions = Field(default_factory=dict)
    #: training graphs per K for this variant (default: the study's ``samples_per_k``);
    #: the held-out test graphs are the study's whatever this is
    train_samples_per_k: int | None = Field(None, ge=1)


class RSUStudy(BaseModel):
    """An RSU ablation study file (``study = "rsu_ablation"``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    study: str = "rsu_ablation"
    name: str = "rsu_ablation"
    description: str = ""
    seed: int = 0
    num_vehicles: list[int] = Field(default_factory=lambda: list(range(1, 11)), min_length=1)
    samples_per_k: int = Field(1000, ge=10)
    training: PluginOptions = Field(default_factory=dict)
    radio: PluginOptions = Field(default_factory=dict)
    road: PluginOptions = Field(default_factory=dict)
    variants: list[VariantConfig] = Field(min_length=1)
    baselines: list[str] = Field(default_factory=lambda: ["zf_sweep", "wmmse_ce", "wmmse_cb", "oracle"])


def load_study(path: str | Path, overrides: list[str] | None = None) -> RSUStudy:
    from v2xsim.config import format_validation_error
    from v2xsim.studies import check_site_sections, read_study_file

    path = Path(path)
    data = read_study_file(path, overrides)
    try:
        study = RSUStudy.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{path}: {format_validation_error(error)}") from None
    check_site_sections(path, study.road, study.radio)
    if study.study != "rsu_ablation":
        raise ConfigError(f"{path}: study: expected 'rsu_ablation', got {study.study!r}")
    if any(k < 1 for k in study.num_vehicles):
        raise ConfigError(f"{path}: num_vehicles: every K must be >= 1")
    return study


def run_study(study: RSUStudy, out_dir: Path, *, quiet: bool = False) -> dict[str, Any]:
    """Train / load every variant, evaluate, write table.csv, table.md, summary.json, plots."""
    from v2xsim.config import RadioConfig, RoadConfig
    from v2xsim.store import ModelStore
    from v2xsim.training.rsu import DataConfig, RSUTrainingConfig, cached_drops, rsu_sum_rates, train_rsu

    store = ModelStore(quiet=quiet)

    ks = sorted(set(study.num_vehicles))
    data = DataConfig(road=RoadConfig(**study.road).model_dump(), radio=RadioConfig(**study.radio).model_dump(),
                      num_vehicles=tuple(ks), samples_per_k=study.samples_per_k, seed=study.seed)
    test = cached_drops(data, split="test", store=store)
    per_k_test = {k: test.with_k(k) for k in ks}
    rows: list[dict[str, Any]] = []

    def record(label: str, k: int, rates: np.ndarray, reordered: bool, architecture: str = "baseline") -> None:
        rows.append({"variant": label, "architecture": architecture, "num_vehicles": k, "reordered": reordered,
                     "sum_rate": float(np.mean(rates)), "samples": int(len(rates))})

    for name in study.baselines:
        for k in ks:
            record(name, k, baseline_sum_rates(per_k_test[k], name), False)
        if not quiet:
            print(f"evaluated {name}", file=sys.stderr)
    for variant in study.variants:
        options = {**study.training, **variant.options, "architecture": variant.architecture}
        train_data = data
        if variant.train_samples_per_k is not None:
            train_data = DataConfig(**{**data.__dict__, "samples_per_k": variant.train_samples_per_k})
        try:
            if variant.architecture == "mlp":
                # one network per K, each trained only on drops of that K
                for k in ks:
                    config = RSUTrainingConfig(data=DataConfig(**{**train_data.__dict__, "num_vehicles": (k,)}),
                                               **options)
                    model = train_rsu(config, store=store)
                    for reordered in (False, True):
                        record(variant.label, k, rsu_sum_rates(model, per_k_test[k], reorder=reordered,
                                                               seed=study.seed), reordered, "mlp")
                continue
            model = train_rsu(RSUTrainingConfig(data=train_data, **options), store=store)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"variants.{variant.label}: {error}") from None
        for k in ks:
            for reordered in (False, True):
                record(variant.label, k, rsu_sum_rates(model, per_k_test[k], reorder=reordered, seed=study.seed),
                       reordered, variant.architecture)
        if not quiet:
            print(f"evaluated {variant.label}", file=sys.stderr)
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "table.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "sum_rate": f"{row['sum_rate']:.6g}"})
    (out_dir / "table.md").write_text(markdown_table(rows, ks))
    summary = {"study": study.name, "configuration": study.model_dump(mode="json"), "rows": rows}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_study(rows, ks, out_dir, title=study.name)
    if not quiet:
        print(markdown_table(rows, ks))
    return summary


def baseline_sum_rates(drops, scheme_name: str) -> np.ndarray:
    """Sum rate [bit/s/Hz] of a classical scheme on every drop (true channels, noise 1):
    the scheme sees the drop's sweep RSS and (genie schemes) its channels."""
    from v2xsim.metrics import rss_vector, user_rates
    from v2xsim.registry import SCHEME
    from v2xsim.schemes.base import Observation

    scheme = SCHEME.create(scheme_name)
    out = np.zeros(len(drops.mask))
    for index in range(len(drops.mask)):
        h = drops.channels[index][drops.mask[index]].astype(complex)
        observation = Observation(codebook=drops.codebook, p_max=drops.p_max, noise_power=1.0,
                                  feedback_threshold=drops.threshold, channels=h,
                                  rss=rss_vector(h, drops.codebook, drops.p_max),
                                  feedback=drops.feedback[index][drops.mask[index]])
        allocation = scheme.allocate(observation)
        out[index] = user_rates(h, allocation.precoders(drops.codebook), 1.0).sum()
    return out


def markdown_table(rows: list[dict[str, Any]], ks: list[int]) -> str:
    """Sum rate [bit/s/Hz] per variant (rows) and K (columns), reordered variants marked."""
    lines = ["| variant | " + " | ".join(f"K={k}" for k in ks) + " |", "|---" * (len(ks) + 1) + "|"]
    seen: list[tuple[str, bool]] = []
    for row in rows:
        key = (row["variant"], row["reordered"])
        if key not in seen:
            seen.append(key)
    for label, reordered in seen:
        values = {r["num_vehicles"]: r["sum_rate"] for r in rows if r["variant"] == label and r["reordered"] == reordered}
        name = f"{label} (reordered)" if reordered else label
        lines.append(f"| {name} | " + " | ".join(f"{values[k]:.2f}" if k in values else "-" for k in ks) + " |")
    return "\n".join(lines) + "\n"


def plot_study(rows: list[dict[str, Any]], ks: list[int], out_dir: Path, *, title: str) -> Path:
    """Left: every variant and baseline with vehicles in road order (Tables III / IV).
    Right: the first GNN variant and every non-GNN variant, road order (solid) vs randomly
    reordered (dashed) (Fig. 5)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from v2xsim.plots import LINE_STYLES

    def series(label: str, reordered: bool) -> tuple[list[int], list[float]]:
        points = sorted((r["num_vehicles"], r["sum_rate"]) for r in rows
                        if r["variant"] == label and r["reordered"] == reordered)
        return [p[0] for p in points], [p[1] for p in points]

    labels = list(dict.fromkeys(r["variant"] for r in rows))
    architecture = {r["variant"]: r["architecture"] for r in rows}
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2))
    for index, label in enumerate(labels):
        marker, line = LINE_STYLES[index % len(LINE_STYLES)]
        left.plot(*series(label, False), marker=marker, linestyle=line, color=colours[index % len(colours)],
                  label=label)
    gnn = [label for label in labels if architecture[label] == "gnn"][:1]
    others = [label for label in labels if architecture[label] not in ("gnn", "baseline")]
    for index, label in enumerate(gnn + others):
        colour = colours[(labels.index(label)) % len(colours)]
        right.plot(*series(label, False), marker="o", color=colour, label=f"{label}, road order")
        right.plot(*series(label, True), marker="x", linestyle="--", color=colour, label=f"{label}, reordered")
    left.set_title(f"{title}: variants (road order)")
    right.set_title("vehicle reordering (Fig. 5 of seed 002)")
    for ax in (left, right):
        ax.set_xlabel("number of vehicles K")
        ax.set_ylabel("sum rate [bit/s/Hz]")
        ax.set_xticks(ks)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path = out_dir / "sum_rate_vs_k.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
