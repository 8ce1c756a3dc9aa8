"""The ``trace`` mobility model: recorded traffic (SUMO FCD or CSV) replayed on the RSU's
road with SUMO's entry / exit semantics; bad files are refused naming the file; a replay
of SUMO's own FCD output gives the results of the ``sumo`` model byte for byte."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from v2xsim.config import load_scenario, scenario_from_dict
from v2xsim.errors import ConfigError
from v2xsim.geometry import RoadLayout
from v2xsim.mobility.trace import TraceMobility
from v2xsim.registry import MOBILITY
from v2xsim.sim.engine import run_point

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = RoadLayout()  # covered stretch |x| <= 17.32 m, lanes at y = 1.75, 5.25, 8.75 m
X_MIN, X_MAX = LAYOUT.x_range

# two cars and a bus, front bumpers as SUMO writes them; "a" crosses the entry between
# t = 1 and 2, "b" is on the stretch from the start and leaves, the bus arrives (ends) at t = 2
ROWS = [
    (0.0, "a", -40.0, 1.75, 10.0, "car"), (0.0, "b", 10.0, 5.25, 20.0, "car"), (0.0, "bus", -5.0, 8.75, 5.0, "bus"),
    (1.0, "a", -30.0, 1.75, 10.0, "car"), (1.0, "b", 30.0, 5.25, 20.0, "car"), (1.0, "bus", 0.0, 8.75, 5.0, "bus"),
    (2.0, "a", -10.0, 1.75, 20.0, "car"), (2.0, "b", 50.0, 5.25, 20.0, "car"),
    (3.0, "a", 10.0, 5.25, 20.0, "car"),
]


def write_csv(path: Path, rows=ROWS, header="time,id,x,y,speed,type") -> Path:
    lines = [header] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_fcd(path: Path, rows=ROWS) -> Path:
    times = sorted({row[0] for row in rows})
    parts = ['<?xml version="1.0" encoding="UTF-8"?>', "<fcd-export>"]
    for t in times:
        parts.append(f'  <timestep time="{t:.2f}">')
        for _, vid, x, y, speed, kind in (r for r in rows if r[0] == t):
            lane = int(y // 3.5)
            parts.append(f'    <vehicle id="{vid}" x="{x}" y="{y}" angle="90.00" type="{kind}" speed="{speed}" '
                         f'pos="0" lane="road_{lane}" slope="0.00"/>')
        parts.append("  </timestep>")
    parts.append("</fcd-export>")
    path.write_text("\n".join(parts) + "\n")
    return path


def replay(path: Path, **options) -> TraceMobility:
    model = MOBILITY.create("trace", {"path": str(path), **options})
    model.reset(layout=LAYOUT, rng=np.random.default_rng(0))
    return model


def front(model: TraceMobility) -> dict[str, float]:
    return {model.source_ids[int(i)]: float(x + length / 2) for i, x, length in zip(model.ids, model.x, model.length)}


@pytest.mark.parametrize("fmt", ["csv", "xml"])
def test_entry_interpolation_and_exit_follow_the_records(tmp_path, fmt):
    path = write_csv(tmp_path / "t.csv") if fmt == "csv" else write_fcd(tmp_path / "t.xml")
    model = replay(path)
    # t = 0: b and the bus are on the stretch (entered in id order), a is not yet
    assert model.take_entered() == [(0, "car"), (1, "truck")]
    assert front(model) == {"b": 10.0, "bus": -5.0}
    assert list(model.speed) == [20.0, 5.0] and list(model.lane) == [1, 2]
    np.testing.assert_allclose(model.length, [4.5, 12.0])
    np.testing.assert_allclose(model.height, [1.5, 3.4])  # the bus's box
    # b's rear passes x_max = 17.32 at front = 21.82: t = 0.591 s, and the model says when
    left = model.advance(0.5)
    assert list(left) == [] and front(model)["b"] == pytest.approx(20.0)
    left = model.advance(0.1)
    assert list(left) == [0] and set(front(model)) == {"bus"}
    # a crosses the entry (front = -17.32) at t = 1 + 12.68 / 20 = 1.634 s
    model.advance(0.4)
    assert model.next_entry_s() == pytest.approx((X_MIN + 30.0) / 20.0, abs=1e-9)
    model.advance(model.next_entry_s() + 1e-9)
    assert model.take_entered() == [(2, "car")]
    assert front(model)["a"] == pytest.approx(X_MIN, abs=1e-6) and model.speed[-1] == 20.0  # slope of the line
    # the bus has no record at t = 2: it is gone right after t = 1
    assert "bus" in model.source_ids.values() and set(front(model)) == {"a"}
    # at t = 3 exactly, the record itself (lane change included); past the last record: gone
    model.advance(3.0 - model.time)
    assert front(model) == {"a": 10.0} and list(model.lane) == [1]
    assert list(model.advance(0.01)) == [2] and len(model.ids) == 0


def test_csv_and_fcd_of_the_same_traffic_give_the_same_states(tmp_path):
    csv_model, fcd_model = replay(write_csv(tmp_path / "t.csv")), replay(write_fcd(tmp_path / "t.xml"))
    for _ in range(300):
        assert list(csv_model.advance(0.01)) == list(fcd_model.advance(0.01))
        for name in ("ids", "x", "speed", "lane", "length", "width", "height"):
            np.testing.assert_array_equal(getattr(csv_model, name), getattr(fcd_model, name))


def test_a_gzipped_trace_reads_like_the_plain_one(tmp_path):
    import gzip

    plain = write_csv(tmp_path / "t.csv")
    packed = tmp_path / "t.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    a, b = replay(plain), replay(packed)
    for _ in range(5):
        assert list(a.advance(0.5)) == list(b.advance(0.5))
        np.testing.assert_array_equal(a.x, b.x)


def test_start_s_and_offsets_map_the_trace_onto_the_road(tmp_path):
    shifted = [(t + 100.0, v, x + 500.0, y - 20.0, s, k) for t, v, x, y, s, k in ROWS]
    model = replay(write_csv(tmp_path / "t.csv", shifted), start_s=100.0, x_offset_m=500.0, y_offset_m=-20.0)
    assert front(model) == {"b": 10.0, "bus": -5.0} and list(model.lane) == [1, 2]
    later = replay(write_csv(tmp_path / "u.csv", shifted), start_s=101.0, x_offset_m=500.0, y_offset_m=-20.0)
    assert front(later) == {"bus": 0.0}  # b passed the stretch before the replay starts, unseen


def test_a_trace_run_puts_only_its_own_vehicles_on_the_road(tmp_path):
    path = write_csv(tmp_path / "t.csv")
    scenario = scenario_from_dict({"mobility": {"model": "trace", "options": {"path": str(path)}},
                                   "schemes": [{"name": "oracle"}], "simulation": {"duration_s": 2.5}})
    output = run_point(scenario, speed_kmh=60.0, num_vehicles=8, seed=0)  # K = 8 adds nobody
    (row,) = output.rows
    assert 0 < row.mean_vehicles <= 2 and row.alignments > 0


def test_the_world_refuses_a_traffic_source_next_to_a_spawning_model(tmp_path):
    from v2xsim import build
    from v2xsim.config import RadioConfig
    from v2xsim.geometry import Boxes
    from v2xsim.sim.world import World

    radio = RadioConfig()
    channel = build.channel_backend("geometric", {}, layout=LAYOUT, radio=radio, seed=0)
    world = World(layout=LAYOUT, mobility=replay(write_csv(tmp_path / "t.csv")), channel=channel,
                  radio=build.link_budget(radio, build.RoadConfig()), static_blockers=Boxes.empty(),
                  rng=np.random.default_rng(0))
    assert world.kind == {0: "car", 1: "truck"}
    boxes = world.obstacles()
    np.testing.assert_allclose(boxes.size, [[4.5, 1.8, 1.5], [12.0, 2.5, 3.4]])  # the bus: its own box
    with pytest.raises(RuntimeError, match="puts the vehicles on the road itself"):
        world.add_vehicle(x=0.0, lane=0, speed=10.0)
    world.advance(0.6)
    assert world.kind == {1: "truck"}


# ------------------------------------------------------------ bad input
BAD_CSV = [
    ("time,id,x,y,speed\n0,a,1,1.75,10\n", "header lacks type"),
    ("time,id,x,y,speed,type\n0,a,one,1.75,10,car\n", "line 2: x 'one' is not a number"),
    ("time,id,x,y,speed,type\n0,a,nan,1.75,10,car\n", "line 2: x 'nan' is not a finite number"),
    ("time,id,x,y,speed,type\n0,a,1,1.75,inf,car\n", "line 2: speed 'inf' is not a finite number"),
    ("time,id,x,y,speed,type\n1,a,1,1.75,10,car\n0,a,2,1.75,10,car\n", "line 3: time 0 s before 1 s"),
    ("time,id,x,y,speed,type\n0,a,1,1.75,10\n", "line 2: 5 fields"),
    ("time,id,x,y,speed,type\n0,a,1,1.75,10,car\n0,a,2,1.75,10,car\n", "vehicle 'a' twice"),
    ("", "empty file"),
]


@pytest.mark.parametrize("text,fragment", BAD_CSV, ids=[f[1] for f in BAD_CSV])
def test_a_malformed_csv_is_refused_naming_the_file(tmp_path, text, fragment):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        replay(path)
    assert str(path) in str(error.value) and fragment in str(error.value)


BAD_FCD = [
    ('<fcd-export><timestep time="0"><vehicle id="a" x="1" y="1" speed="1"', "malformed FCD XML"),
    ('<routes><vehicle id="a"/></routes>', "not a SUMO FCD file"),
    ('<fcd-export><timestep time="0"><vehicle id="a" y="1.75" speed="1" type="car"/></timestep></fcd-export>',
     "missing x"),
    ('<fcd-export><timestep time="0"><vehicle id="a" x="-inf" y="1.75" speed="1" type="car"/></timestep>'
     '</fcd-export>', "x '-inf' is not a finite number"),
    ('<fcd-export><timestep time="nan"></timestep></fcd-export>', "time 'nan' is not a finite number"),
    ('<fcd-export><timestep time="1"/><timestep time="0.5"/></fcd-export>', "times must increase"),
    ('<fcd-export><timestep time="0"><vehicle id="a" x="0" y="1.75" speed="1" type="tractor"/></timestep>'
     '</fcd-export>', "vehicle type 'tractor' is unknown"),
    ('<fcd-export><timestep time="0"><vehicle id="a" x="0" y="1.75" speed="1" type="car" lane="road_5"/>'
     '</timestep></fcd-export>', "lane index 5, but [road] has 3 lanes"),
]


@pytest.mark.parametrize("text,fragment", BAD_FCD, ids=[f[1] for f in BAD_FCD])
def test_a_malformed_fcd_file_is_refused_naming_the_file(tmp_path, text, fragment):
    path = tmp_path / "bad.xml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        model = replay(path)
        model.advance(1.0)
    assert str(path) in str(error.value) and fragment in str(error.value)


def test_bad_options_are_refused_naming_the_option(tmp_path):
    good = write_csv(tmp_path / "t.csv")
    cases = [
        ({"path": str(tmp_path / "missing.xml")}, "trace file not found"),
        ({"path": str(write_csv(tmp_path / "t.txt"))}, "a trace is a SUMO FCD file (.xml) or a CSV"),
        ({"path": str(good), "edges": ["road"]}, "edges needs SUMO lane ids"),
        ({"path": str(good), "types": {"van": {"kind": "lorry"}}}, "types.van.kind"),
        ({"path": str(good), "types": {"van": {"length_m": -1}}}, "types.van.length_m"),
        ({"path": str(good), "bogus": 1}, "unknown option 'bogus'"),
    ]
    for options, fragment in cases:
        with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
            MOBILITY.create("trace", options)


def test_types_option_and_relative_paths(tmp_path):
    rows = [(0.0, "v", 0.0, 1.75, 10.0, "van")]
    write_csv(tmp_path / "t.csv", rows)
    model = MOBILITY.create("trace", {"path": "t.csv", "types": {"van": {"kind": "truck", "length_m": 6.0}}},
                            base_dir=tmp_path)
    model.reset(layout=LAYOUT, rng=np.random.default_rng(0))
    assert model.take_entered() == [(0, "truck")]
    np.testing.assert_allclose([model.length[0], model.width[0], model.height[0]], [6.0, 2.5, 4.0])


# ------------------------------------------------------------ SUMO's own FCD
def test_replaying_sumos_fcd_output_gives_the_sumo_models_results_byte_for_byte(tmp_path):
    """Acceptance: the trace model replaying SUMO's FCD output (same configuration and
    seed, written by the sumo binary) gives the same results.csv (and events.csv) as the
    sumo model."""
    pytest.importorskip("libsumo")
    from v2xsim.executors import create_executor
    from v2xsim.mobility.sumo import DEFAULT_CONFIG, sumo_binary
    from v2xsim.sim.runner import run_to_directory

    try:
        binary = sumo_binary()
    except ConfigError:
        pytest.skip("the sumo binary (eclipse-sumo) is not installed")
    fcd = tmp_path / "fcd.xml"
    subprocess.run([binary, "-c", str(DEFAULT_CONFIG), "--seed", "0", "--step-length", "0.1", "--precision", "17",
                    "--begin", "0", "--end", "63", "--fcd-output", str(fcd)], check=True, capture_output=True)
    common = ['schemes=[{name="oracle"}, {name="zf_sweep"}]', "simulation.duration_s=2.0", "sweep.seeds=[0]",
              "output.plots=false"]
    outputs = {}
    for name, mobility in (("sumo", []), ("trace", ['mobility.model="trace"',
                                                    f'mobility.options={{path="{fcd}", start_s=60.0}}'])):
        scenario = load_scenario(ROOT / "scenarios" / "sumo_straight.toml", [*common, *mobility])
        outputs[name] = tmp_path / name
        run_to_directory(scenario, outputs[name], quiet=True, executor=create_executor("serial"))
    for table in ("results.csv", "events.csv"):
        assert (outputs["sumo"] / table).read_bytes() == (outputs["trace"] / table).read_bytes(), table
