"""Build and run one corridor point (speed x vehicles x seed x strategy), write its
outputs, checkpoint after every round and resume after a kill.

Outputs in the run directory: ``rounds.csv`` (one row per aggregation: open / close
times, selected, completed, failed and why, bytes and airtime per link, compute time,
held-out accuracy and the sum rate of GBA-RSU on the predicted feedback), ``events.csv``
(every coverage change, selection, transfer, result and failure, times in full
precision), ``rsus.csv`` (each RSU's alignment loop: cycles, delay, feedback queueing,
effective sum rate, samples recorded), ``summary.json`` and ``model.pt``.

Resume: ``checkpoint.pt`` holds, after every aggregation, the global and every client's
model, the strategy's state, the aggregator's generator and the log of selections. A
rerun replays the simulation from the start (the world is deterministic) with the logged
selections and without local training, aggregation or evaluation for the rounds already
done, loads the checkpoint when the last of them closes, and carries on: the rounds log
and the final weights equal those of an uninterrupted run.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import simpy
import torch

from v2xsim import build
from v2xsim.cache import config_hash
from v2xsim.config import BlockersConfig
from v2xsim.errors import ConfigError
from v2xsim.formats import MODALITIES
from v2xsim.sim.corridor.config import CorridorScenario
from v2xsim.sim.corridor.devices import DEFAULT_CLASSES, DeviceClass, draw_devices
from v2xsim.sim.corridor.engine import CorridorEngine, Fleet, RSUSite
from v2xsim.sim.corridor.learning import Learner
from v2xsim.sim.corridor.road import Corridor, place_cars
from v2xsim.store import ModelStore, atomic_save, load_saved
from v2xsim.tables import table_cell
from v2xsim.units import kmh_to_mps

CHECKPOINT_FORMAT = 1
ROUND_COLUMNS = ["round", "open_s", "close_s", "deadline_s", "selected", "completed", "failed", "failure_reasons",
                 "rejected", "bytes_down", "bytes_up", "bytes_backhaul", "airtime_down_s", "airtime_up_s", "upload_wait_s",
                 "compute_s", "preemptions", "samples", "staleness_mean", "bit_accuracy", "exact_match",
                 "top1_beam_hit", "sum_rate"]
EVENT_COLUMNS = ["time_s", "event", "car", "rsu", "round", "detail"]
RSU_COLUMNS = ["rsu", "x_m", "cycles", "evaluated_cycles", "mean_delay_s", "feedback_messages",
               "mean_feedback_wait_s", "feedback_waits_behind_upload", "effective_sum_rate", "samples_recorded"]
#: random streams of a corridor run (one generator each, from the run seed)
STREAM_PLACEMENT, STREAM_SENSORS_FITTED, STREAM_DEVICES, STREAM_AGGREGATOR, STREAM_RSU = range(5)


#: tags of the random streams of the study's runs and of the evaluation survey
RUN_STREAMS, SURVEY_STREAMS, SITE_STREAMS = 71, 72, 73


def _stream(seed: int, tag: int, *index: int) -> np.random.Generator:
    return np.random.default_rng([seed, tag, *index])


class Point:
    """What one corridor point runs: scenario values with the point's overrides."""

    def __init__(self, scenario: CorridorScenario, *, speed_kmh: float | None = None, vehicles: int | None = None,
                 seed: int | None = None, strategy: str | None = None, fl_enabled: bool | None = None,
                 priority: bool | None = None, duration_s: float | None = None, survey: bool = False) -> None:
        self.scenario = scenario
        self.speed_kmh = float(scenario.traffic.speed_kmh if speed_kmh is None else speed_kmh)
        self.vehicles = int(scenario.traffic.vehicles if vehicles is None else vehicles)
        self.seed = int(scenario.seed if seed is None else seed)
        self.strategy = strategy or scenario.fl.strategy.name
        self.fl_enabled = scenario.fl.enabled if fl_enabled is None else bool(fl_enabled)
        self.priority = scenario.fl.priority if priority is None else bool(priority)
        self.duration_s = float(scenario.duration_s if duration_s is None else duration_s)
        #: random streams: a run's, or the evaluation survey's (another fleet, other draws)
        self.streams = SURVEY_STREAMS if survey else RUN_STREAMS
        for name, value in (("speed_kmh", self.speed_kmh), ("duration_s", self.duration_s)):
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name}: must be a positive number, got {value}")

    def key(self) -> str:
        return config_hash({"format": CHECKPOINT_FORMAT, "scenario": self.scenario.model_dump(mode="json"),
                            "point": [self.speed_kmh, self.vehicles, self.seed, self.strategy, self.fl_enabled,
                                      self.priority, self.duration_s, self.streams]})

    def label(self) -> str:
        fl = self.strategy if self.fl_enabled else "no FL"
        return f"{self.speed_kmh:g} km/h, {self.vehicles} cars, seed {self.seed}, {fl}"


def _strategy_options(point: Point) -> dict[str, Any]:
    fl = point.scenario.fl
    return dict(fl.strategy.options) if point.strategy == fl.strategy.name else {}


#: preparations of this process (one survey and one GBA-RSU per scenario and process)
_PREPARED: dict[str, Any] = {}


def _vehicle_config(scenario: CorridorScenario, seed: int):
    from v2xsim.training.vehicle import VehicleTrainingConfig

    try:
        return VehicleTrainingConfig(**{**dict(scenario.model), "seed": seed})
    except (TypeError, ValueError) as error:
        raise ConfigError(f"model: {error}") from None


def _initial_model(scenario: CorridorScenario, seed: int, gps: np.ndarray | None):
    """GBA-Vehicle initialised from ``seed``; its GPS normalisation from ``gps`` (N, 2)
    (the coverage area's centre and extent: public, not private data)."""
    from v2xsim.training.vehicle import build_vehicle_model

    torch.manual_seed(seed)
    model = build_vehicle_model(_vehicle_config(scenario, seed), scenario.radio.num_beams)
    if gps is not None and "gps" in model.branches:
        values = torch.from_numpy(np.asarray(gps, dtype=np.float32))
        model.branches["gps"].shift.copy_(values.mean(dim=0))
        model.branches["gps"].scale.copy_(values.std(dim=0).clamp_min(1e-3))
    return model.eval()


def _gba_rsu(scenario: CorridorScenario, store: ModelStore):
    """GBA-RSU trained (or loaded) for the corridor's road and radio, frozen."""
    from v2xsim.training.rsu import DataConfig, RSUTrainingConfig, train_rsu

    options = dict(scenario.evaluation.rsu)
    try:
        data = DataConfig(road=scenario.road.model_dump(), radio=scenario.radio.model_dump(), **options.pop("data", {}))
        config = RSUTrainingConfig(data=data, **options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"evaluation.rsu: {error}") from None
    rsu = train_rsu(config, store=store).eval()
    for parameter in rsu.parameters():
        parameter.requires_grad_(False)
    return rsu


def _flash_like(scenario: CorridorScenario, store: ModelStore, quiet: bool):
    """The FL preparation of a FLASH-like set for the corridor's road and radio (the
    ``flash_like`` bed and the warm-start data)."""
    from v2xsim.fl.experiment import FLExperiment
    from v2xsim.fl.runner import prepare

    evaluation = scenario.evaluation
    try:
        experiment = FLExperiment(
            name=scenario.name, seed=scenario.seed, setting="balanced", road=scenario.road.model_dump(mode="json"),
            radio=scenario.radio.model_dump(mode="json"), data=dict(evaluation.data), model=dict(scenario.model),
            rsu=dict(evaluation.rsu), test_fraction=evaluation.test_fraction)
    except ValueError as error:
        raise ConfigError(f"evaluation: {error}") from None
    return prepare(experiment, store=store, quiet=quiet)


def survey(scenario: CorridorScenario, *, quiet: bool = True) -> "Any":
    """The survey of the road evaluation bed: the scenario's ``[traffic]`` on its own
    random streams, no FL, recording every ``evaluation.record_every``-th alignment for
    ``evaluation.survey_s`` [s]; returns the :class:`SurveyRecorder`."""
    from v2xsim.sim.corridor.evaluation import SurveyRecorder

    alignment = scenario.alignment.model_copy(update={"record_every": scenario.evaluation.record_every})
    surveyed = scenario.model_copy(update={"alignment": alignment})
    point = Point(surveyed, fl_enabled=False, duration_s=scenario.evaluation.survey_s, survey=True)
    holder: dict[str, SurveyRecorder] = {}

    def factory(available: np.ndarray) -> SurveyRecorder:
        holder["recorder"] = SurveyRecorder(available=available)
        return holder["recorder"]

    env = simpy.Environment()
    build_engine(point, env, learner_factory=factory, quiet=quiet, recorder_from_learner=True)
    env.run(until=point.duration_s)
    return holder["recorder"]


def prepare_learning(point: Point, *, store: ModelStore | None, quiet: bool):
    """What the point's learner starts from (:class:`~v2xsim.sim.corridor.learning.Preparation`):
    with evaluation, the held-out bed and GBA-RSU (from the scenario, shared by every run
    of a study: the survey of the road, or the FLASH-like bed) and the initial model
    (initialised from the run's seed); without, a freshly initialised model."""
    from v2xsim.sim.corridor.learning import Preparation

    scenario = point.scenario
    evaluation = scenario.evaluation
    if not evaluation.enabled:
        return Preparation(initial_model=_initial_model(scenario, point.seed, None))
    store = store or ModelStore(quiet=quiet)
    key = config_hash({**scenario.model_dump(mode="json", include={"seed", "road", "radio", "timing", "channel",
                                                                    "realignment", "corridor", "rsus", "traffic",
                                                                    "alignment", "evaluation", "model"}),
                       "warm_start": scenario.fl.warm_start})
    shared = _PREPARED.get(key)
    if shared is None:
        if evaluation.bed == "road":
            from v2xsim.sim.corridor.evaluation import RoadBed, evaluate_on_road

            rsu = _gba_rsu(scenario, store)
            recorded = survey(scenario, quiet=quiet)
            radios = [build.link_budget(scenario.radio, scenario.road, seed=scenario.seed, rsu=index)
                      for index in range(len(scenario.rsus))]
            bed = RoadBed(test_set=recorded.sensor_set(), groups=recorded.groups,
                          codebooks=[radio.codebook for radio in radios], p_max=radios[0].p_max,
                          noise_power=radios[0].noise_power, rsu=rsu)
            shared = {"server": bed.server(), "gps": bed.test_set.gps,
                      "evaluate": lambda model, bed=bed: evaluate_on_road(model, bed), "warm": None,
                      "samples": len(bed.test_set), "alignments": len(bed.groups)}
            if scenario.fl.warm_start:  # warm-start data: the FLASH-like vehicles' training sets
                shared["warm"] = _flash_like(scenario, store, quiet).vehicle_data
        else:
            from v2xsim.fl.evaluation import evaluate_global

            prepared = _flash_like(scenario, store, quiet)
            held_out = prepared.held_out
            shared = {"server": prepared.server, "gps": prepared.pooled_data.gps,
                      "evaluate": lambda model, bed=held_out: evaluate_global(model, bed, contributions=False),
                      "warm": prepared.vehicle_data, "samples": len(held_out.test_set),
                      "alignments": len(held_out.snapshots)}
        shared["used"] = dict(store.used)
        _PREPARED[key] = shared
    # DA divides its rate term by the federation's size: this run's fleet
    server = replace(shared["server"], num_vehicles=point.vehicles)
    return Preparation(initial_model=_initial_model(scenario, point.seed, shared["gps"]), server=server,
                       evaluate=shared["evaluate"], warm=shared["warm"], used=shared["used"])


def build_engine(point: Point, env: simpy.Environment, *, learner_factory=None, store: ModelStore | None = None,
                 quiet: bool = True, recorder_from_learner: bool = False, **engine_options: Any) -> CorridorEngine:
    """The engine of one point on ``env`` (world, RSUs, fleet, learner and strategy)."""
    from v2xsim.registry import FL_STRATEGY, SCHEME

    scenario = point.scenario
    build.load_plugins([])
    layout = build.road_layout(scenario.road)
    timing = build.timing_model(scenario.timing)
    policy = build.realignment_policy(scenario.realignment)
    x_min, x_max = layout.x_range
    rsus = scenario.rsus  # in file order: errors and outputs name them by their index there
    try:
        corridor = Corridor(length_m=scenario.corridor.length_m, loop=scenario.corridor.loop,
                            coverage=[(r.x_m + x_min, r.x_m + x_max) for r in rsus])
        given = scenario.traffic.positions_m
        if given is not None:
            if len(given) != point.vehicles:
                raise ValueError(f"traffic.positions_m: {len(given)} positions for {point.vehicles} cars")
            if any(not 0 <= x < scenario.corridor.length_m for x in given):
                raise ValueError(f"traffic.positions_m: positions must lie in [0, {scenario.corridor.length_m:g}) m")
            x0, lane = np.asarray(given, dtype=float), np.arange(point.vehicles) % layout.num_lanes
        else:
            x0, lane = place_cars(count=point.vehicles, length_m=scenario.corridor.length_m,
                                  lanes=layout.num_lanes, min_gap_m=scenario.traffic.min_gap_m,
                                  rng=_stream(point.seed, point.streams, STREAM_PLACEMENT))
    except ValueError as error:
        raise ConfigError(str(error)) from None
    classes = [DeviceClass(name=c.name, gflops=c.gflops, sample_ms=c.sample_ms, share=c.share)
               for c in scenario.devices.classes] \
        if scenario.devices.classes else list(DEFAULT_CLASSES)
    devices_rng = _stream(point.seed, point.streams, STREAM_DEVICES)
    devices = draw_devices(point.vehicles, classes, spread=scenario.devices.spread, rng=devices_rng)
    available = np.ones((point.vehicles, len(MODALITIES)), dtype=bool)
    available[:, MODALITIES.index("image")] = devices_rng.random(point.vehicles) < scenario.traffic.image_share
    available[:, MODALITIES.index("lidar")] = devices_rng.random(point.vehicles) < scenario.traffic.lidar_share
    fleet = Fleet(x0=x0, speed=np.full(point.vehicles, kmh_to_mps(point.speed_kmh)), lane=lane, devices=devices)
    sites = []
    for index, rsu in enumerate(rsus):
        # the site (arrays, the channel's scatterers) from the scenario seed; the run's own
        # seed draws its fleet, devices and noise
        radio = build.link_budget(scenario.radio, scenario.road, seed=scenario.seed, rsu=index)
        channel = build.scenario_channel(scenario.channel, layout=layout, radio=scenario.radio,
                                         seed=int(_stream(scenario.seed, SITE_STREAMS, index).integers(2**31)))
        scheme = SCHEME.create(scenario.alignment.scheme, dict(scenario.alignment.options))
        if scheme.acquisition == "sensing":
            raise ConfigError(f"alignment.scheme: {scenario.alignment.scheme!r} aligns from on-vehicle sensing; the "
                              "corridor's cars learn from sweeps, so use a sweep (or genie) scheme")
        context = build.SchemeContext(road=scenario.road, radio=build.with_array_seed(scenario.radio, scenario.seed),
                                      blockers=BlockersConfig(), site=build.Site(layout, radio, timing),
                                      store=store or ModelStore(quiet=True))
        scheme.prepare(context)
        sites.append(RSUSite(x_m=rsu.x_m, radio=radio, channel=channel, scheme=scheme,
                             noise_seed=int(_stream(point.seed, point.streams, STREAM_RSU, index, 1).integers(2**63)),
                             scheme_rng=_stream(point.seed, point.streams, STREAM_RSU, index, 3)))
    strategy = None
    learner = None
    if point.fl_enabled:
        if point.strategy == "da" and not scenario.evaluation.enabled:
            raise ConfigError("fl.strategy.name: 'da' needs evaluation.enabled (DA uses GBA-RSU and the RSU's "
                              "label statistics)")
        try:
            strategy = FL_STRATEGY.create(point.strategy, _strategy_options(point))
            strategy.begin(num_rounds=scenario.fl.rounds)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"fl.strategy: {error}") from None
        if getattr(strategy, "pooled", False):
            raise ConfigError(f"fl.strategy.name: {point.strategy!r} pools every car's raw data; on the road each "
                              "car is its own client")
    if learner_factory is not None:
        learner = learner_factory(available)
    else:
        learner = Learner(scenario=scenario, preparation=prepare_learning(point, store=store, quiet=quiet),
                          available=available, seed=point.seed)
    if recorder_from_learner:
        engine_options["recorder"] = learner

    fl = scenario.fl.model_copy(update={"priority": point.priority})
    return CorridorEngine(env=env, corridor=corridor, fleet=fleet, layout=layout, sites=sites, timing=timing,
                          policy=policy, learner=learner, strategy=strategy, fl=fl, alignment=scenario.alignment,
                          backhaul_latency_s=scenario.backhaul.latency_ms * 1e-3,
                          backhaul_rate_bps=scenario.backhaul.rate_gbps * 1e9, flops_per_sample=getattr(learner, "flops_per_sample", None),
                          rng=_stream(point.seed, point.streams, STREAM_AGGREGATOR), **engine_options)


def run_point(point: Point, out_dir: str | Path | None = None, *, store: ModelStore | None = None,
              quiet: bool = False, stop_after_rounds: int | None = None, learner_factory=None) -> dict[str, Any]:
    """Run (or resume) one corridor point; writes its outputs to ``out_dir`` when given
    and returns the summary (with the engine under ``"engine"``, not written).
    ``stop_after_rounds`` ends this session after that many new rounds (as a kill would)."""
    out = Path(out_dir) if out_dir is not None else None
    key = point.key()
    saved = None
    checkpoint_path = out / "checkpoint.pt" if out is not None else None
    if checkpoint_path is not None and checkpoint_path.exists():
        saved = load_saved(checkpoint_path)
        if saved.get("key") != key:
            raise ConfigError(f"{out}: holds a run of another corridor point (its checkpoint.pt does not match); "
                              "use another --out or delete that directory")
    env = simpy.Environment()
    stop = env.event()
    started = time.perf_counter()
    rows: list[dict[str, Any]] = list(saved["rows"]) if saved else []
    fl = point.scenario.fl
    holder: dict[str, CorridorEngine] = {}
    new_rounds = [0]

    def checkpoint() -> None:
        engine = holder["engine"]
        atomic_save({"format": CHECKPOINT_FORMAT, "key": key, "rounds": len(rows), "rows": rows,
                     "learner": engine.learner.state_dict(),
                     "strategy": engine.strategy.state_dict() if hasattr(engine.strategy, "state_dict") else None,
                     "rng": engine.rng.bit_generator.state, "instructions": engine.instructions_log,
                     "pending": engine.pending_state() if fl.mode == "async" else {},
                     "initial": holder.get("initial", {})}, checkpoint_path)

    def on_round(row: dict[str, Any]) -> None:
        rows.append(row)
        new_rounds[0] += 1
        if checkpoint_path is not None:
            checkpoint()
        if not quiet:
            elapsed = time.perf_counter() - started
            left = elapsed / new_rounds[0] * (fl.rounds - len(rows))
            accuracy = row.get("exact_match")
            shown = "-" if accuracy is None else f"{accuracy:.3f}"
            print(f"corridor {point.label()}: round {len(rows)}/{fl.rounds} closed at {row['close_s']:.2f} s "
                  f"simulated, {row['completed']}/{row['selected']} results, exact match {shown}, "
                  f"{elapsed:.0f} s, about {left:.0f} s left", file=sys.stderr, flush=True)
        if stop_after_rounds is not None and new_rounds[0] >= stop_after_rounds and not stop.triggered:
            stop.succeed()

    def on_replayed() -> None:
        engine = holder["engine"]
        engine.learner.load_state_dict(saved["learner"])
        if saved.get("strategy") is not None and hasattr(engine.strategy, "load_state_dict"):
            engine.strategy.load_state_dict(saved["strategy"])
        engine.rng.bit_generator.state = saved["rng"]
        if not quiet:
            print(f"corridor {point.label()}: resumed after round {saved['rounds']}/{fl.rounds}", file=sys.stderr)

    if checkpoint_path is not None:
        out.mkdir(parents=True, exist_ok=True)
    engine = build_engine(point, env, learner_factory=learner_factory, store=store, quiet=quiet,
                          on_round=on_round, replay=saved["rounds"] if saved else 0,
                          replay_log=saved["instructions"] if saved else None,
                          on_replayed=on_replayed if saved else None, pending=saved.get("pending") if saved else None)
    holder["engine"] = engine
    if saved and saved["rounds"] >= fl.rounds:
        pass  # finished before: the replay below rebuilds the world's accounts
    initial = engine.learner.evaluate() if engine.strategy is not None and not saved else \
        (saved or {}).get("initial", {})
    holder["initial"] = initial
    env.run(until=env.any_of([engine.finished, env.timeout(point.duration_s), stop]))
    engine.finish()
    window = env.now
    summary = summarise(point, engine, rows, window, wall_s=time.perf_counter() - started)
    # complete: the run reached its horizon or its last round (not stopped as by a kill)
    summary["complete"] = not stop.triggered
    summary["initial"] = initial
    summary["rounds"] = rows
    if out is not None:
        write_outputs(out, engine, rows, summary)
    summary["engine"] = engine
    return summary


def summarise(point: Point, engine: CorridorEngine, rows: list[dict[str, Any]], window: float, *,
              wall_s: float) -> dict[str, Any]:
    """The point's summary: effective sum rates, feedback queueing, FL totals."""
    accounts = engine.accounts
    delivered = sum(a.delivered() for a in accounts)
    final = rows[-1] if rows else {}
    messages = sum(a.feedback_messages for a in accounts)
    return {
        "scenario": point.scenario.name, "speed_kmh": point.speed_kmh, "vehicles": point.vehicles, "seed": point.seed,
        "strategy": point.strategy if point.fl_enabled else None, "fl": point.fl_enabled, "priority": point.priority,
        "mode": point.scenario.fl.mode, "alignment": point.scenario.alignment.mode, "rsus": len(accounts),
        "simulated_s": window, "wall_s": wall_s, "rounds_done": len(rows),
        "effective_sum_rate": delivered / window if window > 0 else 0.0,
        "effective_sum_rate_per_rsu": [a.delivered() / window if window > 0 else 0.0 for a in accounts],
        "feedback_messages": messages,
        "mean_feedback_wait_s": sum(a.feedback_wait_s for a in accounts) / messages if messages else 0.0,
        "feedback_waits_behind_upload": sum(a.feedback_waits_behind_upload for a in accounts),
        "final": {k: final.get(k) for k in ("bit_accuracy", "exact_match", "top1_beam_hit", "sum_rate")
                  if final.get(k) is not None},
        "totals": {name: float(sum(r.get(name) or 0 for r in rows))
                   for name in ("bytes_down", "bytes_up", "airtime_down_s", "airtime_up_s", "compute_s")},
        "handovers": sum(1 for e in engine.events if e["event"] == "handover"),
        "failures": sum(int(r["failed"]) for r in rows),
        "training_wall_s": float(getattr(engine.learner, "training_wall_s", 0.0)),
    }


def write_outputs(out: Path, engine: CorridorEngine, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    from v2xsim.provenance import provenance

    out.mkdir(parents=True, exist_ok=True)
    with (out / "rounds.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=ROUND_COLUMNS, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (row.get(k) if isinstance(row.get(k), str) else table_cell(row.get(k), digits=9))
                             for k in ROUND_COLUMNS})
    with (out / "events.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=EVENT_COLUMNS, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for event in engine.events:
            writer.writerow({k: repr(event[k]) if k == "time_s" else event.get(k, "") for k in EVENT_COLUMNS})
    window = summary["simulated_s"]
    with (out / "rsus.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RSU_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for index, (site, account) in enumerate(zip(engine.sites, engine.accounts)):
            writer.writerow({
                "rsu": index, "x_m": site.x_m, "cycles": account.cycles, "evaluated_cycles": account.evaluated_cycles,
                "mean_delay_s": table_cell(account.delay_s / account.cycles if account.cycles else 0.0, digits=9),
                "feedback_messages": account.feedback_messages,
                "mean_feedback_wait_s": table_cell(account.feedback_wait_s / account.feedback_messages
                                                   if account.feedback_messages else 0.0, digits=9),
                "feedback_waits_behind_upload": account.feedback_waits_behind_upload,
                "effective_sum_rate": table_cell(account.delivered() / window if window > 0 else 0.0, digits=9),
                "samples_recorded": account.samples_recorded})
    written = {k: v for k, v in summary.items() if k not in ("engine", "rounds")}
    preparation = getattr(engine.learner, "preparation", None)
    written["provenance"] = provenance(dict(preparation.used) if preparation is not None else {})
    written["configuration"] = engine_configuration(summary)
    (out / "summary.json").write_text(json.dumps(written, indent=2, default=str) + "\n")
    if summary.get("complete") and engine.strategy is not None:
        atomic_save({"model": engine.learner.global_state}, out / "model.pt")


def engine_configuration(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary[k] for k in ("speed_kmh", "vehicles", "seed", "strategy", "fl", "priority", "mode",
                                    "alignment")}


__all__ = ["Point", "build_engine", "run_point", "summarise", "write_outputs"]
