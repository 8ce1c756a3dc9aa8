"""Planar traffic on the shipped 4-way intersection: the DES sees SUMO's own positions and
headings, bodies turn with their heading, the RSU's sector coverage decides entry and exit,
the signal phase labels the run, the demand scales the flows; the straight road and the
built-in models are unchanged."""

from __future__ import annotations

import math
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import world_recorder as recorder

from v2xsim.config import load_scenario, scenario_from_dict
from v2xsim.errors import ConfigError
from v2xsim.geometry import RoadLayout, SectorCoverage, footprint, on_ground
from v2xsim.mobility import sumo as sumo_module
from v2xsim.mobility.frames import KNOWN_TYPES, sumo_heading, wrap_angle
from v2xsim.registry import MOBILITY
from v2xsim.sim.engine import run_point
from v2xsim.sim.world import World

try:
    import libsumo  # noqa: F401

    SUMO_ERROR = None
except ImportError as error:
    SUMO_ERROR = str(error)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: tests that run SUMO: skipped without the sumo extra, except in CI, where they fail
needs_sumo = pytest.mark.skipif(SUMO_ERROR is not None and not IN_CI,
                                reason="the sumo extra is not installed (pip install 'v2xsim[sumo]')")

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "intersection_sumo.toml"
NETWORK = ROOT / "scenarios" / "sumo" / "intersection"
CONFIG = NETWORK / "intersection.sumocfg"
LAYOUT = RoadLayout(buildings=False)  # the scenario's [road]
SITE = {"x_offset_m": -9.0, "y_offset_m": -9.0, "rotation_deg": -45.0}
RANGE_M = 35.0
REGION = SectorCoverage(layout=LAYOUT, range_m=RANGE_M)
WARMUP_S = 60.0
TINY = ['schemes=[{name="oracle"}]', "output.plots=false"]


def scenario(*overrides):
    return load_scenario(SCENARIO, [*TINY, *overrides])


def to_site(x, y):
    """SUMO coordinates -> the RSU's site frame (the scenario's offsets and rotation)."""
    turn = math.radians(SITE["rotation_deg"])
    dx, dy = np.asarray(x) - SITE["x_offset_m"], np.asarray(y) - SITE["y_offset_m"]
    return math.cos(turn) * dx + math.sin(turn) * dy, -math.sin(turn) * dx + math.cos(turn) * dy


def record_world(monkeypatch) -> list[tuple[float, dict[str, tuple[float, float, float]]]]:
    """Every state the engine's world passes through: (time, {SUMO id: (x, y, heading)})."""

    def state(world):
        m = world.mobility
        return world.time, {m.source_ids[int(i)]: (float(x), float(y), float(h))
                            for i, x, y, h in zip(m.ids, m.x, m.y, m.heading)}

    return recorder.record_world(monkeypatch, state)


# ------------------------------------------------------------ turned bodies
def test_a_body_turned_by_a_right_angle_is_width_by_length_exactly():
    for quarter in range(-4, 5):
        along, across = footprint(4.5, 1.8, quarter * math.pi / 2)
        assert (float(along), float(across)) == ((4.5, 1.8) if quarter % 2 == 0 else (1.8, 4.5))
    along, across = footprint(4.5, 1.8, math.radians(45.0))
    assert along == pytest.approx((4.5 + 1.8) / math.sqrt(2)) and across == pytest.approx(along)
    box = on_ground("car", [3.0], [4.0], heading=[math.pi / 2])
    np.testing.assert_array_equal(box.size, [[1.8, 4.5, 1.5]])
    np.testing.assert_array_equal(on_ground("car", [3.0], [4.0]).size, [[4.5, 1.8, 1.5]])  # along +x by default


def write_planar_csv(path: Path, rows) -> Path:
    """A CSV trace with SUMO's angle column: rows (time, id, x, y, speed, type, angle)."""
    lines = ["time,id,x,y,speed,type,angle"] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_world_turns_each_vehicles_box_with_its_heading(tmp_path):
    """A car driving north (SUMO angle 0) in the site frame turned by 0 deg: its box is
    1.8 m along x and 4.5 m along y, its centre 2.25 m behind the front, and the snapshot
    carries its heading; a truck driving east keeps its 12 x 2.5 m box."""
    rows = [(0.0, "north", 0.0, 6.0, 10.0, "car", 0.0), (0.0, "east", -3.0, 12.0, 5.0, "truck", 90.0),
            (1.0, "north", 0.0, 16.0, 10.0, "car", 0.0), (1.0, "east", 2.0, 12.0, 5.0, "truck", 90.0)]
    options = {"path": str(write_planar_csv(tmp_path / "t.csv", rows)), "coverage": "sector",
               "coverage_range_m": 40.0}
    data = {"mobility": {"model": "trace", "options": options}, "schemes": [{"name": "oracle"}],
            "road": {"buildings": False}, "blockers": {"pedestrians": 0, "parked_cars": 0}}
    from v2xsim import build

    sc = scenario_from_dict(data)
    site = build.scenario_site(sc)
    world = World(layout=site.layout, mobility=build.mobility_model(sc.mobility), radio=site.radio,
                  channel=build.scenario_channel(sc.channel, layout=site.layout, radio=sc.radio, seed=0),
                  static_blockers=build.blockers(sc.blockers, site.layout, np.random.default_rng(0)),
                  rng=np.random.default_rng(0))
    m = world.mobility
    assert [m.source_ids[int(i)] for i in m.ids] == ["east", "north"]  # entered in SUMO id order
    boxes = world.obstacles()
    np.testing.assert_allclose(boxes.centre[:2], [[-3.0 - 6.0, 12.0, 2.0], [0.0, 6.0 - 2.25, 0.75]], atol=1e-12)
    np.testing.assert_array_equal(boxes.size, [[12.0, 2.5, 4.0], [1.8, 4.5, 1.5]])
    snap = world.snapshot()
    assert list(snap.ids) == [int(m.ids[1])]  # the truck is a blocker only
    assert snap.headings[0] == pytest.approx(math.pi / 2) and snap.speeds[0] == 10.0
    # half a second on: the centre moved along its heading, the box still turned
    world.advance(0.5)
    np.testing.assert_allclose(world.obstacles().centre[1], [0.0, 11.0 - 2.25, 0.75], atol=1e-12)
    assert world.snapshot().speeds[0] == pytest.approx(10.0)


def test_the_camera_turns_with_the_body():
    """The roof camera looks along yaw + heading: a vehicle heading north sees what one
    heading east sees after turning the world by 90 deg (same pixels)."""
    from v2xsim.geometry import Boxes, Snapshot
    from v2xsim.sensing import SensorConfig, sense

    layout = RoadLayout(buildings=False, sidewalk_m=0.0)
    config = SensorConfig(gps_noise_m=0.0, lidar_range_noise_m=0.0)
    east = sense(layout, Snapshot(ids=np.array([0]), positions=np.array([[0.0, 5.0, 1.6]]), obstacles=Boxes.empty(),
                                  headings=np.array([0.0])), np.random.default_rng(0), config=config)
    plain = sense(layout, Snapshot(ids=np.array([0]), positions=np.array([[0.0, 5.0, 1.6]]), obstacles=Boxes.empty()),
                  np.random.default_rng(0), config=config)
    np.testing.assert_array_equal(east["image"], plain["image"])  # heading 0 = no heading
    north = sense(layout, Snapshot(ids=np.array([0]), positions=np.array([[0.0, 5.0, 1.6]]), obstacles=Boxes.empty(),
                                   headings=np.array([math.pi / 2])), np.random.default_rng(0), config=config)
    assert not np.array_equal(north["image"], east["image"])  # it looks east now, not at the RSU side


# ------------------------------------------------------------ coverage
def test_sector_coverage_is_the_codebooks_sector_within_range():
    rsu = LAYOUT.rsu_position
    t = math.tan(LAYOUT.coverage_angle_rad / 2)
    dz = rsu[2] - LAYOUT.antenna_height_m
    rng = np.random.default_rng(1)
    xy = rng.uniform(-45, 45, (4000, 2))
    u = xy[:, 1] - rsu[1]
    expected = (u > 0) & (np.abs(xy[:, 0]) <= t * np.sqrt(u ** 2 + dz ** 2)) & (np.hypot(xy[:, 0], u) <= RANGE_M)
    np.testing.assert_array_equal(REGION.contains(xy), expected)
    assert 0.1 < expected.mean() < 0.5  # neither empty nor everything
    # right in front of the pole the sector is the straight road's stretch |x| <= (h - h_a) tan(phi/2)
    edge = t * dz
    assert REGION.contains(np.array([[edge - 1e-6, rsu[1] + 1e-9]]))[0]
    assert not REGION.contains(np.array([[edge + 1e-6, rsu[1] + 1e-9]]))[0]
    # crossing instants: just before inside, just after outside (and the other way round)
    starts = rng.uniform(-20, 20, (200, 2))
    velocity = rng.normal(0, 10, (200, 2))
    inside = REGION.contains(starts)
    leave = REGION.next_change(starts[inside], velocity[inside], entering=False)
    enter = REGION.next_change(starts[~inside], velocity[~inside], entering=True)
    for xy0, v, times, now_in in ((starts[inside], velocity[inside], leave, True),
                                  (starts[~inside], velocity[~inside], enter, False)):
        done = np.isfinite(times)
        assert done.any()
        before = REGION.contains(xy0[done] + v[done] * (times[done] - 1e-6)[:, None])
        after = REGION.contains(xy0[done] + v[done] * (times[done] + 1e-6)[:, None])
        assert before.all() == now_in and (~after).all() == now_in
        assert after.all() != now_in or not len(after)


def test_a_vehicle_enters_and_leaves_where_its_centre_crosses_the_boundary(tmp_path):
    """A car on a straight line through the sector (site frame, heading north-east): the
    world puts it on the road at the instant its centre enters and takes it off at the
    instant it leaves, the crossings of the region's boundary."""
    heading = math.radians(30.0)
    speed = 12.0
    direction = np.array([math.cos(heading), math.sin(heading)])
    start = np.array([-30.0, -5.0])  # centre at t = 0
    angle = 90.0 - math.degrees(heading)  # SUMO's
    rows = []
    for t in np.arange(0.0, 8.01, 0.5):
        front = start + direction * (speed * t + 2.25)
        rows.append((round(float(t), 3), "car0", repr(float(front[0])), repr(float(front[1])), speed, "car", angle))
    path = write_planar_csv(tmp_path / "line.csv", rows)
    enter = float(REGION.next_change(start[None], (speed * direction)[None], entering=True)[0])
    inside_at = start + speed * direction * (enter + 1e-6)
    leave = enter + 1e-6 + float(REGION.next_change(inside_at[None], (speed * direction)[None], entering=False)[0])
    assert 0 < enter < leave < 8.0
    data = {"mobility": {"model": "trace", "options": {"path": str(path), "coverage": "sector",
                                                       "coverage_range_m": RANGE_M}},
            "schemes": [{"name": "oracle"}], "road": {"buildings": False},
            "blockers": {"pedestrians": 0, "parked_cars": 0}, "simulation": {"duration_s": 8.0}}
    times = []

    def advance(self, dt):
        before = len(self.mobility.ids)
        left = original(self, dt)
        if len(self.mobility.ids) != before:
            times.append((self.time, len(self.mobility.ids)))
        return left

    original = World.advance
    World.advance = advance
    try:
        output = run_point(scenario_from_dict(data), speed_kmh=40.0, num_vehicles=0, seed=0)
    finally:
        World.advance = original
    (entered_at, one), (left_at, none) = times
    assert (one, none) == (1, 0)
    assert entered_at == pytest.approx(enter, abs=1e-6) and left_at == pytest.approx(leave, abs=1e-6)
    assert output.rows[0].mean_vehicles == 1


# ------------------------------------------------------------ SUMO on the intersection
@pytest.fixture(scope="module")
def fcd(tmp_path_factory):
    """SUMO's own FCD output of the intersection (seed 0, the scenario's 1200 veh/h),
    written by the sumo binary: time -> {vehicle id: (front x, front y, angle, type)}."""
    from v2xsim.mobility.sumo import sumo_binary

    model = MOBILITY.create("sumo", scenario().mobility.options, seed=0, base_dir=SCENARIO.parent, num_vehicles=1200)
    command = [sumo_binary(), *model.command()[1:]]
    path = tmp_path_factory.mktemp("fcd") / "fcd.xml"
    subprocess.run([*command, "--precision", "17", "--end", str(WARMUP_S + 3.0), "--fcd-output", str(path)],
                   check=True, capture_output=True)
    steps = {}
    for timestep in ET.parse(path).getroot():
        steps[float(timestep.get("time"))] = {
            v.get("id"): (float(v.get("x")), float(v.get("y")), float(v.get("angle")), v.get("type")) for v in timestep}
    return steps


@needs_sumo
def test_the_des_sees_sumos_own_positions_and_headings_on_the_intersection(fcd, monkeypatch):
    """Acceptance: at every SUMO step the world holds exactly the vehicles whose centre
    (front bumper minus half a length along SUMO's angle) is in the RSU's sector, each
    where SUMO's FCD output puts it and heading where SUMO's angle points."""
    states = record_world(monkeypatch)
    run_point(scenario("simulation.duration_s=2.0"), speed_kmh=50.0, num_vehicles=1200, seed=0)
    times = np.array([t for t, _ in states])
    compared = vehicles = turned = 0
    for sumo_time, records in sorted(fcd.items()):
        t = sumo_time - WARMUP_S
        if not 0 <= t < 2.0 - 1e-6:
            continue
        index = int(np.argmin(np.abs(times - t)))
        assert abs(times[index] - t) < 1e-9, f"the world did not stop at SUMO's step {sumo_time}"
        seen = states[index][1]
        expected = {}
        for vid, (x, y, angle, kind) in records.items():
            fx, fy = to_site(x, y)
            heading = wrap_angle(sumo_heading(angle) - math.radians(SITE["rotation_deg"]))
            half = KNOWN_TYPES[kind].length_m / 2
            centre = np.array([fx - half * math.cos(heading), fy - half * math.sin(heading)])
            if REGION.contains(centre[None])[0]:
                expected[vid] = (centre, heading)
        assert set(seen) == set(expected), sumo_time
        for vid, (centre, heading) in expected.items():
            assert seen[vid][:2] == pytest.approx(tuple(centre), abs=1e-9)
            assert wrap_angle(seen[vid][2] - heading) == pytest.approx(0.0, abs=1e-12)
            turned += abs(math.sin(2 * heading)) > 0.1  # neither along x nor along y of the site frame
        compared += 1
        vehicles += len(expected)
    assert compared == 20 and vehicles > 2 * compared and turned > 0


@needs_sumo
def test_the_signal_phase_breakdown_adds_up_to_the_whole_run():
    output = run_point(scenario("simulation.duration_s=3.0", 'schemes=[{name="oracle"}, {name="zf_sweep"}]'),
                       speed_kmh=50.0, num_vehicles=1200, seed=1)
    phases = {phase.get("name") for phase in ET.parse(NETWORK / "intersection.tll.xml").getroot().iter("phase")}
    assert phases == {"NS green", "NS yellow", "EW green", "EW yellow"}
    for row in output.rows:
        mine = [s for s in output.states if s["scheme"] == row.scheme]
        assert mine and all(s["state"].split(" ", 1)[1] in phases for s in mine)
        assert sum(s["time_s"] for s in mine) == pytest.approx(3.0, abs=1e-9)
        total = sum(s["effective_sum_rate"] * s["time_s"] for s in mine) / 3.0
        assert total == pytest.approx(row.effective_sum_rate, rel=1e-9)
        cars = sum(s["mean_vehicles"] * s["time_s"] for s in mine) / 3.0
        assert 0 < cars


@needs_sumo
def test_a_window_of_one_cycle_sees_every_phase(monkeypatch):
    """The traffic light runs its 30 s cycle in SUMO's time: the labels of the frames
    follow NS green (12 s), NS yellow (3 s), EW green (12 s), EW yellow (3 s)."""
    model = MOBILITY.create("sumo", scenario().mobility.options, seed=0, base_dir=SCENARIO.parent, num_vehicles=600)
    model.reset(layout=LAYOUT, rng=np.random.default_rng(0))
    try:
        seen = {}
        for _ in range(300):
            model.advance(0.1)
            seen[model.state_label()] = seen.get(model.state_label(), 0) + 1
    finally:
        model.close()
    assert seen == {"0 NS green": 120, "1 NS yellow": 30, "2 EW green": 120, "3 EW yellow": 30}


@needs_sumo
def test_the_demand_scales_every_flow():
    from v2xsim.mobility.sumo import route_demand_vph

    assert route_demand_vph(CONFIG) == pytest.approx(1200.0, rel=1e-5)
    loaded = {}
    for demand in (600, 2400):
        model = MOBILITY.create("sumo", scenario().mobility.options, seed=3, base_dir=SCENARIO.parent,
                                num_vehicles=demand)
        command = model.command()
        assert float(command[command.index("--scale") + 1]) == pytest.approx(demand / 1200.0, rel=1e-5)
        model.reset(layout=LAYOUT, rng=np.random.default_rng(0))
        try:
            loaded[demand] = int(model._sim.vehicle.getIDCount())
        finally:
            model.close()
    assert loaded[2400] > 2 * loaded[600]  # vehicles in the network after the warm-up


def test_bad_planar_options_are_refused_naming_the_option(monkeypatch, tmp_path):
    monkeypatch.setattr(sumo_module, "installed", lambda module: True)
    cases = [({"coverage": "disc"}, "coverage must be one of stretch, sector"),
             ({"coverage": "sector"}, "coverage = 'sector' needs coverage_range_m"),
             ({"coverage": "sector", "coverage_range_m": 0}, "coverage_range_m must be a finite number > 0"),
             ({"coverage_range_m": 30.0}, "coverage_range_m applies to coverage = 'sector' only"),
             ({"rotation_deg": "north"}, "rotation_deg must be a finite number"),
             ({"traffic_light": 3}, "traffic_light must be a SUMO traffic light id"),
             ({"demand_vph": -5}, "demand_vph must be a number > 0"),
             ({"config": str(CONFIG), "demand_vph": 900, "args": ["--scale", "2"]}, "keep one")]
    for options, fragment in cases:
        with pytest.raises(ConfigError, match=fragment):
            MOBILITY.create("sumo", options)
    with pytest.raises(ConfigError, match="from the swept num_vehicles"):
        MOBILITY.create("sumo", {"config": str(CONFIG), "demand_vph": "sweep"}, num_vehicles=0).demand()
    straight = ROOT / "scenarios" / "sumo" / "straight" / "straight.sumocfg"
    command = MOBILITY.create("sumo", {"config": str(straight), "demand_vph": 1782}).command()
    assert command[-2] == "--scale" and float(command[-1]) == pytest.approx(0.5)  # 0.99 vehicles/s
    no_angle = tmp_path / "t.csv"
    no_angle.write_text("time,id,x,y,speed,type\n0,a,0,5,10,car\n1,a,10,5,10,car\n")
    model = MOBILITY.create("trace", {"path": str(no_angle), "coverage": "sector", "coverage_range_m": 30.0})
    with pytest.raises(ConfigError, match="has no angle"):
        model.reset(layout=LAYOUT, rng=np.random.default_rng(0))


@needs_sumo
def test_an_unknown_traffic_light_is_refused_naming_the_network():
    options = {**scenario().mobility.options, "traffic_light": "X"}
    model = MOBILITY.create("sumo", options, seed=0, base_dir=SCENARIO.parent, num_vehicles=600)
    with pytest.raises(ConfigError, match="no traffic light 'X'.*has: C"):
        model.reset(layout=LAYOUT, rng=np.random.default_rng(0))
    model.close()
    assert sumo_module._libsumo_holder is None


@needs_sumo
def test_replaying_the_intersections_fcd_gives_the_sumo_models_results(tmp_path):
    """The trace model replaying the sumo model's own FCD output (angles included) gives
    the same results.csv and states.csv on the intersection."""
    from v2xsim.executors import create_executor
    from v2xsim.sim.runner import run_to_directory

    common = ['schemes=[{name="oracle"}, {name="zf_sweep"}]', "simulation.duration_s=1.5", "sweep.seeds=[0]",
              "sweep.num_vehicles=[1200]"]
    fcd = tmp_path / "fcd.xml"
    sumo = scenario(*common, f'mobility.options.fcd_output="{fcd}"')
    options = {key: sumo.mobility.options[key] for key in ("coverage", "coverage_range_m", "x_offset_m",
                                                           "y_offset_m", "rotation_deg")}
    inline = ", ".join(f"{key}={value!r}".replace("'", '"') for key, value in options.items())
    trace = scenario(*common, 'mobility.model="trace"', f'mobility.options={{path="{fcd}", start_s=60.0, {inline}}}')
    run_to_directory(sumo, tmp_path / "sumo", quiet=True, executor=create_executor("serial"))
    run_to_directory(trace, tmp_path / "trace", quiet=True, executor=create_executor("serial"))
    for table in ("results.csv", "events.csv"):
        assert (tmp_path / "sumo" / table).read_bytes() == (tmp_path / "trace" / table).read_bytes(), table
    assert (tmp_path / "sumo" / "states.csv").exists() and not (tmp_path / "trace" / "states.csv").exists()


# ------------------------------------------------------------ the shipped network
def test_the_rsu_stands_at_a_corner_facing_the_junction():
    """The scenario's site frame is the script's; the RSU pole is off the carriageway (on
    the south-west corner), the junction's centre is straight ahead of its array and
    inside its coverage, and so are parts of two arms."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_networks", ROOT / "scenarios" / "sumo" / "make_networks.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    options = scenario().mobility.options
    assert {key: options[key] for key in SITE} == script.INTERSECTION_SITE == SITE
    assert options["coverage_range_m"] == RANGE_M and options["traffic_light"] == "C"
    pole = np.array(script.rsu_ground_xy())
    half_road = script.LANES_PER_DIRECTION * LAYOUT.lane_width_m
    assert (pole < -half_road - 2.0).all()  # beyond both kerbs of the corner
    site_pole = np.array(to_site(*pole))
    np.testing.assert_allclose(site_pole, LAYOUT.rsu_position[:2], atol=1e-12)
    centre = np.array(to_site(0.0, 0.0))
    assert abs(centre[0]) < 1e-9 and centre[1] > 0  # on the boresight
    assert REGION.contains(centre[None])[0]
    net = ET.parse(NETWORK / "intersection.net.xml").getroot()
    covered: dict[str, float] = {}  # covered lane length per arm [m]
    for lane in net.iter("lane"):
        points = np.array([[float(v) for v in p.split(",")] for p in lane.get("shape").split()])
        dense = np.concatenate([np.linspace(a, b, 400) for a, b in zip(points[:-1], points[1:])])
        step = np.r_[0.0, np.hypot(*np.diff(dense, axis=0).T)]
        inside = REGION.contains(np.stack(to_site(dense[:, 0], dense[:, 1]), axis=1))
        edge = lane.get("id").rsplit("_", 1)[0]
        arm = "C" if edge.startswith(":") else edge.replace("2", "").replace("C", "")
        covered[arm] = covered.get(arm, 0.0) + float(step[inside].sum())
    # the junction, then the arms it faces (north, east) more than those beside the pole
    assert covered["C"] > 100.0 and min(covered["N"], covered["E"]) > 40.0
    assert max(covered["S"], covered["W"]) < 30.0


@needs_sumo
def test_the_committed_intersection_is_what_the_script_makes(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_networks", ROOT / "scenarios" / "sumo" / "make_networks.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.intersection(tmp_path)
    for path in sorted(NETWORK.iterdir()):
        assert (tmp_path / path.name).read_text() == path.read_text(), (
            f"{path.name} is out of date: rerun python scenarios/sumo/make_networks.py")


# ------------------------------------------------------------ the 1-D world is unchanged
def test_lane_based_models_keep_the_straight_road_state():
    """Built-in models: positions on the lane centres, heading 0, velocity along +x,
    bodies length x width; the engine's snapshots carry heading 0."""
    from tests.sim.conftest import make_scenario
    from v2xsim import build

    sc = make_scenario()
    site = build.scenario_site(sc)
    model = build.mobility_model(sc.mobility)
    model.reset(layout=site.layout, rng=np.random.default_rng(0))
    model.add(vehicle_id=0, x=-3.0, lane=2, speed=12.0)
    model.add(vehicle_id=1, x=5.0, lane=0, speed=8.0, length=12.0, width=2.5, height=4.0)
    assert not model.planar
    np.testing.assert_array_equal(model.positions, [[-3.0, 8.75, 1.6], [5.0, 1.75, 1.6]])
    np.testing.assert_array_equal(model.headings, [0.0, 0.0])
    np.testing.assert_array_equal(model.velocities, [[12.0, 0.0, 0.0], [8.0, 0.0, 0.0]])
    centre, size = model.bodies(0.5)
    np.testing.assert_array_equal(centre, [[3.0, 8.75, 0.75], [9.0, 1.75, 2.0]])
    np.testing.assert_array_equal(size, [[4.5, 1.8, 1.5], [12.0, 2.5, 4.0]])
    x_max = site.layout.x_range[1]
    assert model.next_departure_s() == pytest.approx(min((x_max - (-3.0 - 2.25)) / 12.0, (x_max - (5.0 - 6.0)) / 8.0))
    assert model.state_label() is None


def test_a_straight_trace_turned_in_the_source_replays_like_the_unturned_one(tmp_path):
    """rotation_deg on the straight road: a road drawn along the source's +y, turned back
    by rotation_deg = 90, gives the states of the same road drawn along +x."""
    rows = [(0.0, "a", -20.0, 1.75, 10.0, "car"), (1.0, "a", -10.0, 1.75, 10.0, "car"),
            (2.0, "a", 0.0, 1.75, 10.0, "car"), (3.0, "a", 10.0, 1.75, 10.0, "car")]
    plain = tmp_path / "plain.csv"
    plain.write_text("time,id,x,y,speed,type\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    turned = tmp_path / "turned.csv"  # (x, y) -> (-y, x): the road runs along +y
    turned.write_text("time,id,x,y,speed,type\n" + "\n".join(
        ",".join(map(str, (t, v, -y, x, s, k))) for t, v, x, y, s, k in rows) + "\n")
    a = MOBILITY.create("trace", {"path": str(plain)})
    b = MOBILITY.create("trace", {"path": str(turned), "rotation_deg": 90.0})
    for model in (a, b):
        model.reset(layout=RoadLayout(), rng=np.random.default_rng(0))
    for _ in range(25):
        assert list(a.advance(0.1)) == list(b.advance(0.1))
        np.testing.assert_allclose(a.x, b.x, atol=1e-12)
        np.testing.assert_array_equal(a.lane, b.lane)
