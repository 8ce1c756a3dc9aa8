"""The ``trace`` mobility model: recorded traffic replayed without SUMO.

Two formats, told apart by the file name (either may be gzipped, ``.gz``):

* ``.xml``: SUMO's FCD output (``sumo --fcd-output``): ``<timestep time="...">`` elements
  holding ``<vehicle id x y speed type [lane] [angle]/>`` (x, y the front bumper, angle in
  degrees clockwise from north, as SUMO writes them; other elements, e.g. persons, are
  skipped);
* ``.csv``: a header ``time,id,x,y,speed,type`` (any order; an optional ``lane`` column
  holds lane indices, an optional ``angle`` column SUMO's angle [deg]), one row per
  vehicle and instant; rows of one instant are consecutive and form one snapshot.

The angle is needed by ``coverage = "sector"`` (planar traffic) only.

Times must increase from snapshot to snapshot; a vehicle missing from a snapshot has left.
Between snapshots positions are interpolated linearly, with the same entry and exit rules
as the ``sumo`` model (:mod:`v2xsim.mobility.frames`): replaying the FCD output of a
``sumo`` run (its ``fcd_output`` option, or ``sumo --fcd-output`` with the same seed and
``--precision 17``) gives the same results as that run. Vehicle types are looked up in the
``types`` option, then among the types of the shipped networks (``car``, ``truck``,
``bus``) and SUMO's ``DEFAULT_VEHTYPE``; any other type is refused, naming the file.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import IO, Any, Generator, Iterator, Mapping

import numpy as np

from v2xsim.errors import ConfigError
from v2xsim.mobility.frames import KNOWN_TYPES, Frame, FrameMobility, VehicleType, frame, sumo_heading
from v2xsim.registry import MOBILITY

CSV_COLUMNS = ("time", "id", "x", "y", "speed", "type")


def _open_text(path: Path) -> IO[str]:
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def _number(text: str | None, *, what: str, where: str) -> float:
    if text is None:
        raise ConfigError(f"{where}: missing {what}")
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{where}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"{where}: {what} {text!r} is not a finite number")
    return value


def _lane_index(lane: str | None) -> int:
    """SUMO lane id ``edge_index`` -> index; -1 if there is none."""
    if not lane:
        return -1
    _, _, index = lane.rpartition("_")
    return int(index) if index.isdigit() else -1


def _angle(text: str | None, *, where: str) -> float:
    """SUMO's angle [deg] as a heading [rad] (NaN when absent)."""
    return math.nan if text is None or not text.strip() else sumo_heading(_number(text, what="angle", where=where))


def fcd_frames(path: Path, edges: frozenset[str] | None = None) -> Iterator[Frame]:
    """The snapshots of a SUMO FCD file, read as they are needed."""
    with _open_text(path) as handle:
        records: list = []
        time_s = None
        root = True
        try:
            for event, element in ET.iterparse(handle, events=("start", "end")):
                if event == "start":
                    if root and element.tag != "fcd-export":
                        raise ConfigError(f"{path}: not a SUMO FCD file (root element <{element.tag}>, "
                                          f"expected <fcd-export>)")
                    root = False
                    if element.tag == "timestep":
                        time_s = _number(element.get("time"), what="time", where=f"{path}: a timestep")
                        records = []
                    continue
                if element.tag == "vehicle":
                    if time_s is None:
                        raise ConfigError(f"{path}: a <vehicle> outside any <timestep>; not a SUMO FCD file")
                    vehicle_id = element.get("id")
                    where = f"{path}: timestep {time_s:g} s, vehicle {vehicle_id!r}"
                    if vehicle_id is None:
                        raise ConfigError(f"{path}: timestep {time_s:g} s: a vehicle without an id")
                    lane = element.get("lane")
                    if edges is not None and (lane or "").rpartition("_")[0] not in edges:
                        continue
                    records.append((vehicle_id, _number(element.get("x"), what="x", where=where),
                                    _number(element.get("y"), what="y", where=where),
                                    _number(element.get("speed"), what="speed", where=where), _lane_index(lane),
                                    element.get("type") or "DEFAULT_VEHTYPE",
                                    _angle(element.get("angle"), where=where)))
                elif element.tag == "timestep":
                    yield frame(time_s, records)
                    time_s, records = None, []
                    element.clear()
        except ET.ParseError as error:
            raise ConfigError(f"{path}: malformed FCD XML ({error})") from None


def csv_frames(path: Path) -> Iterator[Frame]:
    """The snapshots of a CSV trace, read as they are needed."""
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ConfigError(f"{path}: empty file; a CSV trace needs the header {','.join(CSV_COLUMNS)}")
        header = [name.strip() for name in header]
        missing = [name for name in CSV_COLUMNS if name not in header]
        if missing:
            raise ConfigError(f"{path}: the header lacks {', '.join(missing)} (needs {','.join(CSV_COLUMNS)})")
        column = {name: header.index(name) for name in (*CSV_COLUMNS, "lane", "angle") if name in header}
        time_s: float | None = None
        records: list = []
        seen: set[str] = set()
        for row in reader:
            where = f"{path}: line {reader.line_num}"
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise ConfigError(f"{where}: {len(row)} fields, the header has {len(header)}")
            t = _number(row[column["time"]], what="time", where=where)
            if time_s is not None and t != time_s:
                if t < time_s:
                    raise ConfigError(f"{where}: time {t:g} s before {time_s:g} s; rows must be in time order")
                yield frame(time_s, records)
                records, seen = [], set()
            time_s = t
            vehicle_id = row[column["id"]].strip()
            if not vehicle_id:
                raise ConfigError(f"{where}: empty id")
            if vehicle_id in seen:
                raise ConfigError(f"{where}: vehicle {vehicle_id!r} twice at {t:g} s")
            seen.add(vehicle_id)
            lane = -1
            if "lane" in column and row[column["lane"]].strip():
                text = row[column["lane"]].strip()
                if not text.isdigit():
                    raise ConfigError(f"{where}: lane {text!r} is not a lane index (0, 1, ...)")
                lane = int(text)
            records.append((vehicle_id, _number(row[column["x"]], what="x", where=where),
                            _number(row[column["y"]], what="y", where=where),
                            _number(row[column["speed"]], what="speed", where=where), lane,
                            row[column["type"]].strip() or "DEFAULT_VEHTYPE",
                            _angle(row[column["angle"]], where=where) if "angle" in column else math.nan))
        if time_s is not None:
            yield frame(time_s, records)


@MOBILITY.register("trace")
class TraceMobility(FrameMobility):
    """Replays a SUMO FCD file or a CSV trace (see the module doc).

    Args:
        path: the trace (relative: to the scenario file).
        start_s: trace time of the world's t = 0 [s] (default: the first snapshot's).
        edges: SUMO edges of the road through the RSU (FCD only; default: every edge).
        x_offset_m, y_offset_m: trace coordinates of the road frame's origin [m].
        rotation_deg: direction of the road frame's +x in the trace's coordinates,
            counter-clockwise from its +x [deg].
        coverage: ``"stretch"`` (straight road) or ``"sector"`` (planar traffic).
        coverage_range_m: horizontal range of the sector coverage [m].
        types: vehicle types by type id (``kind``, ``length_m``, ``width_m``, ``height_m``).
        base_dir: directory of the scenario file (set by the engine).
    """

    name = "trace"

    def __init__(self, *, path: str, start_s: float | None = None, edges: list[str] | None = None,
                 x_offset_m: float = 0.0, y_offset_m: float = 0.0, rotation_deg: float = 0.0,
                 coverage: str = "stretch", coverage_range_m: float | None = None,
                 types: Mapping[str, Any] | None = None, base_dir: str | os.PathLike | None = None) -> None:
        super().__init__(x_offset_m=x_offset_m, y_offset_m=y_offset_m, rotation_deg=rotation_deg, coverage=coverage,
                         coverage_range_m=coverage_range_m, types=types)
        where = "mobility model 'trace'"
        file = Path(path).expanduser()
        if not file.is_absolute() and base_dir is not None:
            file = Path(base_dir) / file
        if not file.is_file():
            raise ConfigError(f"{where}: trace file not found: {file} (mobility.options.path)")
        suffixes = [s.lower() for s in file.suffixes[-2:]]
        kind = suffixes[-2] if suffixes and suffixes[-1] == ".gz" and len(suffixes) == 2 else (
            suffixes[-1] if suffixes else "")
        if kind not in (".xml", ".csv"):
            raise ConfigError(f"{file}: a trace is a SUMO FCD file (.xml) or a CSV (.csv), optionally .gz")
        if start_s is not None and (isinstance(start_s, bool) or not isinstance(start_s, (int, float))
                                    or not math.isfinite(start_s)):
            raise ConfigError(f"{where}: start_s must be a finite number, got {start_s!r}")
        if edges is not None and (not isinstance(edges, list) or not all(isinstance(e, str) for e in edges)):
            raise ConfigError(f"{where}: edges must be a list of SUMO edge ids, got {edges!r}")
        if edges is not None and kind == ".csv":
            raise ConfigError(f"{where}: edges needs SUMO lane ids, which a CSV trace ({file}) has not")
        self.path = file.resolve()
        self.source = str(self.path)
        self.format = kind.lstrip(".")
        self.start_s = None if start_s is None else float(start_s)
        self.edges = None if edges is None else frozenset(edges)
        self._frames: Iterator[Frame] | None = None
        self._first: Frame | None = None
        frames = self._reader()  # a malformed start of the file is refused before any run
        try:
            next(frames, None)
        finally:
            frames.close()

    def _reader(self) -> Generator[Frame, None, None]:
        return fcd_frames(self.path, self.edges) if self.format == "xml" else csv_frames(self.path)

    def _open(self, rng: np.random.Generator) -> float:
        self.close()
        self._frames = self._reader()
        self._first = next(self._frames, None)
        if self.start_s is not None:
            return self.start_s
        return self._first.time_s if self._first is not None else 0.0

    def _next_frame(self) -> Frame | None:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        if self._frames is None:
            return None
        return next(self._frames, None)

    def _vehicle_type(self, type_id: str) -> VehicleType:
        known = KNOWN_TYPES.get(type_id)
        if known is None:
            raise ConfigError(f"{self.path}: vehicle type {type_id!r} is unknown; describe it in "
                              f"mobility.options.types, e.g. types = {{ {type_id} = {{ kind = \"car\", "
                              f"length_m = 4.5, width_m = 1.8, height_m = 1.5 }} }}")
        return known

    def close(self) -> None:
        """Close the trace file."""
        frames, self._frames, self._first = self._frames, None, None
        if frames is not None:
            frames.close()  # type: ignore[attr-defined]
