"""Runs a scenario's sweep on an executor, with progress (and time left) and resumable
per-point checkpoints, and writes the outputs."""

from __future__ import annotations

import os
import pickle
import shutil
import sys
import time
from pathlib import Path

from v2xsim import build
from v2xsim.cache import config_hash
from v2xsim.config import Scenario
from v2xsim.errors import ConfigError
from v2xsim.executors import Executor, create_executor
from v2xsim.progress import quiet_mode
from v2xsim.registry import SCHEME
from v2xsim.sim.engine import RunOutput, run_point
from v2xsim.sim.results import result_rows, write_outputs
from v2xsim.store import ModelStore
from v2xsim.threads import POINT_TORCH_THREADS, torch_threads
from v2xsim.training.jobs import TrainingJob, run_job, unique_jobs


def scenario_hash(scenario: Scenario) -> str:
    """Hash of a scenario's whole configuration (names its sweep checkpoints)."""
    return config_hash(scenario.model_dump(mode="json"))


def _run_one(scenario: Scenario, point: tuple[float, int, int]) -> RunOutput:
    speed, count, seed = point
    return run_point(scenario, speed_kmh=speed, num_vehicles=count, seed=seed)


def prepare_models(scenario: Scenario, *, quiet: bool = False) -> dict[str, str]:
    """Load (and on first use train) every model the scenario's schemes need, once, in
    this process, so that sweep workers only load them; returns the models used (file
    name -> hash of its bytes). The mobility model is built once too, so that bad options
    (or a missing SUMO) are refused before any point starts."""
    build.load_plugins(scenario.plugins)
    build.mobility_model(scenario.mobility, seed=scenario.seed, base_dir=scenario.source_dir).close()
    store = ModelStore(quiet=quiet)
    training_seeds = sorted({scenario.training_seed_for(seed) for seed in (scenario.sweep.seeds or [scenario.seed])},
                            key=lambda t: -1 if t is None else t)
    with quiet_mode(quiet):
        train_side_by_side(scenario, store, training_seeds, quiet=quiet)
        for training_seed in training_seeds:
            build.schemes(scenario, store, training_seed=training_seed)
    return dict(sorted(store.used.items()))


def train_side_by_side(scenario: Scenario, store: ModelStore, training_seeds: list[int | None], *,
                       quiet: bool = False, workers: int | None = None) -> list[str]:
    """Train every network the scenario's schemes still miss (all training seeds) in
    parallel worker processes, one per core (up to ``workers``); returns the checkpoints
    written. With fewer than two jobs or one core nothing runs here: ``prepare`` trains
    in this process. Same bits either way (training uses a fixed thread count)."""
    jobs: list[TrainingJob] = []
    for training_seed in training_seeds:
        context = build.scheme_context(scenario, store, training_seed=training_seed)
        for spec in scenario.schemes:
            jobs.extend(SCHEME.create(spec.name, dict(spec.options)).training_jobs(context))
    jobs = unique_jobs(jobs)
    count = min(len(jobs), workers or min(2, os.cpu_count() or 1))
    if count < 2:
        return []
    if not quiet:
        print(f"training {len(jobs)} networks side by side in {count} processes: "
              f"{', '.join(j.label for j in jobs)} (first run only; cached afterwards)", file=sys.stderr)
    written = []
    with create_executor("local", workers=count) as executor:
        for _, key in executor.map(run_job, [(training, quiet) for training in jobs]):
            written.append(key)
    return written


def run_sweep(scenario: Scenario, *, checkpoint_dir: Path | None = None, workers: int | None = None,
              quiet: bool = False, executor: Executor | None = None, prepared: bool = False) -> list[RunOutput]:
    """Every point of the sweep, in sweep order. Finished points are pickled to
    ``checkpoint_dir`` and reused by a rerun of the same scenario (resume). Models are
    prepared first in this process (unless ``prepared``)."""
    points = scenario.points()
    if not prepared:
        prepare_models(scenario, quiet=quiet)
    outputs: dict[int, RunOutput] = {}
    if checkpoint_dir is not None:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        for index in range(len(points)):
            path = checkpoint_dir / f"point-{index}.pkl"
            if path.exists():
                with path.open("rb") as handle:
                    outputs[index] = pickle.load(handle)
    todo = [i for i in range(len(points)) if i not in outputs]
    executor = executor or create_executor("local", workers=workers)
    # longest first (alignments per simulated second grow with speed, work per alignment
    # with K), so no worker is left with a long point at the end; outputs keep sweep order
    todo.sort(key=lambda i: -(1.0 + points[i][0]) * max(points[i][1], 1))
    bar = None
    if not quiet and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(points), initial=len(outputs), desc=scenario.name, unit="point", file=sys.stderr)
    elif not quiet and outputs:
        print(f"resuming: {len(outputs)} of {len(points)} points from checkpoints", file=sys.stderr)
    started = time.perf_counter()
    finished = 0

    def done(index: int, output: RunOutput) -> None:
        nonlocal finished
        outputs[index] = output
        finished += 1
        if checkpoint_dir is not None:
            tmp = checkpoint_dir / f"point-{index}.pkl.tmp"
            with tmp.open("wb") as handle:
                pickle.dump(output, handle)
            tmp.replace(checkpoint_dir / f"point-{index}.pkl")
        speed, count, seed = points[index]
        if bar is not None:
            bar.set_postfix_str(f"{speed:g} km/h K={count} seed={seed}")
            bar.update(1)
        elif not quiet:
            elapsed = time.perf_counter() - started
            left = elapsed / finished * (len(todo) - finished)
            print(f"[{len(outputs)}/{len(points)}] {speed:g} km/h, K={count}, seed {seed}: "
                  f"{output.wall_s:.1f} s (about {left:.0f} s left)", file=sys.stderr)

    with torch_threads(POINT_TORCH_THREADS):  # for points the executor runs in this process
        for position, output in executor.map(_run_one, [(scenario, points[i]) for i in todo]):
            done(todo[position], output)
    if bar is not None:
        bar.close()
    return [outputs[i] for i in range(len(points))]


def prepare_output_dir(out_dir: Path) -> None:
    """Create ``out_dir`` (a ConfigError naming it if it is a file or cannot be written)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir}: exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".v2xsim-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"--out {out_dir}: cannot write there ({error.strerror or error})") from None


def run_to_directory(scenario: Scenario, out_dir: Path, *, scenario_path: str | None = None,
                     workers: int | None = None, quiet: bool = False, executor: Executor | None = None) -> dict:
    """Run the sweep (on ``executor``, default: local worker processes) and write
    results.csv, events.csv, summary.json and the plots."""
    prepare_output_dir(out_dir)
    checkpoints = out_dir / ".checkpoints" / scenario_hash(scenario)
    started = time.perf_counter()
    models = prepare_models(scenario, quiet=quiet)
    outputs = run_sweep(scenario, checkpoint_dir=checkpoints, workers=workers, quiet=quiet, executor=executor,
                        prepared=True)
    summary = write_outputs(scenario, outputs, out_dir, scenario_path=scenario_path,
                            elapsed_s=time.perf_counter() - started, models=models)
    if scenario.output.plots:
        from v2xsim.plots import speed_plots

        speed_plots(result_rows(outputs), out_dir, title=f"{scenario.name}: effective sum rate vs speed")
    shutil.rmtree(out_dir / ".checkpoints", ignore_errors=True)
    if not quiet:
        _print_table(result_rows(outputs))
        written = "results.csv, summary.csv, paired.csv, summary.json, timing.json" + (
            ", events.csv" if scenario.output.event_log else "") + (" and plots" if scenario.output.plots else "")
        print(f"wrote {written} to {out_dir}", file=sys.stderr)
    return summary


def _print_table(rows: list[dict]) -> None:
    print(f"{'scheme':<12} {'km/h':>6} {'K':>3} {'seed':>4} {'T_coh ms':>9} {'T_del ms':>9} "
          f"{'R':>7} {'R_eff':>7}")
    for r in rows:
        print(f"{r['scheme']:<12} {r['speed_kmh']:>6g} {r['num_vehicles']:>3} {r['seed']:>4} "
              f"{1e3 * r['t_coherence_s']:>9.2f} {1e3 * r['t_delay_s']:>9.2f} {r['sum_rate']:>7.2f} "
              f"{r['effective_sum_rate']:>7.2f}")
