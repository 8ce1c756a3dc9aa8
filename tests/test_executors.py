"""Executors: every point runs once; a killed sweep leaves no process behind and resumes
from its checkpoints."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from v2xsim.errors import ConfigError
from v2xsim.executors import LocalExecutor, SerialExecutor, create_executor

ROOT = Path(__file__).resolve().parents[1]
HEADLINE = ROOT / "scenarios" / "speed_sweep.toml"


def power(base, exponent):
    """Module level, so that spawned workers can unpickle it."""
    return os.getpid(), base ** exponent


# ------------------------------------------------------------------ map
def test_local_executor_returns_every_index_once_with_its_value():
    arguments = [(base, 2) for base in range(7)]
    results = list(LocalExecutor(workers=2).map(power, arguments))
    indices = [index for index, _ in results]
    assert sorted(indices) == list(range(7))
    assert {index: value for index, (_, value) in results} == {i: i * i for i in range(7)}
    assert all(pid != os.getpid() for _, (pid, _) in results)  # in worker processes


def test_one_worker_or_one_point_runs_in_this_process():
    assert [(i, v) for i, (_, v) in LocalExecutor(workers=1).map(power, [(2, 3), (3, 2)])] == [(0, 8), (1, 9)]
    assert [(i, pid) for i, (pid, _) in LocalExecutor(workers=2).map(power, [(2, 3)])] == [(0, os.getpid())]
    assert list(SerialExecutor().map(power, [])) == []


def test_executor_arguments_are_checked():
    with pytest.raises(ValueError, match="workers"):
        LocalExecutor(workers=0)
    with pytest.raises(ConfigError, match="valid: .*local.*serial"):
        create_executor("cluster")
    assert isinstance(create_executor("local", workers=1), LocalExecutor)


# ------------------------------------------------------------------ killed sweeps
def group_members(pgid: int) -> list[tuple[int, str, str]]:
    """(pid, state, command line) of every process in process group ``pgid`` (from /proc)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if int(fields[2]) == pgid:
            members.append((int(entry), fields[0], command))
    return members


def live_members(pgid: int) -> list[tuple[int, str, str]]:
    """Members that still run (a zombie has ended and only waits for its reaper)."""
    return [member for member in group_members(pgid) if member[1] not in ("Z", "X")]


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return not live_members(pgid)


def start_sweep(out: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    """``v2xsim run`` as the leader of its own process group (its pid is the group id)."""
    return subprocess.Popen([sys.executable, "-m", "v2xsim", "run", str(HEADLINE), "--out", str(out), *args],
                            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, env={**os.environ, **(env or {})})


def kill_main_and_expect_no_survivors(process: subprocess.Popen) -> None:
    """SIGKILL only the sweep's main process (as a batch system's kill -9 would) and wait
    up to 15 s for every process of its group to be gone."""
    pgid = process.pid
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not group_gone(pgid):
        time.sleep(0.1)
    assert group_gone(pgid), f"left behind: {live_members(pgid)}"


def clean_up(process: subprocess.Popen) -> None:
    """Whatever a test saw, leave no process of the sweep's group running."""
    kill_group(process.pid)
    if process.poll() is None:
        process.kill()
        process.wait()
    process.stderr.close()


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_sweep_leaves_no_process_behind(tmp_path):
    process = start_sweep(tmp_path / "out", "--workers", "2", "--quiet",
                          "--set", 'schemes=[{name="oracle"},{name="zf_sweep"},{name="wmmse_ce"}]',
                          "--set", "simulation.duration_s=30", env={"V2XSIM_CACHE": str(tmp_path / "cache")})
    pgid = process.pid
    try:
        deadline = time.monotonic() + 60
        workers = []
        while time.monotonic() < deadline and process.poll() is None:
            workers = [m for m in live_members(pgid) if "spawn_main" in m[2]]
            if len(workers) >= 2:
                break
            time.sleep(0.1)
        assert process.poll() is None, process.stderr.read().decode()
        assert len(workers) >= 2, group_members(pgid)

        kill_main_and_expect_no_survivors(process)
    finally:
        clean_up(process)


@pytest.mark.slow
def test_killed_sweep_resumes_from_its_checkpoints(tmp_path):
    cache = {"V2XSIM_CACHE": str(tmp_path / "cache")}
    # three points of about a second each; one worker, so they finish one at a time
    args = ["--set", 'schemes=[{name="zf_sweep"},{name="wmmse_ce"}]', "--set", "sweep.speed_kmh=[30, 60, 90]",
            "--set", "sweep.seeds=[0]", "--set", "simulation.duration_s=2", "--set", "output.plots=false"]
    out = tmp_path / "killed"
    process = start_sweep(out, "--workers", "1", "--quiet", *args, env=cache)
    try:
        deadline = time.monotonic() + 60
        checkpoints = []
        while time.monotonic() < deadline and process.poll() is None:
            checkpoints = list(out.glob(".checkpoints/*/point-*.pkl"))
            if checkpoints:
                break
            time.sleep(0.02)
        assert process.poll() is None, "the sweep ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        kill_group(process.pid)
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
    checkpoints = sorted(out.glob(".checkpoints/*/point-*.pkl"))
    assert 1 <= len(checkpoints) < 3, checkpoints
    assert not (out / "results.csv").exists()

    resumed = subprocess.run([sys.executable, "-m", "v2xsim", "run", str(HEADLINE), "--out", str(out),
                              "--workers", "1", *args], cwd=ROOT, capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, timeout=300, env={**os.environ, **cache})
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {len(checkpoints)} of 3 points from checkpoints" in resumed.stderr
    # only the missing points ran again
    assert len([line for line in resumed.stderr.splitlines() if line.startswith("[")]) == 3 - len(checkpoints)
    assert not (out / ".checkpoints").exists()

    fresh = tmp_path / "fresh"
    whole = subprocess.run([sys.executable, "-m", "v2xsim", "run", str(HEADLINE), "--out", str(fresh),
                            "--workers", "1", "--quiet", *args], cwd=ROOT, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=300, env={**os.environ, **cache})
    assert whole.returncode == 0, whole.stderr
    assert (out / "results.csv").read_bytes() == (fresh / "results.csv").read_bytes()
    with (out / "results.csv").open() as handle:
        assert {float(row["speed_kmh"]) for row in csv.DictReader(handle)} == {30.0, 60.0, 90.0}
