"""Runs a scenario's sweep (in parallel processes), with progress and resumable
per-point checkpoints, and writes the outputs."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import pickle
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from v2xsim.config import Scenario
from v2xsim.sim.engine import RunOutput, run_point
from v2xsim.sim.results import result_rows, write_outputs


def scenario_hash(scenario: Scenario) -> str:
    text = json.dumps(scenario.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _run_one(scenario: Scenario, point: tuple[float, int, int]) -> RunOutput:
    speed, count, seed = point
    return run_point(scenario, speed_kmh=speed, num_vehicles=count, seed=seed)


def run_sweep(scenario: Scenario, *, checkpoint_dir: Path | None = None, workers: int | None = None,
              quiet: bool = False) -> list[RunOutput]:
    """Every point of the sweep, in sweep order. Finished points are pickled to
    ``checkpoint_dir`` and reused by a rerun of the same scenario (resume)."""
    points = scenario.points()
    # learned schemes train (or load) their models here, once, before any worker starts
    from v2xsim.registry import SCHEME

    from v2xsim.progress import quiet_mode

    with quiet_mode(quiet):
        for spec in scenario.schemes:
            SCHEME.create(spec.name, **spec.options).prepare(scenario)
    outputs: dict[int, RunOutput] = {}
    if checkpoint_dir is not None:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        for index in range(len(points)):
            path = checkpoint_dir / f"point-{index}.pkl"
            if path.exists():
                with path.open("rb") as handle:
                    outputs[index] = pickle.load(handle)
    todo = [i for i in range(len(points)) if i not in outputs]
    workers = workers or min(2, os.cpu_count() or 1, max(len(todo), 1))
    bar = None
    if not quiet and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(points), initial=len(outputs), desc=scenario.name, unit="point", file=sys.stderr)
    elif not quiet and outputs:
        print(f"resuming: {len(outputs)} of {len(points)} points from checkpoints", file=sys.stderr)

    def done(index: int, output: RunOutput) -> None:
        outputs[index] = output
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
            print(f"[{len(outputs)}/{len(points)}] {speed:g} km/h, K={count}, seed {seed}: "
                  f"{output.wall_s:.1f} s", file=sys.stderr)

    if workers <= 1 or len(todo) <= 1:
        for index in todo:
            done(index, _run_one(scenario, points[index]))
    else:
        context = multiprocessing.get_context("spawn")
        # longest first (alignments per simulated second grow with speed, work per
        # alignment with K), so no worker is left with a long point at the end;
        # outputs keep the sweep order
        todo.sort(key=lambda i: -(1.0 + points[i][0]) * max(points[i][1], 1))
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(_run_one, scenario, points[i]): i for i in todo}
            for future in as_completed(futures):
                done(futures[future], future.result())
    if bar is not None:
        bar.close()
    return [outputs[i] for i in range(len(points))]


def run_to_directory(scenario: Scenario, out_dir: Path, *, scenario_path: str | None = None,
                     workers: int | None = None, quiet: bool = False) -> dict:
    """Run the sweep and write results.csv, events.csv, summary.json and the plots."""
    checkpoints = out_dir / ".checkpoints" / scenario_hash(scenario)
    started = time.perf_counter()
    outputs = run_sweep(scenario, checkpoint_dir=checkpoints, workers=workers, quiet=quiet)
    summary = write_outputs(scenario, outputs, out_dir, scenario_path=scenario_path,
                            elapsed_s=time.perf_counter() - started)
    if scenario.output.plots:
        from v2xsim.plots import speed_plots

        speed_plots(result_rows(outputs), out_dir, title=f"{scenario.name}: effective sum rate vs speed")
    shutil.rmtree(out_dir / ".checkpoints", ignore_errors=True)
    if not quiet:
        _print_table(result_rows(outputs))
        written = "results.csv, summary.json, timing.json" + (", events.csv" if scenario.output.event_log else "") + (
            " and plots" if scenario.output.plots else "")
        print(f"wrote {written} to {out_dir}", file=sys.stderr)
    return summary


def _print_table(rows: list[dict]) -> None:
    print(f"{'scheme':<12} {'km/h':>6} {'K':>3} {'seed':>4} {'T_coh ms':>9} {'T_del ms':>9} "
          f"{'R':>7} {'R_eff':>7}")
    for r in rows:
        print(f"{r['scheme']:<12} {r['speed_kmh']:>6g} {r['num_vehicles']:>3} {r['seed']:>4} "
              f"{1e3 * r['t_coherence_s']:>9.2f} {1e3 * r['t_delay_s']:>9.2f} {r['sum_rate']:>7.2f} "
              f"{r['effective_sum_rate']:>7.2f}")
