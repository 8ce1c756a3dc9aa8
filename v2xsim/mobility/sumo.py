"""The ``sumo`` mobility model: SUMO drives the traffic, in lock-step with the SimPy clock.

SUMO runs in this process through libsumo (one simulation per process; sweep points run in
separate worker processes, and the engine closes the simulation at the end of every point)
or, with ``api = "traci"``, as a ``sumo`` child process spoken to over TraCI (slower, but
any number at once). SUMO's steps are taken inside the world's tick process (a SimPy
process): when the simulated time reaches a SUMO step, the step is taken; SUMO always runs
one step ahead of the world, so that the world interpolates between the step it has passed
and the next one (:mod:`v2xsim.mobility.frames`: entry at the start of the covered
stretch, exit at its end or when SUMO's vehicle arrives; positions linear between steps).

Seed: SUMO's ``--seed`` is the run seed (modulo 2^31), unless the ``seed`` option sets
one. Vehicle types: SUMO's vehicle class says whether a vehicle is served (``car``) or a
blocker only (``truck``: trucks, trailers, buses, coaches, trams, trains); its type's
length, width and height give its box. The default network is the shipped straight road
(``scenarios/sumo/straight``, made by ``scenarios/sumo/make_networks.py``), whose
coordinates are the RSU's road frame; ``scenarios/sumo/intersection`` is a signalised
4-way intersection with the RSU at a corner (``coverage = "sector"``, see
:mod:`v2xsim.mobility.frames`).

Traffic state: with ``traffic_light`` set, every frame is labelled with that traffic
light's phase after the step (``"<index> <name>"``, e.g. ``"0 NS green"``; the index
alone when the phase has no name), and the engine reports the delivered rate per phase.

Demand: ``demand_vph`` scales every flow of the route files together (SUMO's ``--scale``)
so that they bring that many vehicles per hour in total; ``"sweep"`` takes the number
from the swept ``num_vehicles`` of the point (then a demand, not a vehicle count).

Needs the ``sumo`` extra (``pip install 'v2xsim[sumo]'``: libsumo and the eclipse-sumo
binaries); without it a scenario naming this model is refused in one line.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import itertools
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from v2xsim.errors import ConfigError
from v2xsim.mobility.frames import BLOCKER_CLASSES, Frame, FrameMobility, VehicleType, frame, sumo_heading
from v2xsim.registry import MOBILITY

log = logging.getLogger(__name__)

SUMO_EXTRA = "pip install 'v2xsim[sumo]'"
APIS = ("libsumo", "traci")
#: the shipped straight road through the RSU (a repository checkout)
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "scenarios" / "sumo" / "straight" / "straight.sumocfg"

#: the model holding this process's libsumo simulation (libsumo runs one at a time)
_libsumo_holder: "SumoMobility | None" = None
_labels = itertools.count()


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def resolve_path(value: str | os.PathLike, base_dir: Path | None) -> Path:
    """``value`` as a path: ``~`` expanded, a relative one against ``base_dir`` (the
    scenario file's directory; None: the working directory)."""
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return path


def sumo_binary() -> str:
    """The ``sumo`` executable: the eclipse-sumo wheel's (the version of libsumo), else
    ``$SUMO_HOME/bin/sumo``, else one on the PATH."""
    homes = []
    try:
        import sumo  # the eclipse-sumo wheel

        homes.append(Path(sumo.SUMO_HOME))
    except ImportError:
        pass
    if os.environ.get("SUMO_HOME"):
        homes.append(Path(os.environ["SUMO_HOME"]))
    for home in homes:
        candidate = home / "bin" / "sumo"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("sumo")
    if found:
        return found
    raise ConfigError(f"mobility model 'sumo' with api = 'traci' needs the sumo binary, which is not installed: "
                      f"{SUMO_EXTRA}")


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Collect what native code writes to file descriptor 2 (SUMO's messages) into the
    yielded list (its lines, filled on exit) instead of the terminal."""
    lines: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. captured by a test runner)
        yield lines
        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode(errors="replace").splitlines())


def _flow_rate_vph(flow: ET.Element, *, where: str) -> float:
    """Vehicles per hour of one ``<flow>`` (vehsPerHour, period, ``period="exp(rate)"``,
    probability per second, or number over its begin / end)."""
    def number(key: str, text: str | None = None) -> float:
        text = flow.get(key, "") if text is None else text
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{where}: flow {flow.get('id')!r}: {key}={text!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{where}: flow {flow.get('id')!r}: {key}={text!r} must be finite and >= 0")
        return value

    if flow.get("vehsPerHour") is not None:
        return number("vehsPerHour")
    period = flow.get("period")
    if period is not None:
        if period.startswith("exp(") and period.endswith(")"):
            return number("period", period[4:-1]) * 3600.0  # Poisson arrivals at that rate [1/s]
        value = number("period")
        return 3600.0 / value if value > 0 else math.inf
    if flow.get("probability") is not None:
        return number("probability") * 3600.0
    if flow.get("number") is not None and flow.get("end") is not None:
        span = number("end") - (number("begin") if flow.get("begin") is not None else 0.0)
        return number("number") * 3600.0 / span if span > 0 else math.inf
    raise ConfigError(f"{where}: flow {flow.get('id')!r} has no rate (vehsPerHour, period, probability, or number "
                      f"with end), which demand_vph needs")


def route_demand_vph(config: Path) -> float:
    """Total demand [veh/h] of the flows of the route files a ``.sumocfg`` names (what
    SUMO's ``--scale 1`` brings); ConfigError naming the file for demand that is not a
    flow (single vehicles or trips cannot be scaled to a rate)."""
    try:
        root = ET.parse(config).getroot()
    except (OSError, ET.ParseError) as error:
        raise ConfigError(f"{config}: cannot read the SUMO configuration ({error})") from None
    element = root.find("./input/route-files")
    if element is None or not element.get("value"):
        raise ConfigError(f"{config}: names no route files, which demand_vph needs")
    total = 0.0
    for name in element.get("value").split(","):
        path = resolve_path(name.strip(), config.parent)
        try:
            routes = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as error:
            raise ConfigError(f"{path}: cannot read the route file ({error})") from None
        for item in routes.iter():
            if item.tag in ("vehicle", "trip", "person"):
                raise ConfigError(f"{path}: demand_vph scales flows only; this file has a <{item.tag}>")
            if item.tag == "flow":
                total += _flow_rate_vph(item, where=str(path))
    if not 0 < total < math.inf:
        raise ConfigError(f"{config}: the route files' flows bring {total:g} vehicles per hour; demand_vph needs "
                          f"a finite demand > 0 to scale")
    return total


@MOBILITY.register("sumo")
class SumoMobility(FrameMobility):
    """Traffic simulated by SUMO, stepped with the world.

    Args:
        config: the ``.sumocfg`` (relative: to the scenario file); default the shipped
            straight road.
        step_length_s: SUMO's step [s] (``--step-length``).
        warmup_s: SUMO time before the world's t = 0 [s], so the road is filled.
        seed: SUMO's ``--seed`` (default: the run seed).
        api: ``"libsumo"`` (in this process) or ``"traci"`` (a ``sumo`` child process).
        args: further SUMO command-line options, e.g. ``["--scale", "2"]``.
        fcd_output: also write SUMO's FCD output (every vehicle, every step) to this file
            (relative: to the scenario file; ``{seed}`` in it is replaced by SUMO's seed,
            so the points of a seed sweep write one file each), for ``trace`` to replay.
        precision: decimals of the positions and speeds read from SUMO, and SUMO's
            ``--precision`` of ``fcd_output``: a replay of that file sees the same numbers.
        edges: SUMO edges of the road through the RSU (default: every edge).
        x_offset_m, y_offset_m: SUMO coordinates of the road frame's origin [m].
        rotation_deg: direction of the road frame's +x (the RSU's array axis) in SUMO's
            coordinates, counter-clockwise from SUMO's +x [deg].
        coverage: ``"stretch"`` (straight road) or ``"sector"`` (planar traffic).
        coverage_range_m: horizontal range of the sector coverage [m].
        traffic_light: id of the SUMO traffic light whose phase labels the traffic state.
        demand_vph: total demand [veh/h] the route files' flows are scaled to, or
            ``"sweep"`` (the swept ``num_vehicles``); default: the route files' own.
        types: vehicle types by SUMO type id, before SUMO's own (``kind``, ``length_m``,
            ``width_m``, ``height_m``).
        base_dir: directory of the scenario file (set by the engine).
        num_vehicles: the swept ``num_vehicles`` of the point (set by the engine; used by
            ``demand_vph = "sweep"`` only).
    """

    name = "sumo"

    def __init__(self, *, config: str | None = None, step_length_s: float = 0.1, warmup_s: float = 60.0,
                 seed: int = 23423, api: str = "libsumo", args: list[str] | None = None,
                 fcd_output: str | None = None, precision: int = 17, edges: list[str] | None = None,
                 x_offset_m: float = 0.0, y_offset_m: float = 0.0, rotation_deg: float = 0.0,
                 coverage: str = "stretch", coverage_range_m: float | None = None,
                 traffic_light: str | None = None, demand_vph: float | str | None = None,
                 types: Mapping[str, Any] | None = None, base_dir: str | os.PathLike | None = None,
                 num_vehicles: int | None = None) -> None:
        super().__init__(x_offset_m=x_offset_m, y_offset_m=y_offset_m, rotation_deg=rotation_deg, coverage=coverage,
                         coverage_range_m=coverage_range_m, types=types)
        where = "mobility model 'sumo'"
        if api not in APIS:
            raise ConfigError(f"{where}: api must be one of {', '.join(APIS)}, got {api!r}")
        if not installed(api):
            raise ConfigError(f"{where} needs SUMO ({api}), which is not installed: {SUMO_EXTRA}")
        if api == "traci":
            sumo_binary()  # refused now if there is none
        for key, value, lowest in (("step_length_s", step_length_s, 0.0), ("warmup_s", warmup_s, None)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
                    value <= lowest if lowest is not None else value < 0):
                bound = "> 0" if lowest is not None else ">= 0"
                raise ConfigError(f"{where}: {key} must be a finite number {bound}, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"{where}: seed must be an integer, got {seed!r}")
        if isinstance(precision, bool) or not isinstance(precision, int) or not 0 <= precision <= 17:
            raise ConfigError(f"{where}: precision must be an integer in 0..17, got {precision!r}")
        if args is not None and (not isinstance(args, list) or not all(isinstance(a, str) for a in args)):
            raise ConfigError(f"{where}: args must be a list of strings (SUMO options), got {args!r}")
        if edges is not None and (not isinstance(edges, list) or not all(isinstance(e, str) for e in edges)):
            raise ConfigError(f"{where}: edges must be a list of SUMO edge ids, got {edges!r}")
        base = None if base_dir is None else Path(base_dir)
        if config is None:
            path = DEFAULT_CONFIG
            if not path.is_file():
                raise ConfigError(f"{where}: the shipped network {path} is not there (an installed package "
                                  f"has no scenarios/); set mobility.options.config to a .sumocfg")
        else:
            path = resolve_path(config, base)
            if not path.is_file():
                raise ConfigError(f"{where}: SUMO configuration not found: {path} (mobility.options.config)")
        self.config = path.resolve()
        self.source = str(self.config)
        self.step_length_s = float(step_length_s)
        self.warmup_s = float(warmup_s)
        self.seed = seed
        self.api = api
        self.args = list(args or [])
        self.fcd_output = None if fcd_output is None else resolve_path(fcd_output, base)
        self.precision = precision
        self.edges = None if edges is None else frozenset(edges)
        if traffic_light is not None and (not isinstance(traffic_light, str) or not traffic_light):
            raise ConfigError(f"{where}: traffic_light must be a SUMO traffic light id, got {traffic_light!r}")
        self.traffic_light = traffic_light
        if demand_vph is not None:
            if demand_vph == "sweep":
                pass
            elif (isinstance(demand_vph, bool) or not isinstance(demand_vph, (int, float))
                  or not 0 < demand_vph < math.inf):
                raise ConfigError(f"{where}: demand_vph must be a number > 0 [vehicles/h] or \"sweep\", "
                                  f"got {demand_vph!r}")
            if any(arg == "--scale" or arg.startswith("--scale=") for arg in self.args):
                raise ConfigError(f"{where}: demand_vph and args = [\"--scale\", ...] both set the demand; keep one")
            self.nominal_vph = route_demand_vph(self.config)
        self.demand_vph = demand_vph
        self.num_vehicles = num_vehicles
        self._sim: Any = None  # the libsumo module or a TraCI connection while running
        self._end_s = -1.0

    # ------------------------------------------------------------ SUMO
    def demand(self) -> float | None:
        """The total demand of this run [veh/h] (None: the route files' own)."""
        if self.demand_vph is None:
            return None
        if self.demand_vph != "sweep":
            return float(self.demand_vph)
        if self.num_vehicles is None or self.num_vehicles <= 0:
            raise ConfigError(f"mobility model 'sumo': demand_vph = \"sweep\" takes the demand from the swept "
                              f"num_vehicles [vehicles/h], which must be > 0 (got {self.num_vehicles!r})")
        return float(self.num_vehicles)

    def command(self) -> list[str]:
        """SUMO's command line for this run."""
        command = [sumo_binary() if self.api == "traci" else "sumo", "-c", str(self.config),
                   "--seed", str(self.seed % 2**31), "--step-length", repr(self.step_length_s),
                   "--no-step-log", "true", *self.args]
        demand = self.demand()
        if demand is not None:
            command += ["--scale", repr(demand / self.nominal_vph)]
        if self.fcd_output is not None:
            path = str(self.fcd_output).replace("{seed}", str(self.seed % 2**31))
            command += ["--fcd-output", path, "--precision", str(self.precision)]
        return command

    def _start(self) -> Any:
        global _libsumo_holder
        command = self.command()
        if self.api == "libsumo":
            if _libsumo_holder is not None and _libsumo_holder is not self:
                raise RuntimeError("libsumo runs one SUMO simulation per process and another 'sumo' mobility model "
                                   "holds it: close() that one first, or use api = 'traci'")
            module = importlib.import_module("libsumo")
            with captured_stderr() as messages:
                try:
                    module.start(command)
                    failed = None
                except Exception as error:  # libsumo.TraCIException
                    failed = str(error)
            for line in messages:
                log.debug("SUMO: %s", line)
            if failed is not None:
                raise ConfigError(self._start_error(failed, messages))
            _libsumo_holder = self
            return module
        traci = importlib.import_module("traci")
        label = f"v2xsim-{os.getpid()}-{next(_labels)}"
        try:
            traci.start(command, label=label, stdout=subprocess.DEVNULL, doSwitch=False)
        except Exception as error:  # traci.exceptions.FatalTraCIError, OSError
            raise ConfigError(self._start_error(str(error), [])) from None
        return traci.getConnection(label)

    def _start_error(self, failure: str, messages: list[str]) -> str:
        detail = next((line.removeprefix("Error: ") for line in messages if line.startswith("Error")), failure)
        return f"{self.config}: SUMO cannot run this configuration ({detail})"

    def _open(self, rng: np.random.Generator) -> float:
        self.close()
        self._sim = self._start()
        simulation = self._sim.simulation
        begin, delta = float(simulation.getTime()), float(simulation.getDeltaT())
        self._end_s = float(simulation.getEndTime()) if hasattr(simulation, "getEndTime") else -1.0
        origin = begin + self.warmup_s
        if self.traffic_light is not None and self.traffic_light not in self._sim.trafficlight.getIDList():
            known = ", ".join(self._sim.trafficlight.getIDList()) or "none"
            raise ConfigError(f"{self.config}: no traffic light {self.traffic_light!r} (mobility.options."
                              f"traffic_light; the network has: {known})")
        # warm-up: steps whose frames the world never needs are taken without reading them
        while simulation.getTime() + delta <= origin - 1e-9 and not self._ended():
            self._sim.simulationStep()
        return origin

    def _ended(self) -> bool:
        return self._end_s >= 0 and self._sim.simulation.getTime() > self._end_s + 1e-9

    def _next_frame(self) -> Frame | None:
        if self._sim is None or self._ended():
            return None
        sim = self._sim
        time_s = float(sim.simulation.getTime())  # SUMO labels a step by its time before the step
        try:
            sim.simulationStep()
        except Exception as error:
            raise ConfigError(f"{self.config}: SUMO stopped at {time_s:g} s ({error})") from None
        vehicle = sim.vehicle
        digits = self.precision
        records = []
        for vehicle_id in vehicle.getIDList():
            if self.edges is not None and vehicle.getRoadID(vehicle_id) not in self.edges:
                continue
            x, y = vehicle.getPosition(vehicle_id)
            # as SUMO writes them with --precision, so a replay of its FCD sees the same numbers
            record = (vehicle_id, float(f"{x:.{digits}f}"), float(f"{y:.{digits}f}"),
                      float(f"{vehicle.getSpeed(vehicle_id):.{digits}f}"), int(vehicle.getLaneIndex(vehicle_id)),
                      vehicle.getTypeID(vehicle_id))
            if self.planar:
                record += (sumo_heading(float(f"{vehicle.getAngle(vehicle_id):.{digits}f}")),)
            records.append(record)
        return frame(time_s, records, label=self._phase())

    def _phase(self) -> str | None:
        """The label of the traffic light's current phase (None without ``traffic_light``)."""
        if self.traffic_light is None:
            return None
        lights = self._sim.trafficlight
        index = int(lights.getPhase(self.traffic_light))
        name = str(lights.getPhaseName(self.traffic_light))
        return f"{index} {name}" if name else str(index)

    def _vehicle_type(self, type_id: str) -> VehicleType:
        types = self._sim.vehicletype
        kind = "truck" if types.getVehicleClass(type_id) in BLOCKER_CLASSES else "car"
        return VehicleType(kind, float(types.getLength(type_id)), float(types.getWidth(type_id)),
                           float(types.getHeight(type_id)))

    def close(self) -> None:
        """End the SUMO simulation (writes its outputs, e.g. ``fcd_output``)."""
        global _libsumo_holder
        sim, self._sim = self._sim, None
        if sim is None:
            return
        try:
            sim.close()
        except Exception as error:  # SUMO already gone (e.g. a TraCI child that died): nothing to end
            log.debug("closing SUMO: %s", error)
        finally:
            if _libsumo_holder is self:
                _libsumo_holder = None
