"""The examples in examples/ run, and the plug-in each registers is the one that ran;
scenarios load their own plug-in modules (``plugins = [...]``), also in worker processes."""

import csv
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from v2xsim.config import load_scenario, scenario_from_dict
from v2xsim.errors import ConfigError
from v2xsim.executors import SerialExecutor
from v2xsim.sim.results import result_rows
from v2xsim.sim.runner import run_sweep, run_to_directory

pytestmark = pytest.mark.slow  # runs every example end to end

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NAMES = ("custom_mobility", "custom_scheme", "custom_channel")


def python(*args, cwd, env=None, timeout=300):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          stdin=subprocess.DEVNULL, timeout=timeout, env=env)


def rows_of(out: Path) -> dict[tuple[str, float], dict]:
    """results.csv as {(scheme, speed): row}, numbers as floats."""
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    parsed = {}
    for row in rows:
        row = {k: (v if k in ("scheme", "channel", "aging") else float(v)) for k, v in row.items()}
        parsed[row["scheme"], row["speed_kmh"]] = row
    return parsed


def rerun_changed(out: Path, **sections) -> dict[tuple[str, float], dict]:
    """The configuration an example ran (from its summary.json) with whole keys of some
    sections replaced, run again in this process: the same scenario without the plug-in."""
    config = json.loads((out / "summary.json").read_text())["configuration"]
    for section, values in sections.items():
        config[section].update(values)
    outputs = run_sweep(scenario_from_dict(config), executor=SerialExecutor(), quiet=True)
    return {(row["scheme"], float(row["speed_kmh"])): row for row in result_rows(outputs)}


@pytest.fixture(scope="module")
def example_out(tmp_path_factory):
    """Runs an example once (as a user would: ``python examples/NAME.py OUT``) -> OUT."""
    done = {}

    def run(name: str) -> Path:
        if name not in done:
            out = tmp_path_factory.mktemp(name) / "out"
            result = python(EXAMPLES / f"{name}.py", out, cwd=tmp_path_factory.mktemp("cwd"))
            assert result.returncode == 0, result.stderr
            assert str(out / "results.csv") in result.stdout  # tells the user where the results are
            done[name] = out
        return done[name]

    return run


@pytest.mark.parametrize("name", NAMES)
def test_examples_are_short_and_say_how_to_run_them(name):
    text = (EXAMPLES / f"{name}.py").read_text()
    assert len(text.splitlines()) < 60
    assert f"python examples/{name}.py" in text and f'plugins = ["{name}"]' in text
    assert 'if __name__ == "__main__":' in text


def test_stop_and_go_mobility_moves_the_cars(example_out):
    out = example_out("custom_mobility")
    rows = rows_of(out)
    assert json.loads((out / "summary.json").read_text())["configuration"]["mobility"]["model"] == "stop_and_go"
    events = list(csv.DictReader((out / "events.csv").open()))
    assert events and {e["scheme"] for e in events} == {"oracle", "zf_sweep"}
    # crawling cars stay longer in a beam: realignment periods longer than at the nominal
    # speed (a constant-velocity run realigns exactly at the nominal coherence time)
    fast = rows["zf_sweep", 90.0]
    assert fast["t_coherence_s"] > 1.2 * fast["paper_t_coherence_s"]
    baseline = rerun_changed(out, mobility={"model": "constant_velocity", "options": {}})
    assert baseline["zf_sweep", 90.0]["t_coherence_s"] == pytest.approx(fast["paper_t_coherence_s"])
    for key, row in rows.items():
        assert row["alignments"] != baseline[key]["alignments"], key


def test_custom_scheme_runs_next_to_zf_sweep(example_out):
    rows = rows_of(example_out("custom_scheme"))
    assert {scheme for scheme, _ in rows} == {"zf_sweep", "strongest_few"}
    for speed in (30.0, 90.0):
        mine, zf = rows["strongest_few", speed], rows["zf_sweep", speed]
        assert math.isfinite(mine["effective_sum_rate"]) and mine["effective_sum_rate"] > 0
        # its own decisions: at most max_served = 3 of the 6 cars (zf_sweep serves all that hear a beam)
        assert 0 < mine["mean_served"] <= 3 < zf["mean_served"]
        # its own feedback: index + 3 level bits per car, so a longer back-channel report
        assert mine["t_delay_s"] > zf["t_delay_s"]
    assert rows["strongest_few", 30.0]["effective_sum_rate"] > 1.0


def test_custom_channel_gives_other_channels_than_the_geometric_one(example_out):
    out = example_out("custom_channel")
    rows = rows_of(out)
    assert {row["channel"] for row in rows.values()} == {"free_space"}
    baseline = rerun_changed(out, channel={"backend": "geometric", "options": {}})
    assert set(baseline) == set(rows)
    for key, row in rows.items():
        assert math.isfinite(row["sum_rate"]) and row["sum_rate"] > 0
        assert row["sum_rate"] != pytest.approx(baseline[key]["sum_rate"], rel=1e-3), key


def test_the_examples_are_plugin_modules_a_scenario_can_name(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(EXAMPLES), os.environ.get("PYTHONPATH")]))}
    result = python("-m", "v2xsim", "run", ROOT / "scenarios" / "speed_sweep.toml", "--out", out, "--workers", 2,
                    "--quiet", "--set", 'plugins=["custom_mobility", "custom_channel", "custom_scheme"]',
                    "--set", 'mobility.model="stop_and_go"', "--set", 'channel.backend="free_space"',
                    "--set", 'schemes=[{name="strongest_few", options={max_served=2}}]',
                    "--set", "sweep.speed_kmh=[30, 90]", "--set", "simulation.duration_s=0.3",
                    "--set", "traffic.num_vehicles=4", "--set", "output.plots=false", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    rows = rows_of(out)
    assert set(rows) == {("strongest_few", 30.0), ("strongest_few", 90.0)}
    for row in rows.values():
        assert row["channel"] == "free_space" and 0 < row["mean_served"] <= 2 and row["effective_sum_rate"] > 0


PLUGIN = '''
import os
from pathlib import Path

from v2xsim.mobility import MobilityModel
from v2xsim.registry import MOBILITY


@MOBILITY.register("half_speed")
class HalfSpeed(MobilityModel):
    """Every car drives at half the speed it enters with; notes which process ran it."""

    def reset(self, **kwargs):
        super().reset(**kwargs)
        (Path(__file__).parent / "pids").mkdir(exist_ok=True)
        (Path(__file__).parent / "pids" / str(os.getpid())).touch()

    def add(self, *, speed, desired_speed=None, **rest):
        super().add(speed=speed / 2, desired_speed=None if desired_speed is None else desired_speed / 2, **rest)

    def step(self, dt):
        self.x = self.x + self.speed * dt
'''

SCENARIO = '''
name = "half_speed"
plugins = ["{module}"]
[mobility]
model = "half_speed"
[traffic]
num_vehicles = 4
[simulation]
duration_s = 0.3
[[schemes]]
name = "zf_sweep"
[sweep]
speed_kmh = [30, 90]
[output]
plots = false
'''


def test_plugins_are_loaded_in_worker_processes(tmp_path):
    (tmp_path / "my_plugins.py").write_text(PLUGIN)
    (tmp_path / "scenario.toml").write_text(SCENARIO.format(module="my_plugins"))
    out = tmp_path / "out"
    snippet = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from v2xsim.config import load_scenario
        from v2xsim.sim.runner import run_to_directory

        print(os.getpid())
        run_to_directory(load_scenario({str(tmp_path / 'scenario.toml')!r}), Path({str(out)!r}), workers=2,
                         quiet=True)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    result = python("-c", snippet, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    parent = result.stdout.split()[0]
    ran_in = {path.name for path in (tmp_path / "pids").iterdir()}
    assert ran_in and parent not in ran_in  # both points ran in spawned workers that loaded my_plugins
    rows = rows_of(out)
    assert set(rows) == {("zf_sweep", 30.0), ("zf_sweep", 90.0)}
    for row in rows.values():  # half the speed: twice the nominal beam coherence time
        assert row["t_coherence_s"] == pytest.approx(2 * row["paper_t_coherence_s"], rel=1e-6)
        assert row["effective_sum_rate"] > 0


def test_a_plugin_module_that_cannot_be_imported_is_a_config_error(tmp_path):
    path = tmp_path / "scenario.toml"
    path.write_text(SCENARIO.format(module="no_such_v2xsim_plugin"))
    with pytest.raises(ConfigError, match=r"plugins: cannot import 'no_such_v2xsim_plugin'"):
        run_to_directory(load_scenario(path), tmp_path / "out", workers=1, quiet=True)
    result = python("-m", "v2xsim", "run", path, "--out", tmp_path / "cli", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "plugins" in lines[0] and "no_such_v2xsim_plugin" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
