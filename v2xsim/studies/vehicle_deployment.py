"""GBA-Vehicle study: what the sensors carry, and Table V of seed 002 (deployment
strategies under missing sensors).

1. A FLASH-like data set is generated (or reused) for the study's road and radio.
2. GBA-Vehicle is trained centrally (the FL upper bound "UB") on the training trials,
   once with every sensor and once on GPS alone.
   A third model is trained with every sensor always present (no modality dropout), as
   the paper's UB, to show what pruning-aware training adds, and one more per extra
   fusion rule in ``fusions`` (by default every rule of
   :data:`~v2xsim.models.gba_vehicle.FUSIONS`: blocks added, averaged, or each
   batch-normalised then added), to show what the fusion rule does to the deployments.
3. On the held-out trials it reports, per sensor set (all, L-G, R-G, G) and deployment
   (pruning / sensor / model): bit accuracy, exact-match accuracy, top-1 beam hit,
   overall and per FLASH category, and the sum rate GBA-RSU reaches with the predicted
   feedback of all vehicles of each snapshot (true channels), next to the sum rate with
   the true feedback and the oracle. A second table compares the fusion rules (the
   all-sensor models, pruning deployment) with LoS / NLoS splits.
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

SENSOR_SET_NAMES = {("gps", "image", "lidar"): "R-L-G", ("gps", "lidar"): "L-G", ("gps", "image"): "R-G",
                    ("gps",): "G"}


class VehicleStudy(BaseModel):
    """A GBA-Vehicle study file (``study = "vehicle_deployment"``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    study: str = "vehicle_deployment"
    name: str = "vehicle_deployment"
    description: str = ""
    seed: int = 0
    road: PluginOptions = Field(default_factory=dict)
    radio: PluginOptions = Field(default_factory=dict)
    data: PluginOptions = Field(default_factory=dict)
    training: PluginOptions = Field(default_factory=dict)
    rsu: PluginOptions = Field(default_factory=dict)
    sensor_sets: list[list[str]] = Field(
        default_factory=lambda: [["gps", "image", "lidar"], ["gps", "lidar"], ["gps", "image"], ["gps"]], min_length=1)
    deployments: list[str] = Field(default_factory=lambda: ["pruning", "sensor", "model"], min_length=1)
    gps_only_baseline: bool = True
    no_dropout_baseline: bool = True
    #: fusion rules compared in Table V: the main model uses ``[training] fusion``, every
    #: other rule listed trains one more all-sensor model. None: every rule in FUSIONS.
    fusions: list[str] | None = None
    #: deprecated (before ``fusions``): true = also the other of "sum" / "mean", false = none
    fusion_baseline: bool | None = None
    test_fraction: float = Field(0.2, gt=0, lt=1)

    def extra_fusions(self, trained: str) -> list[str]:
        """The fusion rules trained besides ``trained`` (the ``[training] fusion``)."""
        from v2xsim.models.gba_vehicle import FUSIONS

        if self.fusions is not None:
            wanted = self.fusions
        elif self.fusion_baseline is None:
            wanted = list(FUSIONS)
        else:
            wanted = ["sum" if trained == "mean" else "mean"] if self.fusion_baseline else []
        return [f for f in dict.fromkeys(wanted) if f != trained]


def load_vehicle_study(data: dict[str, Any], path: Path) -> VehicleStudy:
    """Validate an already parsed study file."""
    from v2xsim.models.gba_vehicle import DEPLOYMENTS, FUSIONS, MODALITIES
    from v2xsim.config import format_validation_error
    from v2xsim.studies import check_site_sections

    try:
        study = VehicleStudy.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{path}: {format_validation_error(error)}") from None
    check_site_sections(path, study.road, study.radio)
    for index, sensors in enumerate(study.sensor_sets):
        if not sensors or any(s not in MODALITIES for s in sensors):
            raise ConfigError(f"{path}: sensor_sets[{index}]: use a non-empty subset of {', '.join(MODALITIES)}")
    for name in study.deployments:
        if name not in DEPLOYMENTS:
            raise ConfigError(f"{path}: deployments: unknown {name!r}; valid: {', '.join(DEPLOYMENTS)}")
    if study.fusions is not None and study.fusion_baseline is not None:
        raise ConfigError(f"{path}: fusion_baseline: replaced by fusions (list the fusion rules to compare); "
                          "give only fusions")
    for name in study.fusions or ():
        if name not in FUSIONS:
            raise ConfigError(f"{path}: fusions: unknown {name!r}; valid: {', '.join(FUSIONS)}")
    return study


def oracle_sum_rates(channels: np.ndarray, *, p_max: float, noise_power: float, codebook: np.ndarray) -> np.ndarray:
    """Sum rate [bit/s/Hz] of the oracle scheme per snapshot."""
    from v2xsim.schemes.base import Observation
    from v2xsim.metrics import sum_rate
    from v2xsim.registry import SCHEME

    oracle = SCHEME.create("oracle")
    rates = np.empty(len(channels))
    for s, h in enumerate(channels):
        allocation = oracle.allocate(Observation(codebook=codebook, p_max=p_max, noise_power=noise_power, channels=h))
        rates[s] = sum_rate(h, allocation.precoders(codebook), noise_power)
    return rates


def run_vehicle_study(study: VehicleStudy, out_dir: Path, *, quiet: bool = False) -> dict[str, Any]:
    """Generate / reuse data, train / reuse models, evaluate, write table.csv, table.md,
    summary.json and a plot."""
    from v2xsim import build
    from v2xsim.config import RadioConfig, RoadConfig
    from v2xsim.data.flash_like import (FlashLikeConfig, dataset_dir, generate_flash_like, load_flash_like,
                                         snapshot_rows, trial_split)
    from v2xsim.store import ModelStore
    from v2xsim.training.rsu import DataConfig, RSUTrainingConfig, feedback_sum_rates, train_rsu
    from v2xsim.training.vehicle import SensorSet, VehicleTrainingConfig, evaluate_vehicle, train_vehicle

    road, radio_config = RoadConfig(**study.road), RadioConfig(**study.radio)
    try:
        data_config = FlashLikeConfig(**{"seed": study.seed, **study.data}, road=road.model_dump(),
                                      radio=radio_config.model_dump())
        vehicle_config = VehicleTrainingConfig(**{"seed": study.seed, **study.training})
        rsu_config = RSUTrainingConfig(data=DataConfig(road=road.model_dump(), radio=radio_config.model_dump()),
                                       **study.rsu)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"study options: {error}") from None
    store = ModelStore(quiet=quiet)
    radio = build.site(road, radio_config).radio
    root = dataset_dir(data_config, store.directory)
    dataset = generate_flash_like(root, data_config, quiet=quiet)
    episodes = load_flash_like(root)
    train_trials, test_trials = trial_split(episodes, test_fraction=study.test_fraction, seed=study.seed)
    train_index, _ = snapshot_rows(episodes, train_trials)
    test_index, snapshots = snapshot_rows(episodes, test_trials)
    train_set = SensorSet.from_episodes(episodes, train_index)
    test_set = SensorSet.from_episodes(episodes, test_index)
    channels = np.concatenate([episodes[e]["channel"][test_index[e]] for e in sorted(episodes)])[snapshots]
    los = np.concatenate([episodes[e]["los"][test_index[e]] for e in sorted(episodes)])
    codebook = radio.codebook
    rsu_model = train_rsu(rsu_config, store=store)
    rate_args = dict(p_max=radio.p_max, noise_power=radio.noise_power, codebook=codebook)
    true_rate = feedback_sum_rates(rsu_model, test_set.feedback[snapshots], channels, **rate_args)
    oracle_rate = oracle_sum_rates(channels, **rate_args)

    models = {"all sensors": train_vehicle(vehicle_config, train_set, store=store)}
    if study.no_dropout_baseline and vehicle_config.modality_dropout > 0:
        # the paper's centralised UB: always every sensor in training, nothing pruned
        plain = VehicleTrainingConfig(**{**vehicle_config.__dict__, "modality_dropout": 0.0})
        models["all sensors, no modality dropout"] = train_vehicle(plain, train_set, store=store)
    fusion_of = {name: vehicle_config.fusion for name in models}
    for other in study.extra_fusions(vehicle_config.fusion):
        swapped = VehicleTrainingConfig(**{**vehicle_config.__dict__, "fusion": other})
        models[f"all sensors, {other} fusion"] = train_vehicle(swapped, train_set, store=store)
        fusion_of[f"all sensors, {other} fusion"] = other
    if study.gps_only_baseline:
        gps_config = VehicleTrainingConfig(**{**vehicle_config.__dict__, "modalities": ("gps",)})
        models["GPS only"] = train_vehicle(gps_config, train_set, store=store)
        fusion_of["GPS only"] = vehicle_config.fusion
    # snapshots (all cars at one instant of one trial) in which every car has LoS, and the others
    los_snapshots = los[snapshots].all(axis=1)

    rows: list[dict[str, Any]] = []
    for trained, model in models.items():
        for sensors in study.sensor_sets:
            usable = tuple(m for m in model.modalities if m in sensors)
            if not usable:
                continue
            if trained == "GPS only" and tuple(sorted(sensors)) != ("gps",):
                continue
            for deployment in study.deployments:
                if trained == "GPS only" and deployment != "pruning":
                    continue
                result = evaluate_vehicle(model, test_set, sensors=sensors, deployment=deployment)
                rates = feedback_sum_rates(rsu_model, result.feedback[snapshots], channels, **rate_args)
                row = {"trained_on": trained, "sensors": SENSOR_SET_NAMES.get(tuple(sorted(sensors)), "-".join(sensors)),
                       "deployment": deployment, **result.as_dict(), "sum_rate": float(rates.mean())}
                correct = result.feedback == test_set.feedback
                row["bit_accuracy_los"] = float(correct[los].mean()) if los.any() else 0.0
                row["bit_accuracy_nlos"] = float(correct[~los].mean()) if (~los).any() else 0.0
                row["exact_match_nlos"] = float(correct[~los].all(axis=1).mean()) if (~los).any() else 0.0
                row["exact_match_los"] = float(correct[los].all(axis=1).mean()) if los.any() else 0.0
                row["top1_beam_hit_los"] = _top1(result.probabilities[los], test_set.rss[los])
                row["top1_beam_hit_nlos"] = _top1(result.probabilities[~los], test_set.rss[~los])
                row["sum_rate_los_snapshots"] = float(rates[los_snapshots].mean()) if los_snapshots.any() else 0.0
                row["sum_rate_nlos_snapshots"] = \
                    float(rates[~los_snapshots].mean()) if (~los_snapshots).any() else 0.0
                row["fusion"] = fusion_of[trained]
                for category in sorted(np.unique(test_set.category)):
                    mask = test_set.category == category
                    row[f"bit_accuracy_cat{category}"] = float((result.feedback[mask] == test_set.feedback[mask]).mean())
                    row[f"top1_beam_hit_cat{category}"] = _top1(result.probabilities[mask], test_set.rss[mask])
                rows.append(row)
        if not quiet:
            print(f"evaluated GBA-Vehicle ({trained})", file=sys.stderr)
    reference = {"sum_rate_true_feedback": float(true_rate.mean()), "sum_rate_oracle": float(oracle_rate.mean()),
                 "test_snapshots": int(len(snapshots)), "vehicles_per_snapshot": int(snapshots.shape[1]),
                 "los_snapshots": int(los_snapshots.sum()), "nlos_samples": int((~los).sum()),
                 "nlos_samples_heard": int((~los & (test_set.rss.max(axis=1) > 0)).sum()),
                 "test_samples": int(len(los))}
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "table.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    table = markdown_table(rows, reference) + "\n" + fusion_table(rows, reference)
    (out_dir / "table.md").write_text(table)
    summary = {"study": study.name, "configuration": study.model_dump(mode="json"),
               "dataset": {k: v for k, v in dataset.items() if k != "config"}, "data_config": dataset["config"],
               "vehicle_training": vehicle_config.__dict__, "reference": reference, "rows": rows,
               "model_scale": "paper feature sizes (256/256/512); CPU-scaled epochs and image width, see vehicle_training"}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=list) + "\n")
    plot_deployments(rows, reference, out_dir, title=study.name)
    if not quiet:
        print(table)
    return summary


def _top1(scores: np.ndarray, rss: np.ndarray) -> float:
    from v2xsim.metrics import top1_beam_hit

    value = top1_beam_hit(scores, rss)
    return 0.0 if np.isnan(value) else value


def markdown_table(rows: list[dict[str, Any]], reference: dict[str, Any]) -> str:
    lines = ["| trained on | sensors | deployment | bit acc. | bit acc. LoS | bit acc. NLoS | exact match | top-1 hit "
             "| exact match NLoS | sum rate [bit/s/Hz] |", "|---" * 10 + "|"]
    for r in rows:
        lines.append(f"| {r['trained_on']} | {r['sensors']} | {r['deployment']} | {r['bit_accuracy']:.3f} | "
                     f"{r['bit_accuracy_los']:.3f} | {r['bit_accuracy_nlos']:.3f} | {r['exact_match']:.3f} | "
                     f"{r['top1_beam_hit']:.3f} | {r['exact_match_nlos']:.3f} | {r['sum_rate']:.2f} |")
    lines.append(f"| true feedback | - | - | 1 | 1 | 1 | 1 | - | 1 | {reference['sum_rate_true_feedback']:.2f} |")
    lines.append(f"| oracle (perfect CSI) | - | - | - | - | - | - | - | - | {reference['sum_rate_oracle']:.2f} |")
    return "\n".join(lines) + "\n"


def fusion_table(rows: list[dict[str, Any]], reference: dict[str, Any]) -> str:
    """The fusion rules side by side: the all-sensor model of each rule, pruning deployment
    (the paper's), every sensor set; exact match, top-1 beam hit and bit accuracy on LoS /
    NLoS samples, sum rate over all snapshots and over the snapshots where every car has
    LoS / at least one car has not."""
    chosen = [r for r in rows if r["trained_on"].startswith("all sensors") and "no modality dropout" not in
              r["trained_on"] and r["deployment"] == "pruning"]
    if not chosen:
        return ""
    lines = [f"Fusion rules (all-sensor models, pruning deployment; {reference['test_samples']} test samples, "
             f"{reference['nlos_samples']} NLoS ({reference.get('nlos_samples_heard', '?')} with a beam heard; "
             f"top-1 counts only those); {reference['test_snapshots']} snapshots, "
             f"{reference['los_snapshots']} with every car in LoS)", "",
             "| fusion | sensors | exact match | exact LoS | exact NLoS | top-1 | top-1 LoS | top-1 NLoS | bit acc. "
             "| bit acc. LoS | bit acc. NLoS | sum rate | sum rate LoS snap. | sum rate NLoS snap. |",
             "|---" * 14 + "|"]
    # a split without samples shows "-" (the CSV keeps 0 there, as for the other split columns)
    has = {"los": reference["nlos_samples"] < reference["test_samples"], "nlos": reference["nlos_samples"] > 0,
           "los_snapshots": reference["los_snapshots"] > 0,
           "nlos_snapshots": reference["los_snapshots"] < reference["test_snapshots"]}

    def cell(r: dict[str, Any], key: str, split: str, digits: int = 3) -> str:
        return f"{r[key]:.{digits}f}" if has[split] else "-"

    order = list(dict.fromkeys(r["fusion"] for r in chosen))
    for fusion in order:
        for r in (r for r in chosen if r["fusion"] == fusion):
            lines.append(
                f"| {fusion} | {r['sensors']} | {r['exact_match']:.3f} | {cell(r, 'exact_match_los', 'los')} | "
                f"{cell(r, 'exact_match_nlos', 'nlos')} | {r['top1_beam_hit']:.3f} | "
                f"{cell(r, 'top1_beam_hit_los', 'los')} | {cell(r, 'top1_beam_hit_nlos', 'nlos')} | "
                f"{r['bit_accuracy']:.3f} | {cell(r, 'bit_accuracy_los', 'los')} | "
                f"{cell(r, 'bit_accuracy_nlos', 'nlos')} | {r['sum_rate']:.2f} | "
                f"{cell(r, 'sum_rate_los_snapshots', 'los_snapshots', 2)} | "
                f"{cell(r, 'sum_rate_nlos_snapshots', 'nlos_snapshots', 2)} |")
    return "\n".join(lines) + "\n"


def plot_deployments(rows: list[dict[str, Any]], reference: dict[str, Any], out_dir: Path, *, title: str) -> Path:
    """Sum rate per sensor set, one bar per deployment (Table V shape)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [r for r in rows if r["trained_on"] == "all sensors"]
    sets = list(dict.fromkeys(r["sensors"] for r in mine))
    deployments = list(dict.fromkeys(r["deployment"] for r in mine))
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    width = 0.8 / max(len(deployments), 1)
    for j, deployment in enumerate(deployments):
        values = [next((r["sum_rate"] for r in mine if r["sensors"] == s and r["deployment"] == deployment), 0.0)
                  for s in sets]
        ax.bar(np.arange(len(sets)) + (j - (len(deployments) - 1) / 2) * width, values, width, label=f"{deployment}-based")
    ax.axhline(reference["sum_rate_true_feedback"], color="k", linestyle="--", label="true feedback")
    ax.set_xticks(np.arange(len(sets)), sets)
    ax.set_ylabel("sum rate [bit/s/Hz]")
    ax.set_title(f"{title}: deployment strategies (Table V of seed 002)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / "deployment.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
