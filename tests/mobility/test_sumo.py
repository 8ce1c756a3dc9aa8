"""The ``sumo`` mobility model: the DES sees SUMO's own traffic (positions and speeds equal
SUMO's FCD output at every SUMO step, linear in between), one seed one world, SUMO closed
after every run, and bad input refused in one line naming the file or the extra."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import world_recorder as recorder

from v2xsim.config import load_scenario
from v2xsim.errors import ConfigError
from v2xsim.geometry import RoadLayout
from v2xsim.mobility.frames import KNOWN_TYPES
from v2xsim.registry import MOBILITY
from v2xsim.sim.engine import run_point

from v2xsim.mobility import sumo as sumo_module
from v2xsim.mobility.sumo import DEFAULT_CONFIG, SumoMobility, sumo_binary

try:
    import libsumo  # noqa: F401

    SUMO_ERROR = None
except ImportError as error:
    SUMO_ERROR = str(error)
#: tests that run SUMO: skipped without the sumo extra (but see test_sumo_is_usable_in_ci)
needs_sumo = pytest.mark.skipif(SUMO_ERROR is not None, reason="the sumo extra is not installed "
                                "(pip install 'v2xsim[sumo]')")

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "sumo_straight.toml"
LAYOUT = RoadLayout()
WARMUP_S = 60.0  # the scenario's
DURATION_S = 3.0
TINY = ['schemes=[{name="oracle"}]', f"simulation.duration_s={DURATION_S}", "output.plots=false"]


def scenario(*overrides):
    return load_scenario(SCENARIO, [*TINY, *overrides])


@pytest.fixture(scope="module")
def fcd(tmp_path_factory) -> dict[float, dict[str, tuple[float, float, int, str]]]:
    """SUMO's own FCD output of the shipped road, seed 0, written by the sumo binary:
    time -> {vehicle id: (front x, speed, lane index, type)}."""
    try:
        binary = sumo_binary()
    except ConfigError:
        pytest.skip("the sumo binary (eclipse-sumo) is not installed")
    path = tmp_path_factory.mktemp("fcd") / "fcd.xml"
    subprocess.run([binary, "-c", str(DEFAULT_CONFIG), "--seed", "0", "--step-length", "0.1", "--precision", "17",
                    "--end", str(WARMUP_S + DURATION_S + 1), "--fcd-output", str(path)], check=True,
                   capture_output=True)
    steps = {}
    for timestep in ET.parse(path).getroot():
        steps[float(timestep.get("time"))] = {
            v.get("id"): (float(v.get("x")), float(v.get("speed")), int(v.get("lane").rpartition("_")[2]),
                          v.get("type")) for v in timestep}
    return steps


def record_world(monkeypatch) -> list[tuple[float, dict[str, tuple[float, float, int]]]]:
    """Every state the engine's world passes through: (time, {SUMO id: (front x, speed, lane)})."""

    def state(world):
        m = world.mobility
        return world.time, {m.source_ids[int(i)]: (float(x + length / 2), float(v), int(lane))
                            for i, x, v, lane, length in zip(m.ids, m.x, m.speed, m.lane, m.length)}

    return recorder.record_world(monkeypatch, state)


@needs_sumo
def test_the_des_sees_sumos_own_fcd_output_at_every_step_and_lines_in_between(fcd, monkeypatch):
    """Acceptance: positions and speeds seen by the DES equal SUMO's FCD output (same
    configuration and seed, the sumo binary) at every SUMO step; every vehicle of the
    covered stretch is there; between steps the fronts move on straight lines."""
    states = record_world(monkeypatch)
    run_point(scenario(), speed_kmh=50.0, num_vehicles=0, seed=0)
    x_min, x_max = LAYOUT.x_range
    times = np.array([t for t, _ in states])
    compared = vehicles = 0
    for sumo_time, records in sorted(fcd.items()):
        t = sumo_time - WARMUP_S
        if not 0 <= t < DURATION_S - 1e-6:
            continue
        index = int(np.argmin(np.abs(times - t)))
        assert abs(times[index] - t) < 1e-9, f"the world did not stop at SUMO's step {sumo_time}"
        seen = states[index][1]
        expected = {vid: r for vid, r in records.items()
                    if r[0] >= x_min and r[0] - KNOWN_TYPES[r[3]].length_m <= x_max}
        assert set(seen) == set(expected), sumo_time
        for vid, (x, speed, lane, _) in expected.items():
            assert seen[vid][0] == pytest.approx(x, abs=1e-9)
            assert seen[vid][1] == speed and seen[vid][2] == lane
        compared += 1
        vehicles += len(expected)
    assert compared == round(DURATION_S / 0.1) and vehicles > 3 * compared  # a busy road, every step
    # in between: on the line from one FCD record to the next
    checked = 0
    for t, seen in states[::37]:
        step = int(np.floor((t + WARMUP_S) * 10 + 1e-6))
        before, after = fcd.get(round(step / 10, 1)), fcd.get(round((step + 1) / 10, 1))
        share = (t + WARMUP_S) * 10 - step
        for vid, (x, _, _) in seen.items():
            if before and after and vid in before and vid in after and share > 1e-6:
                assert x == pytest.approx(before[vid][0] + share * (after[vid][0] - before[vid][0]), abs=1e-6)
                checked += 1
    assert checked > 100


@needs_sumo
def test_same_seed_same_results_other_seed_other_traffic():
    rows = {}
    for key, seed in (("a", 3), ("b", 3), ("c", 4)):
        output = run_point(scenario("simulation.duration_s=1.5"), speed_kmh=50.0, num_vehicles=0, seed=seed)
        rows[key] = ([r.as_row() for r in output.rows], output.cycles)
    assert rows["a"] == rows["b"]  # SUMO ran twice in this process: the first run was closed
    assert rows["a"][0] != rows["c"][0]


@needs_sumo
def test_the_traci_fallback_gives_libsumos_traffic():
    states = {}
    for api in ("libsumo", "traci"):
        model = SumoMobility(api=api, seed=5, warmup_s=30.0)
        model.reset(layout=LAYOUT, rng=np.random.default_rng(0))
        try:
            trail = []
            for _ in range(20):
                model.advance(0.05)
                trail.append((model.ids.copy(), model.x.copy(), model.speed.copy(), model.lane.copy()))
        finally:
            model.close()
        states[api] = trail
    for (ids_a, x_a, v_a, lane_a), (ids_b, x_b, v_b, lane_b) in zip(states["libsumo"], states["traci"]):
        np.testing.assert_array_equal(ids_a, ids_b)
        np.testing.assert_array_equal(lane_a, lane_b)
        np.testing.assert_allclose(x_a, x_b, atol=1e-9)
        np.testing.assert_allclose(v_a, v_b, atol=1e-9)


@needs_sumo
def test_fcd_output_records_the_run_one_file_per_seed(tmp_path):
    model = MOBILITY.create("sumo", {"fcd_output": "fcd-{seed}.xml", "warmup_s": 20.0}, seed=7, base_dir=tmp_path)
    model.reset(layout=LAYOUT, rng=np.random.default_rng(0))
    try:
        model.advance(0.5)
    finally:
        model.close()  # SUMO writes its outputs on close
    steps = ET.parse(tmp_path / "fcd-7.xml").getroot().findall("timestep")
    assert float(steps[-1].get("time")) >= 20.5 and any(len(step) for step in steps)


@needs_sumo
def test_one_libsumo_simulation_per_process_and_close_releases_it():
    first, second = SumoMobility(warmup_s=0.0), SumoMobility(warmup_s=0.0)
    first.reset(layout=LAYOUT, rng=np.random.default_rng(0))
    try:
        with pytest.raises(RuntimeError, match="one SUMO simulation per process"):
            second.reset(layout=LAYOUT, rng=np.random.default_rng(0))
    finally:
        first.close()
    second.reset(layout=LAYOUT, rng=np.random.default_rng(0))
    second.close()
    second.close()  # twice is harmless


@needs_sumo
def test_vehicle_classes_give_the_kind_and_sumos_types_give_the_box():
    model = SumoMobility(seed=0, warmup_s=0.0)
    model.reset(layout=LAYOUT, rng=np.random.default_rng(0))
    try:
        assert model._vehicle_type("bus") == KNOWN_TYPES["bus"]
        assert model._vehicle_type("truck").kind == "truck" and model._vehicle_type("car").kind == "car"
    finally:
        model.close()


def test_sumo_is_usable_in_ci():
    """CI installs the sumo extra (make setup): a skip there would hide a broken set-up."""
    if SUMO_ERROR is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"libsumo must be importable in CI: {SUMO_ERROR}")
        pytest.skip(f"libsumo not importable: {SUMO_ERROR}")
    from v2xsim.mobility.sumo import sumo_binary

    try:  # the FCD comparisons need the sumo binary too (the eclipse-sumo wheel)
        sumo_binary()
    except ConfigError as error:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"the sumo binary must be installed in CI: {error}")
        pytest.skip(f"the sumo binary (eclipse-sumo) is not installed: {error}")


def test_naming_the_model_does_not_import_sumo():
    code = textwrap.dedent("""
        import sys
        from v2xsim.registry import MOBILITY
        MOBILITY.get("sumo")
        assert "libsumo" not in sys.modules and "traci" not in sys.modules
    """)
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------ bad input
@needs_sumo
def test_a_missing_or_broken_sumocfg_is_refused_naming_the_file(tmp_path):
    with pytest.raises(ConfigError, match=f"SUMO configuration not found: {tmp_path / 'none.sumocfg'}"):
        MOBILITY.create("sumo", {"config": "none.sumocfg"}, base_dir=tmp_path)
    broken = tmp_path / "broken.sumocfg"
    broken.write_text('<configuration><input><net-file value="no.net.xml"/></input></configuration>')
    model = MOBILITY.create("sumo", {"config": str(broken)}, base_dir=None)
    with pytest.raises(ConfigError) as error:
        model.reset(layout=LAYOUT, rng=np.random.default_rng(0))
    assert str(broken) in str(error.value) and "no.net.xml" in str(error.value)
    assert sumo_module._libsumo_holder is None  # nothing left running


@pytest.mark.parametrize("options,fragment", [
    ({"api": "sockets"}, "api must be one of libsumo, traci"),
    ({"step_length_s": 0}, "step_length_s must be a finite number > 0"),
    ({"warmup_s": -1}, "warmup_s must be a finite number >= 0"),
    ({"precision": 20}, "precision must be an integer in 0..17"),
    ({"args": "--scale 2"}, "args must be a list of strings"),
    ({"seed": 1.5}, "seed must be an integer"),
    ({"types": {"car": {"kind": "tank"}}}, "types.car.kind"),
])
def test_bad_options_are_refused_naming_the_option(options, fragment, monkeypatch):
    monkeypatch.setattr(sumo_module, "installed", lambda module: True)  # the options come first
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        MOBILITY.create("sumo", options)


def test_without_sumo_a_scenario_fails_in_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    from v2xsim.cli import main

    monkeypatch.setattr(sumo_module, "installed", lambda module: False)
    code = main(["run", str(SCENARIO), "--out", str(tmp_path / "out"), "--executor", "serial", "--quiet",
                 *[arg for item in TINY for arg in ("--set", item)]])
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "pip install 'v2xsim[sumo]'" in lines[0], lines


def test_the_shipped_network_matches_the_road_defaults():
    """The straight road's lanes are the [road] defaults' in the RSU frame, and the road
    reaches well beyond the covered stretch at both ends."""
    net = ET.parse(DEFAULT_CONFIG.parent / "straight.net.xml").getroot()
    lanes = sorted(net.iter("lane"), key=lambda lane: int(lane.get("index")))
    assert len(lanes) == LAYOUT.num_lanes
    for lane, centre in zip(lanes, LAYOUT.lane_centres):
        (x0, y0), (x1, y1) = (map(float, point.split(",")) for point in lane.get("shape").split())
        assert y0 == y1 == pytest.approx(centre) and float(lane.get("width")) == LAYOUT.lane_width_m
        assert x0 < LAYOUT.x_range[0] - 100 and x1 > LAYOUT.x_range[1] + 100


@needs_sumo
def test_the_committed_network_is_what_the_script_makes(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_networks", ROOT / "scenarios" / "sumo" / "make_networks.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.straight(tmp_path)
    for name in ("straight.nod.xml", "straight.edg.xml", "straight.net.xml", "straight.rou.xml", "straight.sumocfg"):
        assert (tmp_path / name).read_text() == (DEFAULT_CONFIG.parent / name).read_text(), (
            f"{name} is out of date: rerun python scenarios/sumo/make_networks.py")
