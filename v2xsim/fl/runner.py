"""Federated training of GBA-Vehicle, round by round, with a checkpoint after every round.

One FLASH-like data set per experiment (the imbalance setting picks the generator's
knobs). Each episode is one vehicle; whole trials are held out for testing (the paper
holds out 20 % of each vehicle's data), so the held-out snapshots still have every vehicle
at the same time and GBA-RSU's sum rate can be computed on the predicted feedback.

Per round: the strategy configures the round, every selected vehicle does its local work
(:class:`v2xsim.fl.client.VehicleClient`), the strategy aggregates, the global model is
evaluated (:mod:`v2xsim.fl.evaluation`), a row goes to ``rounds.csv``, and the whole state
(global model, every vehicle's model, optimiser, harmonious branch and synthetic data,
the strategy's server-side state and every random generator) is written to
``checkpoint.pt``. A run killed at any point and started again with the same experiment
and output directory resumes after the last completed round and ends with the same
weights as an uninterrupted run.
"""

from __future__ import annotations

import copy
import csv
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from v2xsim.cache import config_hash
from v2xsim.errors import ConfigError
from v2xsim.fl.aggregation import GROUPS, group_sizes, payload_bytes
from v2xsim.fl.base import ClientInfo, FitFailure
from v2xsim.fl.client import DAOptions, LocalTraining, ServerContext, VehicleClient, client_modalities
from v2xsim.fl.evaluation import HeldOut, evaluate_global
from v2xsim.fl.experiment import SETTINGS, FLExperiment
from v2xsim.fl.strategies import POOLED_CLIENT
from v2xsim.formats import MODALITIES
from v2xsim.progress import silenced
from v2xsim.store import ModelStore, atomic_save, load_saved
from v2xsim.tables import json_default, table_cell

CHECKPOINT_FORMAT = 1
CHECKPOINT_FILE = "checkpoint.pt"
ROUNDS_FILE = "rounds.csv"
MODEL_FILE = "model.pt"
#: seconds between progress lines
PROGRESS_EVERY_S = 2.0
#: DA+ generation report (means over the vehicles that generated samples)
SYNTHESIS_COLUMNS = ["synthetic_samples", "synthetic_bn_loss_start", "synthetic_bn_loss_end",
                     "synthetic_target_match"]
ROUND_COLUMNS = ["round", "stage", "participants", "failures", "rejected", "bit_accuracy", "exact_match",
                 "top1_beam_hit", "sum_rate", "zeta", *[f"phi_{m}" for m in MODALITIES],
                 *[f"rate_{m}" for m in MODALITIES], "bce", *[f"drop_{m}" for m in MODALITIES],
                 "bytes_down", "bytes_up", "bytes_da", *SYNTHESIS_COLUMNS]


@dataclass
class Prepared:
    """Everything an experiment derives before its first round (not round state)."""

    experiment: FLExperiment
    training: dict[str, Any]
    data_summary: dict[str, Any]
    vehicle_data: dict[int, Any]
    pooled_data: Any
    held_out: HeldOut
    server: ServerContext
    initial_model: Any
    vehicle_config: Any
    models_used: dict[str, str]


def data_config(experiment: FLExperiment):
    """The FLASH-like data set of an experiment (setting, then its own ``[data]`` values)."""
    from v2xsim.config import RadioConfig, RoadConfig
    from v2xsim.data.flash_like import FlashLikeConfig

    road, radio = RoadConfig(**experiment.road), RadioConfig(**experiment.radio)
    try:
        return FlashLikeConfig(**{"seed": experiment.seed, **SETTINGS[experiment.setting], **experiment.data},
                               road=road.model_dump(), radio=radio.model_dump())
    except (TypeError, ValueError) as error:
        raise ConfigError(f"data: {error}") from None


def prepare(experiment: FLExperiment, *, store: ModelStore | None = None, quiet: bool = False) -> Prepared:
    """Generate / reuse the data set and GBA-RSU, split the data per vehicle, build the
    held-out bed, the RSU's label statistics and the initial global model."""
    from v2xsim import build
    from v2xsim.config import RadioConfig, RoadConfig
    from v2xsim.data.flash_like import dataset_dir, generate_flash_like, load_flash_like, snapshot_rows, trial_split
    from v2xsim.metrics import label_overlap
    from v2xsim.training.rsu import DataConfig, RSUTrainingConfig, train_rsu
    from v2xsim.training.vehicle import SensorSet, VehicleTrainingConfig, build_vehicle_model

    store = store or ModelStore(quiet=quiet)
    training = experiment.resolved_training()
    road, radio_config = RoadConfig(**experiment.road), RadioConfig(**experiment.radio)
    config = data_config(experiment)
    try:
        vehicle_config = VehicleTrainingConfig(**{**_profile_model(experiment), **experiment.model,
                                                  "seed": experiment.seed})
        rsu_options = dict(experiment.rsu)
        rsu_data = DataConfig(road=road.model_dump(), radio=radio_config.model_dump(), **rsu_options.pop("data", {}))
        rsu_config = RSUTrainingConfig(data=rsu_data, **rsu_options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"model / rsu options: {error}") from None
    radio = build.site(road, radio_config).radio
    root = dataset_dir(config, store.directory)
    summary = generate_flash_like(root, config, quiet=quiet)
    episodes = load_flash_like(root)
    if len(episodes) < 2:
        raise ConfigError(f"data.num_episodes: FL needs at least 2 vehicles, got {len(episodes)}")
    train_trials, test_trials = trial_split(episodes, test_fraction=experiment.test_fraction, seed=experiment.seed)
    train_index, _ = snapshot_rows(episodes, train_trials)
    test_index, snapshots = snapshot_rows(episodes, test_trials)
    vehicle_data = {e: SensorSet.from_episodes({e: episodes[e]}, {e: train_index[e]}) for e in sorted(episodes)}
    pooled = SensorSet.from_episodes(episodes, train_index)
    test_set = SensorSet.from_episodes(episodes, test_index)
    channels = np.concatenate([episodes[e]["channel"][test_index[e]] for e in sorted(episodes)])[snapshots]
    rsu = train_rsu(rsu_config, store=store).eval()
    for parameter in rsu.parameters():
        parameter.requires_grad_(False)
    held_out = HeldOut(test_set=test_set, snapshots=snapshots, channels=channels, codebook=radio.codebook,
                       p_max=radio.p_max, noise_power=radio.noise_power, noise_mw=radio.noise_power * 1e3, rsu=rsu)
    labels, rates = label_statistics(pooled, rsu, noise_mw=held_out.noise_mw, p_max=radio.p_max)
    server = ServerContext(rsu=rsu, noise_mw=held_out.noise_mw, p_max=radio.p_max, global_labels=labels,
                           label_rates=rates, num_vehicles=len(vehicle_data))
    torch.manual_seed(experiment.seed)
    model = build_vehicle_model(vehicle_config, pooled.num_beams)
    gps = torch.from_numpy(pooled.gps)
    if "gps" in model.branches:  # the coverage area's centre and extent: public, not private data
        model.branches["gps"].shift.copy_(gps.mean(dim=0))
        model.branches["gps"].scale.copy_(gps.std(dim=0).clamp_min(1e-3))
    data_summary = {key: summary[key] for key in ("num_samples", "num_beams", "zeta", "kappa", "los_share")
                    if key in summary}
    data_summary["train_zeta"] = float(label_overlap([d.feedback for d in vehicle_data.values()]))
    data_summary["vehicles"] = vehicle_statistics(vehicle_data, model)
    data_summary["test_samples"] = len(test_set)
    data_summary["test_snapshots"] = int(len(snapshots))
    return Prepared(experiment=experiment, training=training, data_summary=data_summary, vehicle_data=vehicle_data,
                    pooled_data=pooled, held_out=held_out, server=server, initial_model=model.eval(),
                    vehicle_config=vehicle_config, models_used=dict(store.used))


def vehicle_statistics(vehicle_data: dict[int, Any], model) -> dict[int, dict[str, Any]]:
    """Per vehicle: training samples, sensors, modality completeness kappa (Eq. 15: samples
    with the sensor / samples with the most complete sensor) and its label overlap zeta
    with the other vehicles (Eq. 17 restricted to the pairs it is part of)."""
    from v2xsim.metrics import label_overlap

    out = {}
    for e, d in vehicle_data.items():
        counts = d.available.sum(axis=0).astype(float)
        kappa = {m: float(counts[i] / counts.max()) if counts.max() > 0 else 0.0 for i, m in enumerate(MODALITIES)}
        others = [label_overlap([d.feedback, o.feedback]) for f, o in vehicle_data.items() if f != e]
        out[int(e)] = {"train_samples": len(d), "modalities": list(client_modalities(d, model)), "kappa": kappa,
                       "zeta": float(np.mean(others)) if others else None}
    return out


def _profile_model(experiment: FLExperiment) -> dict[str, Any]:
    from v2xsim.fl.experiment import PROFILES

    return {"image_width": PROFILES[experiment.profile]["image_width"]}


@torch.inference_mode()
def label_statistics(data, rsu, *, noise_mw: float, p_max: float) -> tuple[np.ndarray, np.ndarray]:
    """The label combinations the RSU has seen in the vehicles' feedback, (L, W), and the
    mean rate [bit/s/Hz] it reached serving each one alone, (L,) (DA+'s ranking)."""
    from v2xsim.fl.da_minus import single_vehicle_rates

    feedback = torch.from_numpy(data.feedback)
    allocation = rsu(feedback[:, None, :], p_max)[:, 0, :]
    rates = single_vehicle_rates(allocation, torch.from_numpy(data.rss), noise_mw=noise_mw, p_max=p_max).numpy()
    labels, inverse = np.unique(data.feedback.astype(np.uint8), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    means = np.bincount(inverse, weights=rates, minlength=len(labels)) / np.bincount(inverse, minlength=len(labels))
    return labels.astype(np.float32), means


def experiment_key(experiment: FLExperiment) -> str:
    """Names a run: a checkpoint of another experiment is never resumed."""
    return config_hash({"format": CHECKPOINT_FORMAT,
                        "experiment": experiment.model_dump(mode="json", exclude={"experiment"})})


def prepared_key(experiment: FLExperiment) -> str:
    """What :func:`prepare` depends on (everything but the strategy, name and text)."""
    return config_hash(experiment.model_dump(mode="json", exclude={"experiment", "strategy", "name", "description",
                                                                   "da"}))


def _clients(prepared: Prepared, experiment: FLExperiment, pooled: bool) -> dict[int, VehicleClient]:
    training = prepared.training
    local = LocalTraining(epochs=training["local_epochs"], batch_size=training["batch_size"], lr=training["lr"],
                          weight_decay=training["weight_decay"], modality_dropout=training["modality_dropout"])
    try:
        da = DAOptions(**experiment.da)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"da: {error}") from None
    data = {POOLED_CLIENT: prepared.pooled_data} if pooled else prepared.vehicle_data
    seeds = np.random.SeedSequence([experiment.seed, 7]).spawn(len(data))
    return {client: VehicleClient(client=client, data=samples, model=copy.deepcopy(prepared.initial_model),
                                  training=local, da=da, seed=int(seed.generate_state(1)[0]))
            for (client, samples), seed in zip(sorted(data.items()), seeds)}


def run_experiment(experiment: FLExperiment, out_dir: str | Path, *, store: ModelStore | None = None,
                   quiet: bool = False, stop_after_rounds: int | None = None,
                   prepared: Prepared | None = None) -> dict[str, Any]:
    """Run (or resume) an experiment into ``out_dir``: ``rounds.csv``, ``summary.json``,
    ``model.pt`` (final global state dict) and ``checkpoint.pt``. ``stop_after_rounds``
    ends this session early (as a kill would), leaving the checkpoint to resume from."""
    from v2xsim.metrics import label_overlap
    from v2xsim.registry import FL_STRATEGY

    quiet = quiet or silenced()
    out_dir = Path(out_dir)
    if prepared is not None and prepared_key(prepared.experiment) != prepared_key(experiment):
        raise ValueError("prepared comes from an experiment with other data, model, RSU or training")
    prepared = prepared or prepare(experiment, store=store, quiet=quiet)
    training = prepared.training
    rounds = int(training["rounds"])
    try:
        strategy = FL_STRATEGY.create(experiment.strategy.name, experiment.strategy.options)
        strategy.begin(num_rounds=rounds)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"strategy.options: {error}") from None
    clients = _clients(prepared, experiment, bool(getattr(strategy, "pooled", False)))
    infos = [ClientInfo(client=c.client, modalities=c.modalities, num_samples=c.num_samples)
             for c in clients.values()]
    model = copy.deepcopy(prepared.initial_model)
    global_state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = np.random.default_rng([experiment.seed, 11])
    rows: list[dict[str, Any]] = []
    done = 0
    key = experiment_key(experiment)
    checkpoint_path = out_dir / CHECKPOINT_FILE
    if checkpoint_path.exists():
        saved = load_saved(checkpoint_path)
        if saved.get("key") != key:
            raise ConfigError(f"{out_dir}: holds a run of another experiment (its {CHECKPOINT_FILE} does not match);"
                              " use another --out or delete that directory")
        done, rows, global_state = int(saved["round"]), list(saved["rows"]), saved["global"]
        rng.bit_generator.state = saved["rng"]
        for client, state in saved["clients"].items():
            clients[int(client)].load_state_dict(state)
        if saved.get("strategy") is not None and hasattr(strategy, "load_state_dict"):
            strategy.load_state_dict(saved["strategy"])
        if not quiet and done < rounds:
            print(f"resuming {experiment.name} after round {done}/{rounds}", file=sys.stderr)
    last = rounds if stop_after_rounds is None else min(rounds, done + int(stop_after_rounds))
    started, shown = time.perf_counter(), 0.0
    for server_round in range(done + 1, last + 1):
        instructions = strategy.configure_fit(server_round, infos, rng)
        results, costs, metrics = [], [], []
        for instruction in instructions:
            update, cost = clients[instruction.client].fit(global_state, instruction.config, prepared.server)
            results.append(update)
            costs.append(cost)
            metrics.append(update.metrics)
        failures: list[FitFailure] = []
        aggregated = strategy.aggregate_fit(server_round, results, failures, global_state)
        if aggregated is not None:
            global_state = {k: v.clone() for k, v in aggregated.items()}
        row = _round_row(server_round, strategy, instructions, failures, aggregated is None, costs, metrics)
        participants = [clients[i.client].data.feedback for i in instructions if i.client != POOLED_CLIENT]
        row["zeta"] = (float(label_overlap(participants)) if len(participants) > 1
                       else prepared.data_summary["train_zeta"])
        if server_round % training["evaluate_every"] == 0 or server_round == rounds:
            model.load_state_dict(global_state)
            row.update(evaluate_global(model.eval(), prepared.held_out))
        rows.append(row)
        atomic_save({"format": CHECKPOINT_FORMAT, "key": key, "round": server_round, "rows": rows,
                     "global": global_state, "rng": rng.bit_generator.state,
                     "clients": {c: client.state_dict() for c, client in clients.items()},
                     "strategy": strategy.state_dict() if hasattr(strategy, "state_dict") else None},
                    checkpoint_path)
        now = time.perf_counter()
        if not quiet and (now - shown > PROGRESS_EVERY_S or server_round == last):
            shown = now
            left = (now - started) / (server_round - done) * (last - server_round)
            accuracy = row.get("exact_match")
            shown_accuracy = "-" if accuracy is None else f"{accuracy:.3f}"
            print(f"FL {experiment.name} ({strategy.name}, {experiment.setting}): round {server_round}/{rounds}, "
                  f"exact match {shown_accuracy}, {now - started:.0f} s, about {left:.0f} s left",
                  file=sys.stderr, flush=True)
    complete = len(rows) >= rounds
    summary = _summary(prepared, experiment, strategy, rows, global_state, complete)
    _write_outputs(out_dir, rows, summary, global_state if complete else None)
    return summary


def _round_row(server_round, strategy, instructions, failures, rejected, costs, metrics) -> dict[str, Any]:
    row: dict[str, Any] = {"round": server_round, "participants": len(instructions), "failures": len(failures),
                           "rejected": int(rejected)}
    stage = getattr(strategy, "stage", None)
    row["stage"] = stage(server_round) if callable(stage) else ""
    for name in ("bytes_down", "bytes_up", "bytes_da"):
        row[name] = int(sum(c.get(name, 0) for c in costs))
    bce = [m["bce"] for m in metrics if "bce" in m]
    row["bce"] = float(np.mean(bce)) if bce else None
    for modality in MODALITIES:
        drops = [m[f"drop_{modality}"] for m in metrics if f"drop_{modality}" in m]
        row[f"drop_{modality}"] = float(np.mean(drops)) if drops else None
    for name in SYNTHESIS_COLUMNS:
        values = [m[name] for m in metrics if name in m]
        row[name] = float(np.mean(values)) if values else None
    return row


def cost_model(state: dict[str, Any]) -> dict[str, Any]:
    """Parameters per group and the bytes of a full model (float32)."""
    sizes = group_sizes(state)
    return {"values_per_group": sizes, "bytes_per_group": {g: 4 * n for g, n in sizes.items()},
            "full_model_bytes": payload_bytes(state), "groups": list(GROUPS)}


def _summary(prepared: Prepared, experiment: FLExperiment, strategy, rows, global_state,
             complete: bool) -> dict[str, Any]:
    from v2xsim.provenance import provenance

    final = rows[-1] if rows else {}
    return {"experiment": experiment.name, "strategy": strategy.name,
            "strategy_options": dict(experiment.strategy.options), "setting": experiment.setting,
            "profile": experiment.profile, "complete": complete, "rounds_done": len(rows),
            "training": prepared.training, "model": asdict(prepared.vehicle_config),
            "configuration": experiment.model_dump(mode="json"), "data": prepared.data_summary,
            "final": {k: final.get(k) for k in ("bit_accuracy", "exact_match", "top1_beam_hit", "sum_rate")
                      if k in final},
            "cost": cost_model(global_state),
            "totals": {name: int(sum(r.get(name) or 0 for r in rows)) for name in ("bytes_down", "bytes_up",
                                                                                    "bytes_da")},
            "provenance": provenance(prepared.models_used)}


def _write_outputs(out_dir: Path, rows, summary, final_state) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / ROUNDS_FILE).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=ROUND_COLUMNS, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: table_cell(row.get(k), digits=6) for k in ROUND_COLUMNS})
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=json_default) + "\n")
    if final_state is not None:
        atomic_save({"model": final_state, "config": summary["model"]}, out_dir / MODEL_FILE)
