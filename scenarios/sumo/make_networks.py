"""Make the shipped SUMO networks (the outputs are committed; rerun after a change).

    python scenarios/sumo/make_networks.py        # needs the sumo extra (netconvert)

``straight/``: a straight one-way road through the RSU of the headline scenarios. Its
lanes are those of the ``[road]`` defaults (3 lanes of 3.5 m, all along +x, lane 0 nearest
the RSU), and SUMO's coordinates are the RSU's road frame: the RSU stands at x = 0, the
lane centres at y = 1.75, 5.25 and 8.75 m (``spreadType="center"`` around the middle lane,
``--offset.disable-normalization`` keeps them). The road runs from x = -200 m to +200 m,
far beyond the covered stretch (|x| <= 17.3 m), so vehicles enter and leave SUMO out of the
RSU's sight. Traffic: Poisson flows (SUMO's ``period="exp(rate)"``) of cars, trucks and
buses in random lanes at a 50 km/h limit, drivers' speed factors drawn by SUMO: all random
draws follow SUMO's ``--seed``. The vehicle types' boxes are the simulator's
(``v2xsim.mobility.frames.KNOWN_TYPES``), so a ``trace`` replay knows them by name.

``intersection/``: a 4-way signalised intersection (``netconvert`` from nodes and edges)
with the RSU at its south-west corner. The junction ``C`` is at the origin; four two-way
arms of ``ARM_LENGTH_M`` with 2 lanes of 3.5 m per direction (50 km/h) meet there. Its
traffic light runs a fixed-time program of ``CYCLE_S`` (north-south green, yellow,
east-west green, yellow; left turns yield to oncoming traffic), each phase named, so the
simulator can report the rate per phase. Traffic: from every arm Poisson flows of cars
going straight, right and left, and of trucks and buses going straight, all adding up to
``INTERSECTION_VPH`` vehicles per hour (the ``sumo`` model's ``demand_vph`` scales them
together). The RSU's site frame (the ``sumo`` model's ``x_offset_m``, ``y_offset_m``,
``rotation_deg``; :data:`INTERSECTION_SITE`) puts the RSU on the corner's sidewalk, its
array facing the centre of the junction (north-east).
"""

from __future__ import annotations

import math
import re
import shutil
import xml.etree.ElementTree as ET
import subprocess
import sys
from pathlib import Path

from v2xsim.config import RoadConfig
from v2xsim.mobility.frames import KNOWN_TYPES

HERE = Path(__file__).resolve().parent
#: road ends [m] (the RSU at x = 0)
X_START_M, X_END_M = -200.0, 200.0
SPEED_LIMIT_KMH = 50.0
#: Poisson arrival rates of the flows [vehicles/s] (all lanes together)
RATES = {"car": 0.9, "truck": 0.06, "bus": 0.03}
VEHICLE_CLASSES = {"car": "passenger", "truck": "truck", "bus": "bus"}
FLOW_IDS = {"car": "cars", "truck": "trucks", "bus": "buses"}
STEP_LENGTH_S = 0.1
END_S = 3600.0

#: intersection: arm length from the centre [m], lanes per direction
ARM_LENGTH_M = 150.0
LANES_PER_DIRECTION = 2
#: the traffic light's program: green and yellow time per direction [s] (cycle 30 s)
GREEN_S, YELLOW_S = 12.0, 3.0
CYCLE_S = 2 * (GREEN_S + YELLOW_S)
#: total demand of all flows [vehicles/h] and its shares per arm: cars straight, right,
#: left; trucks and buses straight
INTERSECTION_VPH = 1200.0
ARM_SHARES = {("car", "straight"): 0.55, ("car", "right"): 0.2, ("car", "left"): 0.2,
              ("truck", "straight"): 0.035, ("bus", "straight"): 0.015}
#: arms in compass order, with the direction each one's traffic comes from
ARMS = ("N", "E", "S", "W")
#: the RSU's site frame in SUMO's coordinates: origin (the ground point ``rsu_setback_m``
#: in front of the RSU pole) and direction of the array axis; the RSU faces
#: ``rotation_deg + 90`` = 45 deg, the junction's centre
INTERSECTION_SITE = {"x_offset_m": -9.0, "y_offset_m": -9.0, "rotation_deg": -45.0}



def write_sumocfg(out: Path, name: str) -> None:
    """``out/<name>.sumocfg``: the network and routes of ``name``, the fixed time window and
    step length, no teleporting, no step log."""
    (out / f"{name}.sumocfg").write_text(
        "<configuration>\n"
        "    <input>\n"
        f'        <net-file value="{name}.net.xml"/>\n'
        f'        <route-files value="{name}.rou.xml"/>\n'
        "    </input>\n"
        "    <time>\n"
        '        <begin value="0"/>\n'
        f'        <end value="{END_S:g}"/>\n'
        f'        <step-length value="{STEP_LENGTH_S:g}"/>\n'
        "    </time>\n"
        "    <processing>\n"
        '        <time-to-teleport value="-1"/>\n'
        "    </processing>\n"
        "    <report>\n"
        '        <no-step-log value="true"/>\n'
        "    </report>\n"
        "</configuration>\n")

def tool(name: str) -> str:
    """A SUMO executable: the eclipse-sumo wheel's, else one on the PATH."""
    try:
        import sumo

        candidate = Path(sumo.SUMO_HOME) / "bin" / name
        if candidate.is_file():
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which(name)
    if found:
        return found
    sys.exit(f"{name} not found: pip install 'v2xsim[sumo]'")


def without_date(path: Path) -> None:
    """Drop the generation time SUMO writes into its header (reruns give the same file)."""
    path.write_text(re.sub(r"generated on \S+ by", "generated by", path.read_text(), count=1))


def straight(out: Path) -> None:
    road = RoadConfig()
    lanes, width = len(road.lanes), road.lane_width_m
    out.mkdir(parents=True, exist_ok=True)
    middle = lanes * width / 2.0
    (out / "straight.nod.xml").write_text(
        "<nodes>\n"
        f'    <node id="west" x="{X_START_M:.2f}" y="{middle:.2f}" type="priority"/>\n'
        f'    <node id="east" x="{X_END_M:.2f}" y="{middle:.2f}" type="priority"/>\n'
        "</nodes>\n")
    (out / "straight.edg.xml").write_text(
        "<edges>\n"
        f'    <edge id="road" from="west" to="east" numLanes="{lanes}" width="{width:.2f}" '
        f'speed="{SPEED_LIMIT_KMH / 3.6:.2f}" spreadType="center"/>\n'
        "</edges>\n")
    subprocess.run([tool("netconvert"), "--node-files", "straight.nod.xml", "--edge-files", "straight.edg.xml",
                    "--offset.disable-normalization", "true", "--output-file", "straight.net.xml"],
                   cwd=out, check=True)
    without_date(out / "straight.net.xml")
    types = "".join(
        f'    <vType id="{name}" vClass="{VEHICLE_CLASSES[name]}" length="{KNOWN_TYPES[name].length_m:g}" '
        f'width="{KNOWN_TYPES[name].width_m:g}" height="{KNOWN_TYPES[name].height_m:g}"/>\n' for name in RATES)
    flows = "".join(
        f'    <flow id="{FLOW_IDS[name]}" type="{name}" route="through" begin="0" end="{END_S:g}" period="exp({rate:g})" '
        f'departLane="random" departSpeed="max"/>\n' for name, rate in RATES.items())
    (out / "straight.rou.xml").write_text(
        "<routes>\n" + types + '    <route id="through" edges="road"/>\n' + flows + "</routes>\n")
    write_sumocfg(out, "straight")


def _arm_xy(arm: str) -> tuple[float, float]:
    return {"N": (0.0, ARM_LENGTH_M), "E": (ARM_LENGTH_M, 0.0), "S": (0.0, -ARM_LENGTH_M),
            "W": (-ARM_LENGTH_M, 0.0)}[arm]


def _turn(arm: str, turn: str) -> str:
    """The arm a vehicle coming from ``arm`` leaves by (right-hand traffic)."""
    index = ARMS.index(arm)
    return ARMS[(index + {"straight": 2, "right": 3, "left": 1}[turn]) % 4]


def phase_name(state: str, approach_of_link: dict[int, str]) -> str:
    """``"NS green"``, ``"EW yellow"``, ... from a phase's signal state string."""
    def arms(signals: str) -> str:
        found = {approach_of_link[i] for i, signal in enumerate(state) if signal in signals}
        return "".join(arm for arm in ("N", "S", "E", "W") if arm in found)

    if arms("Gg"):
        return f"{arms('Gg')} green"
    if arms("y"):
        return f"{arms('y')} yellow"
    return "all red"


def intersection(out: Path) -> None:
    road = RoadConfig()
    width = road.lane_width_m
    out.mkdir(parents=True, exist_ok=True)
    nodes = ['    <node id="C" x="0.00" y="0.00" type="traffic_light"/>\n']
    nodes += [f'    <node id="{arm}" x="{x:.2f}" y="{y:.2f}" type="priority"/>\n'
              for arm in ARMS for x, y in [_arm_xy(arm)]]
    (out / "intersection.nod.xml").write_text("<nodes>\n" + "".join(nodes) + "</nodes>\n")
    edges = []
    for arm in ARMS:
        for source, target in ((arm, "C"), ("C", arm)):
            edges.append(f'    <edge id="{source}2{target}" from="{source}" to="{target}" '
                         f'numLanes="{LANES_PER_DIRECTION}" width="{width:.2f}" speed="{SPEED_LIMIT_KMH / 3.6:.2f}"/>\n')
    (out / "intersection.edg.xml").write_text("<edges>\n" + "".join(edges) + "</edges>\n")
    common = ["--node-files", "intersection.nod.xml", "--edge-files", "intersection.edg.xml",
              "--offset.disable-normalization", "true", "--no-turnarounds", "true",
              "--tls.cycle.time", f"{CYCLE_S:g}", "--tls.yellow.time", f"{YELLOW_S:g}",
              "--output-file", "intersection.net.xml"]
    # first pass: netconvert's own fixed-time program; then its phases get names
    subprocess.run([tool("netconvert"), *common], cwd=out, check=True)
    net = ET.parse(out / "intersection.net.xml").getroot()
    approach_of_link = {int(c.get("linkIndex")): c.get("from").removesuffix("2C")
                        for c in net.iter("connection") if c.get("tl") == "C"}
    logic = net.find("tlLogic[@id='C']")
    phases = "".join(
        f'        <phase duration="{float(phase.get("duration")):g}" state="{phase.get("state")}" '
        f'name="{phase_name(phase.get("state"), approach_of_link)}"/>\n' for phase in logic.iter("phase"))
    (out / "intersection.tll.xml").write_text(
        "<additional>\n"
        f'    <tlLogic id="C" type="static" programID="0" offset="0">\n{phases}    </tlLogic>\n'
        "</additional>\n")
    subprocess.run([tool("netconvert"), *common, "--tllogic-files", "intersection.tll.xml"], cwd=out, check=True)
    without_date(out / "intersection.net.xml")
    names = ("car", "truck", "bus")
    types = "".join(
        f'    <vType id="{name}" vClass="{VEHICLE_CLASSES[name]}" length="{KNOWN_TYPES[name].length_m:g}" '
        f'width="{KNOWN_TYPES[name].width_m:g}" height="{KNOWN_TYPES[name].height_m:g}"/>\n' for name in names)
    routes, flows = [], []
    for arm in ARMS:
        for turn in ("straight", "right", "left"):
            routes.append(f'    <route id="{arm}_{turn}" edges="{arm}2C C2{_turn(arm, turn)}"/>\n')
        for (kind, turn), share in ARM_SHARES.items():
            rate = INTERSECTION_VPH / len(ARMS) * share / 3600.0
            flows.append(f'    <flow id="{arm}_{turn}_{kind}" type="{kind}" route="{arm}_{turn}" begin="0" '
                         f'end="{END_S:g}" period="exp({rate:.6g})" departLane="best" departSpeed="max"/>\n')
    (out / "intersection.rou.xml").write_text("<routes>\n" + types + "".join(routes) + "".join(flows) + "</routes>\n")
    write_sumocfg(out, "intersection")


def rsu_ground_xy(setback_m: float = RoadConfig().rsu_setback_m) -> tuple[float, float]:
    """SUMO coordinates [m] of the intersection RSU's pole (``setback_m`` behind the site
    frame's origin, against the direction it faces)."""
    facing = math.radians(INTERSECTION_SITE["rotation_deg"] + 90.0)
    return (INTERSECTION_SITE["x_offset_m"] - setback_m * math.cos(facing),
            INTERSECTION_SITE["y_offset_m"] - setback_m * math.sin(facing))


if __name__ == "__main__":
    straight(HERE / "straight")
    print(f"wrote {HERE / 'straight'}")
    intersection(HERE / "intersection")
    print(f"wrote {HERE / 'intersection'}")
