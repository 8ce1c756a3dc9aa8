"""The dask executor: the same results as the serial one, a killed sweep leaves no worker
behind and resumes from its checkpoints, and bad input (an unknown executor, an unreachable
scheduler, a missing extra) is one line with exit code 2.

The sweeps start a local Dask cluster of two worker processes; they are marked slow. The
error tests that need no cluster are quick."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_executors import clean_up, group_members, kill_main_and_expect_no_survivors, live_members
from v2xsim.config import load_scenario
from v2xsim.errors import ConfigError
from v2xsim.executors import DaskExecutor, create_executor, point_key
from v2xsim.sim.runner import run_to_directory

ROOT = Path(__file__).resolve().parents[1]
HEADLINE = ROOT / "scenarios" / "speed_sweep.toml"
SCHEMES = 'schemes=[{name="oracle"},{name="zf_sweep"},{name="wmmse_ce"}]'
slow = pytest.mark.slow


def square(value):
    """Module level, so that Dask workers can unpickle it by reference."""
    return os.getpid(), value * value


def cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "v2xsim", *args], cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout, env={**os.environ, **(env or {})})


def overrides(duration_s: float, speeds: str) -> list[str]:
    return [SCHEMES, f"simulation.duration_s={duration_s}", "traffic.num_vehicles=3",
            f"sweep.speed_kmh={speeds}", "sweep.seeds=[0]", "output.plots=false"]


# ------------------------------------------------------------------ quick: errors, keys
def test_unknown_executor_is_refused_listing_the_valid_ones(tmp_path):
    result = cli("run", str(HEADLINE), "--out", str(tmp_path / "out"), "--executor", "bogus", timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "bogus" in lines[0] and "valid: dask, local, serial" in lines[0]
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_unreachable_scheduler_is_a_config_error_naming_it():
    executor = create_executor("dask", scheduler="tcp://127.0.0.1:1", timeout_s=0.5)
    with pytest.raises(ConfigError, match=r"^--scheduler tcp://127\.0\.0\.1:1: "):
        with executor:
            pass
    assert executor.client is None


def test_scheduler_needs_the_dask_executor(tmp_path, capsys):
    from v2xsim.cli import main

    assert main(["run", str(HEADLINE), "--out", str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert capsys.readouterr().err.strip() == (
        "v2xsim: error: --scheduler needs --executor dask (got --executor local)")
    assert not (tmp_path / "out").exists()


def test_missing_distributed_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ConfigError) as error:
        list(DaskExecutor(workers=1).map(square, [(2,)]))
    message = str(error.value)
    assert "pip install 'v2xsim[dist]'" in message and "\n" not in message


def test_executor_options_are_checked():
    with pytest.raises(ConfigError, match="executor 'dask': workers must be >= 1"):
        create_executor("dask", workers=0)
    with pytest.raises(ConfigError, match="executor 'dask': unknown option 'threads'"):
        create_executor("dask", threads=2)
    assert isinstance(create_executor("dask", workers=3), DaskExecutor)


def test_point_keys_are_hashes_of_the_point():
    scenario = load_scenario(HEADLINE, [])
    same = load_scenario(HEADLINE, [])
    other = load_scenario(HEADLINE, ["simulation.duration_s=1"])
    key = point_key(square, (scenario, (30.0, 10, 0)))
    assert key.startswith("v2xsim-point-")
    assert key == point_key(square, (same, (30.0, 10, 0)))
    assert key != point_key(square, (other, (30.0, 10, 0)))
    assert key != point_key(square, (scenario, (60.0, 10, 0)))
    assert key != point_key(cli, (scenario, (30.0, 10, 0)))


# ------------------------------------------------------------------ slow: a local cluster
@slow
def test_map_returns_every_index_once_on_worker_processes(tmp_path):
    arguments = [(3,), (1,), (4,), (1,), (5,)]  # a repeated point runs once, both indices get it
    with DaskExecutor(workers=2, local_directory=str(tmp_path)) as executor:
        results = list(executor.map(square, arguments))
        assert executor.client is not None
    assert executor.client is None  # closed
    assert sorted(index for index, _ in results) == list(range(5))
    assert {index: value for index, (_, value) in results} == {i: a[0] ** 2 for i, a in enumerate(arguments)}
    assert all(pid != os.getpid() for _, (pid, _) in results)


@slow
def test_dask_sweep_writes_the_same_results_as_the_serial_one(tmp_path, monkeypatch):
    monkeypatch.setenv("V2XSIM_CACHE", str(tmp_path / "cache"))
    scenario = load_scenario(HEADLINE, overrides(0.2, "[30, 90, 150]"))
    run_to_directory(scenario, tmp_path / "serial", quiet=True, executor=create_executor("serial"))
    run_to_directory(scenario, tmp_path / "dask", quiet=True, executor=create_executor("dask", workers=2))
    expected = (tmp_path / "serial" / "results.csv").read_bytes()
    assert expected.count(b"\n") == 1 + 3 * 3  # header, 3 schemes x 3 speeds
    assert (tmp_path / "dask" / "results.csv").read_bytes() == expected


@slow
def test_unreachable_scheduler_on_the_command_line_exits_2(tmp_path):
    started = time.monotonic()
    result = cli("run", str(HEADLINE), "--out", str(tmp_path / "out"), "--executor", "dask",
                 "--scheduler", "tcp://127.0.0.1:1", timeout=60)
    elapsed = time.monotonic() - started  # about 11 s (a 10 s connect timeout); reported, not asserted
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("v2xsim: error: --scheduler tcp://127.0.0.1:1"), (lines, elapsed)


@slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_dask_sweep_leaves_no_worker_and_resumes(tmp_path, monkeypatch):
    env = {"V2XSIM_CACHE": str(tmp_path / "cache")}
    # four points of 1 to 1.5 s on two workers: the first checkpoints appear while two
    # points still run
    args = [arg for override in overrides(2, "[30, 60, 90, 120]") for arg in ("--set", override)]
    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "v2xsim", "run", str(HEADLINE), "--out", str(out),
                                "--executor", "dask", "--workers", "2", "--quiet", *args],
                               cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True, env={**os.environ, **env})
    pgid = process.pid
    try:
        deadline = time.monotonic() + 120
        checkpoints, workers = [], []
        while time.monotonic() < deadline and process.poll() is None:
            if len(workers) < 2:  # the cluster's worker processes start one by one
                workers = [m for m in live_members(pgid) if "spawn_main" in m[2]]
            checkpoints = list(out.glob(".checkpoints/*/point-*.pkl"))
            if checkpoints:
                break
            time.sleep(0.02)
        assert process.poll() is None, "the sweep ended before it could be killed: " + process.stderr.read().decode()
        assert len(workers) >= 2, group_members(pgid)  # the cluster's worker processes were seen

        kill_main_and_expect_no_survivors(process)
    finally:
        clean_up(process)
    checkpoints = sorted(out.glob(".checkpoints/*/point-*.pkl"))
    assert 1 <= len(checkpoints) < 4, checkpoints
    assert not (out / "results.csv").exists()

    resumed = cli("run", str(HEADLINE), "--out", str(out), "--executor", "dask", "--workers", "2", *args, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {len(checkpoints)} of 4 points from checkpoints" in resumed.stderr
    # only the missing points ran again
    assert len([line for line in resumed.stderr.splitlines() if line.startswith("[")]) == 4 - len(checkpoints)
    assert not (out / ".checkpoints").exists()

    serial = load_scenario(HEADLINE, overrides(2, "[30, 60, 90, 120]"))
    monkeypatch.setenv("V2XSIM_CACHE", env["V2XSIM_CACHE"])
    run_to_directory(serial, tmp_path / "fresh", quiet=True, executor=create_executor("serial"))
    assert (out / "results.csv").read_bytes() == (tmp_path / "fresh" / "results.csv").read_bytes()


def test_workers_with_the_serial_executor_names_the_flag(tmp_path):
    result = cli("run", str(HEADLINE), "--out", str(tmp_path), "--executor", "serial", "--workers", "2", "--quiet")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--workers" in result.stderr and "serial" in result.stderr
