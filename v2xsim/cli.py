"""Command line: parses arguments and calls the library. ``v2xsim --help``."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from v2xsim.errors import ConfigError, V2XSimError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2
        print(f"v2xsim: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="v2xsim", description="mmWave V2X beam-alignment co-simulator")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run a scenario file")
    run.add_argument("scenario", help="TOML scenario file")
    run.add_argument("--out", required=True, help="output directory")
    run.add_argument("--seed", type=int, help="override the scenario seed (and the seed sweep)")
    run.add_argument("--seeds", type=int, metavar="N",
                     help="run N seeds (from --seed, else the scenario seed): statistics and CIs across them")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a scenario value, e.g. --set simulation.duration_s=1 (repeatable)")
    run.add_argument("--workers", type=int, default=None,
                     help="worker processes of the local or dask executor (default 2; local: at most the CPU count)")
    run.add_argument("--executor", default="local", metavar="NAME",
                     help="where the points run: local (worker processes, the default), serial "
                          "(this process) or dask (a Dask cluster: docs/cluster.md)")
    run.add_argument("--scheduler", default=None, metavar="ADDR",
                     help="with --executor dask: address of a running Dask scheduler, e.g. tcp://host:8786 "
                          "(default: start a local cluster of --workers processes)")
    run.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    study = sub.add_parser("study", help="run an offline study file (e.g. the RSU ablations)")
    study.add_argument("study", help="TOML study file")
    study.add_argument("--out", required=True, help="output directory")
    study.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a study value (repeatable)")
    study.add_argument("--quiet", action="store_true", help="no progress output")
    fl = sub.add_parser("fl", help="federated training of GBA-Vehicle from an FL experiment file")
    fl.add_argument("experiment", help="TOML FL experiment file (e.g. scenarios/fl_fedavg.toml)")
    fl.add_argument("--out", required=True, help="output directory (a rerun into it resumes after the last round)")
    fl.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override an experiment value, e.g. --set strategy.name=\"da\" (repeatable)")
    fl.add_argument("--quiet", action="store_true", help="no progress output")
    corridor = sub.add_parser("corridor", help="FL on the road: federated rounds over a corridor of RSUs in "
                                               "simulated time (a corridor scenario file and its [sweep])")
    corridor.add_argument("scenario", help="TOML corridor file (e.g. scenarios/fl_corridor.toml)")
    corridor.add_argument("--out", required=True, help="output directory (a rerun into it resumes)")
    corridor.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                          help="override a value, e.g. --set fl.rounds=5 (repeatable)")
    corridor.add_argument("--workers", type=int, default=None, help="worker processes (default 2)")
    corridor.add_argument("--quiet", action="store_true", help="no progress output")
    dataset = sub.add_parser("dataset", help="write a data set in the FLASH layout")
    dataset.add_argument("kind", choices=["flash-like"], help="data-set generator")
    dataset.add_argument("--out", required=True, help="output directory (new or empty)")
    dataset.add_argument("--preset", choices=["balanced", "flash"], default="balanced",
                         help="'flash': each vehicle keeps its own lane and 5 %% of the road (label imbalance, zeta about 0.11)")
    dataset.add_argument("--backend", choices=["geometric", "sionna", "sionna_rt"], default=None,
                         help="channel backend; 'sionna' (= sionna_rt) ray-traces channels, camera and LiDAR")
    dataset.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="a FlashLikeConfig field, e.g. --set trials_per_category=10 (repeatable)")
    dataset.add_argument("--quiet", action="store_true", help="no progress output")
    train = sub.add_parser("train", help="train (or check the store for) every model a scenario's schemes use")
    train.add_argument("scenario", help="TOML scenario file")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a scenario value (repeatable)")
    train.add_argument("--quiet", action="store_true", help="no progress output")
    radio = sub.add_parser("radio", help="sector statistics of a scenario's sweeps (ideal vs hardware array) "
                                         "and its link budget against the GBA paper's")
    radio.add_argument("scenario", help="TOML scenario file")
    radio.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a scenario value, e.g. --set radio.array.phase_bits=3 (repeatable)")
    radio.add_argument("--trials", type=int, default=25, metavar="N",
                       help="FLASH-like trials per category (4 categories x N trials x 10 vehicles x 4 samples)")
    radio.add_argument("--k1-target", type=float, default=None, metavar="RATE",
                       help="K = 1 oracle rate [bit/s/Hz] to calibrate the transmit power for "
                            "(default: the GBA paper's 12.79, Table III)")
    radio.add_argument("--out", default=None,
                       help="directory for sector_statistics.csv, sector_patterns.png and link_budget.json")
    return parser


def _executor_options(args: argparse.Namespace) -> dict:
    """The executor's options from --workers and --scheduler (only those given)."""
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    options = {}
    if args.workers is not None:
        if args.executor == "serial":
            raise ConfigError("--workers: the serial executor runs every point in this process; "
                              "drop --workers or use --executor local")
        options["workers"] = args.workers
    if args.scheduler is not None:
        if args.executor != "dask":
            raise ConfigError(f"--scheduler needs --executor dask (got --executor {args.executor})")
        options["scheduler"] = args.scheduler
    return options


def _run(args: argparse.Namespace) -> int:
    from v2xsim.config import load_scenario
    from v2xsim.executors import create_executor
    from v2xsim.registry import EXECUTOR
    from v2xsim.sim.runner import run_to_directory

    overrides = list(args.overrides)
    if args.seed is not None:
        overrides += [f"seed={args.seed}", "sweep.seeds=[]"]
    if args.seeds is not None:
        if args.seeds < 1:
            raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
        first = args.seed if args.seed is not None else load_scenario(args.scenario, overrides).seed
        overrides.append(f"sweep.seeds={list(range(first, first + args.seeds))}")
    EXECUTOR.get(args.executor)  # an unknown name is refused before anything is loaded
    options = _executor_options(args)
    scenario = load_scenario(args.scenario, overrides)
    with create_executor(args.executor, **options) as executor:
        run_to_directory(scenario, Path(args.out), scenario_path=args.scenario, workers=args.workers,
                         quiet=args.quiet, executor=executor)
    return 0


def _train(args: argparse.Namespace) -> int:
    from v2xsim.cache import cache_dir
    from v2xsim.config import load_scenario
    from v2xsim.sim.runner import prepare_models

    prepare_models(load_scenario(args.scenario, args.overrides), quiet=args.quiet)
    if not args.quiet:
        print(f"models ready in {cache_dir()}", file=sys.stderr)
    return 0


def _study(args: argparse.Namespace) -> int:
    from v2xsim.studies import run_study_file

    run_study_file(args.study, args.overrides, Path(args.out), quiet=args.quiet)
    return 0


def _fl(args: argparse.Namespace) -> int:
    from v2xsim.studies.fl import run_fl_file

    run_fl_file(args.experiment, args.overrides, Path(args.out), quiet=args.quiet)
    return 0


def _corridor(args: argparse.Namespace) -> int:
    from v2xsim.studies.fl_corridor import run_corridor_file

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    run_corridor_file(args.scenario, args.overrides, Path(args.out), quiet=args.quiet, workers=args.workers)
    return 0


def _dataset(args: argparse.Namespace) -> int:
    from v2xsim.data.flash_like import config_from_overrides, generate_flash_like

    overrides = list(args.overrides)
    if args.backend is not None:
        overrides.append(f'backend="{"sionna_rt" if args.backend == "sionna" else args.backend}"')
    config = config_from_overrides(overrides, preset=args.preset)
    summary = generate_flash_like(args.out, config, quiet=args.quiet)
    if not args.quiet:
        shown = {k: summary[k] for k in ("num_samples", "num_beams", "zeta", "kappa", "los_share")}
        print(json.dumps(shown, indent=2))
    return 0


def _radio(args: argparse.Namespace) -> int:
    from v2xsim.config import load_scenario
    from v2xsim.data.flash_like import sector_study
    from v2xsim.plots import sector_patterns
    from v2xsim.studies.link_budget import link_budget

    if args.trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {args.trials}")
    if args.k1_target is not None and not (math.isfinite(args.k1_target) and args.k1_target > 0):
        raise ConfigError(f"--k1-target must be a finite rate > 0 [bit/s/Hz], got {args.k1_target}")
    scenario = load_scenario(args.scenario, args.overrides)
    budget = link_budget(road=scenario.road, radio=scenario.radio, blockers=scenario.blockers, seed=scenario.seed,
                         **({} if args.k1_target is None else {"target_rate": args.k1_target}))
    study = sector_study(name=scenario.name, road=scenario.road, radio=scenario.radio, blockers=scenario.blockers,
                         seed=scenario.seed, backend=scenario.channel.backend, channel=dict(scenario.channel.options),
                         trials_per_category=args.trials)
    print(study.table(), end="")
    print(budget.table(), end="")
    if args.out is not None:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "link_budget.json").write_text(json.dumps(budget.as_dict(), indent=2) + "\n")
        study.write_samples(out / "sector_statistics.csv")
        ideal, hardware = list(study.codebooks)[1:]
        arrays = {"ideal array": study.codebooks[ideal], "hardware array": study.codebooks[hardware]}
        sector_patterns(arrays, out / "sector_patterns.png", coverage_angle_deg=scenario.road.coverage_angle_deg,
                        title=f"Sector patterns of the RSU array ({scenario.name})")
        print(f"wrote {out / 'sector_statistics.csv'}, {out / 'sector_patterns.png'} and {out / 'link_budget.json'}", file=sys.stderr)
    return 0


COMMANDS = {"run": _run, "study": _study, "fl": _fl, "corridor": _corridor, "dataset": _dataset, "train": _train, "radio": _radio}


def main(argv: list[str] | None = None) -> int:
    """Run one command. v2xsim's own errors (bad input) print one line and return 2; any
    other exception is a bug and keeps its traceback (exit 1)."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except V2XSimError as error:
        print(f"v2xsim: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("v2xsim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
