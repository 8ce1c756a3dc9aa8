"""Bad input, all of it: every kind of wrong value is refused with one line naming the key
(exit code 2 on the command line), and a bug is not mistaken for bad input (traceback,
exit code 1)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from v2xsim.config import apply_overrides, load_scenario, scenario_from_dict
from v2xsim.errors import ConfigError
from v2xsim.sim.engine import run_point

ROOT = Path(__file__).resolve().parents[1]
HEADLINE = ROOT / "scenarios" / "speed_sweep.toml"
#: a run that takes well under a second: 2 cars, 50 ms, one classical scheme, one point
TINY = ["simulation.duration_s=0.05", "traffic.num_vehicles=2", 'schemes=[{name="zf_sweep"}]',
        "sweep.speed_kmh=[30]", "sweep.seeds=[0]", "output.plots=false"]


def v2xsim(*args, env=None):
    return subprocess.run([sys.executable, "-m", "v2xsim", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, stdin=subprocess.DEVNULL, timeout=300, env={**os.environ, **(env or {})})


def python(code: str, *, env=None):
    """Run a Python snippet in a fresh interpreter (the repository as working directory)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT,
                          stdin=subprocess.DEVNULL, timeout=300, env={**os.environ, **(env or {})})


def ids(cases):
    """Test ids: the overrides of each case."""
    return [" ".join(case[0]) if isinstance(case[0], list) else case[0] for case in cases]


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private model cache (no scheme here trains, but nothing may touch the user's)."""
    return {"V2XSIM_CACHE": str(tmp_path_factory.mktemp("cache"))}


# ------------------------------------------------------------ non-finite numbers
# (override, fragments the one-line message must contain); one key per section, some
# with all of inf, -inf and nan, and nested plug-in options
NON_FINITE = [
    ("seed=nan", ["seed"]),
    ("road.rsu_height_m=inf", ["road.rsu_height_m"]),
    ("road.rsu_height_m=nan", ["road.rsu_height_m"]),
    ("road.lanes=[{speed_limit_kmh=inf}]", ["road.lanes.0.speed_limit_kmh"]),
    ("road.lanes=[{}, {speed_limit_kmh=nan}]", ["road.lanes.1.speed_limit_kmh"]),
    ("radio.tx_power_dbm=inf", ["radio.tx_power_dbm"]),
    ("radio.tx_power_dbm=-inf", ["radio.tx_power_dbm"]),
    ("radio.tx_power_dbm=nan", ["radio.tx_power_dbm"]),
    ("radio.sensitivity_dbm=-inf", ["radio.sensitivity_dbm"]),
    ("channel.options.oxygen_db_per_km=inf", ["channel.options", "oxygen_db_per_km"]),
    ("channel.options.oxygen_db_per_km=-inf", ["channel.options", "oxygen_db_per_km"]),
    ("channel.options={blockage_db={car=nan}}", ["channel.options", "blockage_db.car"]),
    ("traffic.speed_kmh=inf", ["traffic.speed_kmh"]),
    ("traffic.speed_kmh=nan", ["traffic.speed_kmh"]),
    ("traffic.arrivals=[{time_s=nan, lane=0, speed_kmh=30}]", ["traffic.arrivals.0.time_s"]),
    ("blockers.pedestrians=inf", ["blockers.pedestrians"]),
    ("mobility.options.max_acceleration=inf", ["mobility.options", "max_acceleration"]),
    ("mobility.options={lane_speed_limits_kmh=[50, nan, 50]}", ["mobility.options", "lane_speed_limits_kmh.1"]),
    ("timing.beam_slot_ms=inf", ["timing.beam_slot_ms"]),
    ("timing.compute_ms={gba=inf}", ["timing.compute_ms.gba"]),
    ("timing.compute_ms={gba=nan}", ["timing.compute_ms.gba"]),
    ("realignment.period_ms=inf", ["realignment.period_ms"]),
    ("simulation.duration_s=inf", ["simulation.duration_s"]),
    ("simulation.duration_s=-inf", ["simulation.duration_s"]),
    ("simulation.duration_s=nan", ["simulation.duration_s"]),
    ("sweep.speed_kmh=[10, inf]", ["sweep.speed_kmh.1"]),
    ('schemes=[{name="gba", options={bit_error=nan}}]', ["schemes.0.options", "bit_error"]),
    ('schemes=[{name="gba", options={training={lr=inf}}}]', ["schemes.0.options", "training.lr"]),
    ('schemes=[{name="zf_sweep"}, {name="wmmse_ce", options={residual_fraction=-inf}}]',
     ["schemes.1.options", "residual_fraction"]),
]


@pytest.mark.parametrize("override,fragments", NON_FINITE, ids=ids(NON_FINITE))
def test_load_scenario_refuses_non_finite_numbers_naming_the_key(override, fragments):
    with pytest.raises(ConfigError) as caught:
        load_scenario(HEADLINE, [override])
    message = str(caught.value)
    assert "\n" not in message
    assert str(HEADLINE) in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("override,fragments", NON_FINITE, ids=ids(NON_FINITE))
def test_scenario_from_dict_refuses_non_finite_numbers_naming_the_key(override, fragments):
    data = apply_overrides({"schemes": [{"name": "zf_sweep"}]}, [override])
    with pytest.raises(ConfigError) as caught:
        scenario_from_dict(data)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_python_floats_are_refused_too(value):
    """Python callers build dicts with float('nan'), not TOML: same checks."""
    with pytest.raises(ConfigError, match=r"radio\.tx_power_dbm"):
        scenario_from_dict({"schemes": [{"name": "zf_sweep"}], "radio": {"tx_power_dbm": value}})
    with pytest.raises(ConfigError, match=r"schemes\.0\.options.*training\.betas\.1"):
        scenario_from_dict({"schemes": [{"name": "gba", "options": {"training": {"betas": [0.9, value]}}}]})


def test_non_finite_literal_in_the_file_itself(tmp_path):
    path = tmp_path / "scenario.toml"
    path.write_text('[road]\nrsu_height_m = inf\n\n[[schemes]]\nname = "zf_sweep"\n')
    with pytest.raises(ConfigError, match=r"scenario\.toml: road\.rsu_height_m"):
        load_scenario(path)


@pytest.mark.parametrize("override,key", [
    ("road.rsu_height_m=inf", "road.rsu_height_m"),
    ("radio.tx_power_dbm=-inf", "radio.tx_power_dbm"),
    ("channel.options.oxygen_db_per_km=nan", "oxygen_db_per_km"),
    ('schemes=[{name="gba", options={training={lr=inf}}}]', "training.lr"),
])
def test_cli_refuses_non_finite_numbers_with_one_line(tmp_path, override, key):
    result = v2xsim("run", HEADLINE, "--out", tmp_path / "out", "--set", override, "--quiet")
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("v2xsim: error: ") and key in line


# ------------------------------------------------------------ unreadable input files
def test_scenario_that_is_not_utf8_exits_2(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "Stra\xdfe"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="latin1.toml"):
        load_scenario(path)
    result = v2xsim("run", path, "--out", tmp_path / "out", "--quiet")
    assert result.returncode == 2 and "latin1.toml" in one_line(result.stderr)


def test_study_file_that_is_not_utf8_exits_2(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('study = "rsu_ablation"\nname = "Stra\xdfe"\n'.encode("latin-1"))
    result = v2xsim("study", path, "--out", tmp_path / "out", "--quiet")
    assert result.returncode == 2 and "latin1.toml" in one_line(result.stderr)


# ------------------------------------------------------------ --out
def test_out_is_an_existing_file(tmp_path):
    target = tmp_path / "results.txt"
    target.write_text("not a directory")
    result = v2xsim("run", HEADLINE, "--out", target, "--quiet", *sum([["--set", s] for s in TINY], []))
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert str(target) in line and "not a directory" in line
    assert target.read_text() == "not a directory"


def test_out_below_a_regular_file(tmp_path):
    target = tmp_path / "results.txt"
    target.write_text("not a directory")
    result = v2xsim("run", HEADLINE, "--out", target / "sub", "--quiet", *sum([["--set", s] for s in TINY], []))
    assert result.returncode == 2
    assert str(target / "sub") in one_line(result.stderr)


# ------------------------------------------------------------ a bug is not bad input
BUG = """
import sys
import v2xsim.build
from v2xsim.cli import main

def broken(*args, **kwargs):
    raise {error}

v2xsim.build.{target} = broken
sys.exit(main(["run", "scenarios/speed_sweep.toml", "--out", {out!r}, "--workers", "1", "--quiet",
               {tiny}]))
"""


@pytest.mark.parametrize("target,error,shown", [
    ("mobility_model", 'RuntimeError("deliberate bug")', "RuntimeError: deliberate bug"),
    ("traffic_source", 'KeyError("deliberate")', "KeyError: 'deliberate'"),
    # a plain ValueError raised deep inside a run is a bug too (ConfigError is the one
    # ValueError that means bad input)
    ("blockers", 'ValueError("deliberate value error")', "ValueError: deliberate value error"),
], ids=["RuntimeError", "KeyError", "ValueError"])
def test_a_bug_keeps_its_traceback_and_exits_1(tmp_path, cache, target, error, shown):
    tiny = ", ".join(f'"--set", {s!r}' for s in TINY)
    result = python(BUG.format(error=error, target=target, out=str(tmp_path / "out"), tiny=tiny), env=cache)
    assert result.returncode == 1, result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert shown in result.stderr
    assert "v2xsim: error:" not in result.stderr


def test_the_unpatched_tiny_run_succeeds(tmp_path, cache):
    """The control of the test above: without the injected bug the same call exits 0."""
    tiny = ", ".join(f'"--set", {s!r}' for s in TINY)
    code = BUG.replace("v2xsim.build.{target} = broken", "").format(error="None", out=str(tmp_path / "out"),
                                                                     tiny=tiny)
    result = python(code, env=cache)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "results.csv").exists()


# ------------------------------------------------------------ plug-in options
def tiny_scenario(*overrides):
    return load_scenario(HEADLINE, [*TINY, *overrides])


def run_tiny(*overrides):
    scenario = tiny_scenario(*overrides)
    return run_point(scenario, speed_kmh=30.0, num_vehicles=2, seed=0)


UNKNOWN_OPTIONS = [
    (["channel.options={foo=1}"], ["channel backend 'geometric'", "'foo'", "valid:", "oxygen_db_per_km"]),
    (['mobility.model="idm"', "mobility.options={bogus=1}"],
     ["mobility model 'idm'", "'bogus'", "valid:", "max_acceleration", "time_headway"]),
    (['schemes=[{name="wmmse_ce", options={bogus=1}}]'],
     ["scheme 'wmmse_ce'", "'bogus'", "valid:", "max_paths", "quantisation_bits"]),
    (['schemes=[{name="zf_sweep", options={bogus=1}}]'], ["scheme 'zf_sweep'", "'bogus'", "valid: (none)"]),
]


@pytest.mark.parametrize("overrides,fragments", UNKNOWN_OPTIONS, ids=ids(UNKNOWN_OPTIONS))
def test_unknown_plugin_options_are_refused_listing_the_valid_ones(overrides, fragments):
    scenario = tiny_scenario(*overrides)  # an option is the plug-in's business: loading accepts it
    with pytest.raises(ConfigError) as caught:
        run_point(scenario, speed_kmh=30.0, num_vehicles=2, seed=0)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


BAD_RUN_VALUES = [
    # wrong values of known options, refused by the plug-in's constructor
    (["channel.options={oxygen_db_per_km=-1}"], ["channel backend 'geometric'", "oxygen_db_per_km"]),
    (['channel.options={oxygen_db_per_km="lots"}'], ["channel backend 'geometric'"]),
    (["channel.options={blockage_db={bus=3}}"], ["blockage_db", "'bus'", "valid:"]),
    (["channel.options={blockage_db=3}"], ["channel backend 'geometric'", "blockage_db"]),
    (['mobility.model="idm"', "mobility.options={max_acceleration=-1}"], ["mobility model 'idm'", "max_acceleration"]),
    # the IDM learns the number of lanes only when the world starts
    (['mobility.model="idm"', "mobility.options={lane_speed_limits_kmh=[50]}"],
     ["lane_speed_limits_kmh", "3 values", "got 1"]),
    (['schemes=[{name="wmmse_ce", options={max_paths=0}}]'], ["scheme 'wmmse_ce'", "max_paths"]),
    (['schemes=[{name="oracle", options={rounds=[1]}}]'], ["scheme 'oracle'"]),
    (['channel.backend="nope"'], ["unknown channel backend 'nope'", "valid:", "geometric"]),
    (['mobility.model="nope"'], ["unknown mobility model 'nope'", "valid:", "constant_velocity", "idm"]),
    (['traffic.pattern="fixed"', "traffic.arrivals=[{time_s=0, lane=7, speed_kmh=30}]"],
     ["traffic.arrivals.0.lane", "lane 7"]),
    (['plugins=["v2xsim_no_such_module"]'], ["plugins", "v2xsim_no_such_module"]),
    # finite in the file, but no power in watts (the dBm -> W conversion overflows / underflows)
    (["radio.tx_power_dbm=1e308"], ["radio.tx_power_dbm"]),
    (["radio.tx_power_dbm=-1e308"], ["radio.tx_power_dbm"]),
    (["radio.noise_figure_db=1e308"], ["radio.noise_figure_db"]),
]


@pytest.mark.parametrize("overrides,fragments", BAD_RUN_VALUES, ids=ids(BAD_RUN_VALUES))
def test_bad_plugin_and_run_values_are_config_errors(overrides, fragments):
    with pytest.raises(ConfigError) as caught:
        run_tiny(*overrides)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


CLI_PLUGIN_ERRORS = [
    (["channel.options={foo=1}"], ["'foo'", "valid:", "oxygen_db_per_km"]),
    (['mobility.model="idm"', "mobility.options={lane_speed_limits_kmh=[50]}"], ["lane_speed_limits_kmh"]),
    (['schemes=[{name="wmmse_ce", options={bogus=1}}]'], ["'bogus'", "valid:", "max_paths"]),
    (["radio.tx_power_dbm=1e308"], ["radio.tx_power_dbm"]),
]


@pytest.mark.parametrize("overrides,fragments", CLI_PLUGIN_ERRORS, ids=ids(CLI_PLUGIN_ERRORS))
def test_cli_plugin_option_errors_exit_2_with_one_line(tmp_path, cache, overrides, fragments):
    sets = sum([["--set", s] for s in [*TINY, *overrides]], [])
    result = v2xsim("run", HEADLINE, "--out", tmp_path / "out", "--workers", "1", "--quiet", *sets, env=cache)
    assert result.returncode == 2
    line = one_line(result.stderr)
    for fragment in fragments:
        assert fragment in line


# ------------------------------------------------------------ other commands
@pytest.mark.parametrize("override,fragments", [
    ("trials_per_category=inf", ["trials_per_category"]),
    ("trials_per_category=nan", ["trials_per_category"]),
    ("speed_kmh=[10, inf]", ["speed_kmh.1"]),
    ("gps_noise_m=inf", ["gps_noise_m"]),
    ("channel={oxygen_db_per_km=-inf}", ["channel.oxygen_db_per_km"]),
])
def test_dataset_options_refuse_non_finite_numbers(override, fragments):
    from v2xsim.data.flash_like import config_from_overrides

    with pytest.raises(ConfigError) as caught:
        config_from_overrides([override])
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("override,key", [
    ("trials_per_category=inf", "trials_per_category"),
    ("road={rsu_height_m=-1}", "road.rsu_height_m"),
    ('radio={tx_power_dbm="loud"}', "radio.tx_power_dbm"),
    ("blockers=3", "blockers"),
])
def test_cli_dataset_bad_options_exit_2_with_one_line(tmp_path, override, key):
    result = v2xsim("dataset", "flash-like", "--out", tmp_path / "data", "--set", override, "--quiet")
    assert result.returncode == 2
    assert key in one_line(result.stderr)


@pytest.mark.parametrize("override,fragments", [
    ("training.lr=inf", ["training", "lr"]),
    ("radio.tx_power_dbm=nan", ["radio", "tx_power_dbm"]),
    ('radio.tx_power_dbm="loud"', ["radio.tx_power_dbm"]),
    ("road.rsu_height_m=-1", ["road.rsu_height_m"]),
    ("road.colour=1", ["road.colour"]),
    ('variants=[{label="x", options={lr=nan}}]', ["variants.0.options", "lr"]),
])
def test_rsu_study_refuses_bad_sections_at_load(override, fragments):
    from v2xsim.studies.rsu_ablation import load_study

    with pytest.raises(ConfigError) as caught:
        load_study(ROOT / "scenarios" / "rsu_ablation.toml", [override])
    message = str(caught.value)
    assert "\n" not in message and "rsu_ablation.toml" in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("override,fragments", [
    ("training.lr=inf", ["training", "lr"]),
    ("data.sample_period_s=nan", ["data", "sample_period_s"]),
    ("rsu.lr=-inf", ["rsu", "lr"]),
    ("radio.tx_power_dbm=inf", ["radio", "tx_power_dbm"]),
    ("road.lanes=[]", ["road.lanes"]),
])
def test_vehicle_study_refuses_bad_sections_at_load(override, fragments):
    from v2xsim.studies import read_study_file
    from v2xsim.studies.vehicle_deployment import load_vehicle_study

    path = ROOT / "scenarios" / "vehicle_deployment.toml"
    with pytest.raises(ConfigError) as caught:
        load_vehicle_study(read_study_file(path, [override]), path)
    message = str(caught.value)
    assert "\n" not in message and "vehicle_deployment.toml" in message
    for fragment in fragments:
        assert fragment in message


def test_cli_study_with_a_non_finite_option_exits_2(tmp_path):
    result = v2xsim("study", ROOT / "scenarios" / "rsu_ablation.toml", "--out", tmp_path / "out",
                    "--set", "training.lr=inf", "--quiet")
    assert result.returncode == 2 and "lr" in one_line(result.stderr)
