"""The loaded Sionna scene of one backend: base scene, obstacle box pools, RSU, receivers.

The base scene is ``"street_canyon"`` or ``"empty"`` (built in, see
:mod:`v2xsim.channel.sionna_rt.scenes`) or the path of a Mitsuba XML file in the world's
coordinates (x along the road, z up [m]). Scenes are loaded with ``merge_shapes=False``;
ITU materials without a fit at the carrier are replaced automatically
(:mod:`v2xsim.channel.sionna_rt.scenes.materials`; the replacements are in
:attr:`RTScene.material_changes`). The world's obstacle boxes are cubes of a per-class
pool (metal cars / trucks / parked cars, skin-like pedestrians by default) moved and
scaled each snapshot; unused cubes wait outside the scene. Constructing an
:class:`RTScene` checks the scene name / file; only :meth:`RTScene.load` imports Sionna.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from v2xsim.channel.sionna_rt.runtime import import_sionna
from v2xsim.channel.sionna_rt.scenes import (
    BUILTIN_SCENES,
    adapt_itu_materials,
    add_box_pool,
    builtin_scene_xml,
    parked_centre,
    pool_shape_id,
)
from v2xsim.channel.sionna_rt.scenes.builtin import PARK_SIZE_M
from v2xsim.channel.sionna_rt.scenes.materials import itu_table
from v2xsim.errors import ConfigError
from v2xsim.geometry import OBSTACLE_KINDS, RoadLayout

log = logging.getLogger(__name__)

#: initial number of pool cubes per obstacle class (a pool doubles when a snapshot needs more)
DEFAULT_POOL_SIZES: dict[str, int] = {"car": 64, "truck": 8, "pedestrian": 16, "parked_car": 8}
#: name of the RSU transmitter in the Sionna scene
RSU_NAME = "v2x-rsu"


def resolve_scene(scene: str | os.PathLike) -> tuple[str, Path | None]:
    """``(name, None)`` for a built-in scene, ``(path text, path)`` for an existing Mitsuba
    XML file (resolved); ConfigError for anything else."""
    if isinstance(scene, str) and scene in BUILTIN_SCENES:
        return scene, None
    text = os.fspath(scene)
    path = Path(text).expanduser()
    looks_like_path = path.suffix.lower() == ".xml" or os.sep in text or path.exists()
    if not looks_like_path:
        raise ConfigError(f"scene: unknown built-in scene {text!r}; valid: {', '.join(BUILTIN_SCENES)} "
                          "or the path of a Mitsuba XML file")
    if not path.is_file():
        raise ConfigError(f"scene: Mitsuba XML file not found: {str(path)!r}")
    return str(path.resolve()), path.resolve()


class RTScene:
    """A Sionna scene that follows the world: base scene + obstacle pools + RSU + receivers.

    Args:
        layout: road geometry (RSU position; built-in scenes follow it).
        carrier_hz: carrier frequency [Hz].
        seed: seeds the built-in scene's buildings.
        scene: built-in scene name or Mitsuba XML path (see :func:`resolve_scene`).
        box_materials: ITU material (or ``"human"``) per obstacle class, all classes.
        pool_sizes: initial pool cubes per obstacle class, all classes.

    Attributes:
        name, file: the scene's name (or resolved XML path) and XML file (None: built in).
        pool_sizes: current pool cubes per obstacle class (grows on demand).
        material_changes: ITU materials replaced at the carrier, by bsdf id.
        digest: SHA-256 of the scene's inputs (XML and meshes; set by :meth:`load`).
        generation: number of (re)loads; each one gives the shapes new registry ids.
        sionna: ``(sionna.rt, mitsuba, drjit)`` once loaded.
        sionna_scene: the ``sionna.rt.Scene`` once loaded.
    """

    def __init__(self, *, layout: RoadLayout, carrier_hz: float, seed: int, scene: str | os.PathLike,
                 box_materials: dict[str, str], pool_sizes: dict[str, int]) -> None:
        self.layout = layout
        self.carrier_hz = carrier_hz
        self.seed = seed
        self.name, self.file = resolve_scene(scene)
        self.box_materials = box_materials
        self.pool_sizes = dict(pool_sizes)
        self.material_changes: dict[str, str] = {}
        self.digest: str | None = None
        self.generation = 0
        self.sionna = None
        self.sionna_scene = None
        self._base: ET.Element | None = None
        self._receivers: list = []
        self._unit_cube: np.ndarray | None = None
        self._placed: dict[str, np.ndarray] = {}

    @property
    def mi_scene(self):
        """The Mitsuba scene (loads Sionna on first use)."""
        self.load()
        return self.sionna_scene.mi_scene

    def load(self) -> None:
        """Import Sionna and load the scene, once."""
        if self.sionna_scene is not None:
            return
        self.sionna = import_sionna()
        self._base, self.digest = self._base_tree()
        self._reload()

    def _base_tree(self) -> tuple[ET.Element, str]:
        """XML tree of the scene without obstacle pools, and a digest of its inputs."""
        if self.file is None:
            root = builtin_scene_xml(self.name, self.layout, self.seed)
            return root, hashlib.sha256(ET.tostring(root)).hexdigest()
        try:
            text = self.file.read_bytes()
            root = ET.fromstring(text)
        except (OSError, ET.ParseError) as exc:
            raise ConfigError(f"scene: cannot read Mitsuba XML file {str(self.file)!r}: {exc}") from None
        if root.tag != "scene":
            raise ConfigError(f"scene: {str(self.file)!r} is not a Mitsuba scene (root <{root.tag}>)")
        h = hashlib.sha256(text)
        for element in root.iter("string"):
            if element.get("name") == "filename":
                mesh = self.file.parent / element.get("value", "")
                if mesh.is_file():
                    h.update(mesh.read_bytes())
        return root, h.hexdigest()

    def _reload(self) -> None:
        """(Re)load the Sionna scene: base scene + obstacle pools + RSU."""
        rt, mi, _ = self.sionna
        known = sorted(itu_table()) + ["human"]
        for kind, material in self.box_materials.items():
            if material not in known:
                raise ConfigError(f"box_materials.{kind}: unknown material {material!r}; valid: {', '.join(known)}")
        root = copy.deepcopy(self._base)
        add_box_pool(root, self.pool_sizes, self.box_materials)
        self.material_changes = adapt_itu_materials(root, self.carrier_hz, load_hz=float(rt.DEFAULT_FREQUENCY))
        for bsdf_id, change in self.material_changes.items():
            log.info("sionna_rt: material %s: %s", bsdf_id, change)
        xml = ET.tostring(root, encoding="unicode")
        old_resolver = mi.file_resolver()
        try:
            if self.file is not None:
                resolver = mi.FileResolver(old_resolver)
                resolver.append(str(self.file.parent))
                mi.set_file_resolver(resolver)
            scene = rt.load_scene_from_string(xml, merge_shapes=False)
            scene.frequency = self.carrier_hz
        except Exception as exc:  # Mitsuba raises RuntimeError / ValueError with its own text
            where = f"Mitsuba XML file {str(self.file)!r}" if self.file else f"built-in scene {self.name!r}"
            raise ConfigError(f"scene: cannot load {where}: {exc}") from None
        finally:
            mi.set_file_resolver(old_resolver)
        scene.tx_array = rt.PlanarArray(num_rows=1, num_cols=1, pattern="iso", polarization="V")
        scene.rx_array = rt.PlanarArray(num_rows=1, num_cols=1, pattern="iso", polarization="V")
        scene.add(rt.Transmitter(name=RSU_NAME, position=mi.Point3f(*map(float, self.layout.rsu_position))))
        self.sionna_scene = scene
        self.generation += 1  # new shapes, new registry ids
        self._receivers = []
        # vertices of a cube with unit edges centred at the origin, in Mitsuba's order
        unit = mi.load_dict({"type": "cube"})
        self._unit_cube = np.asarray(mi.traverse(unit)["vertex_positions"], dtype=np.float64).reshape(-1, 3) / 2.0
        # current placement of every pool cube: (centre, size) rows, NaN = unknown
        self._placed = {kind: np.full((self.pool_sizes[kind], 6), np.nan) for kind in OBSTACLE_KINDS}

    def place_boxes(self, centre: np.ndarray, size: np.ndarray, kind: np.ndarray) -> np.ndarray:
        """Move / scale the pool cubes to the given boxes (centres, sizes [m]); park the
        unused ones. Grows (and reloads) a pool that is too small.

        Returns:
            (B,) int pool index of each box: the i-th box of a class (in the given order)
            is cube :func:`~v2xsim.channel.sionna_rt.scenes.pool_shape_id` ``(class, i)``.
        """
        self.load()
        counts = {name: int(np.sum(kind == code)) for code, name in enumerate(OBSTACLE_KINDS)}
        if any(counts[name] > self.pool_sizes[name] for name in OBSTACLE_KINDS):
            for name in OBSTACLE_KINDS:
                if counts[name] > self.pool_sizes[name]:
                    self.pool_sizes[name] = max(counts[name], 2 * self.pool_sizes[name])
            log.info("sionna_rt: growing the obstacle pools to %s", self.pool_sizes)
            self._reload()
        _, mi, _ = self.sionna
        params = self.sionna_scene.mi_scene_params
        changed = False
        for code, name in enumerate(OBSTACLE_KINDS):
            mine = kind == code
            target = np.empty((self.pool_sizes[name], 6))
            target[:, :3] = [parked_centre(code, i) for i in range(self.pool_sizes[name])]
            target[:, 3:] = PARK_SIZE_M
            target[: counts[name], :3] = centre[mine]
            target[: counts[name], 3:] = size[mine]
            for index in np.flatnonzero(np.any(target != self._placed[name], axis=1)):
                vertices = target[index, :3] + self._unit_cube * target[index, 3:]
                params[f"{pool_shape_id(name, int(index))}.vertex_positions"] = mi.Float(
                    vertices.astype(np.float32).ravel())
                changed = True
            self._placed[name] = target
        if changed:
            params.update()
            self.sionna_scene.scene_geometry_updated()
        slot = np.zeros(len(kind), dtype=int)
        for code in range(len(OBSTACLE_KINDS)):
            mine = kind == code
            slot[mine] = np.arange(int(mine.sum()))
        return slot

    def set_receivers(self, positions: np.ndarray) -> None:
        """One receiver per row of ``positions`` (K, 3) [m], added or removed as needed."""
        self.load()
        rt, mi, _ = self.sionna
        num = len(positions)
        if len(self._receivers) > num:
            self.sionna_scene.remove([rx.name for rx in self._receivers[num:]])
            del self._receivers[num:]
        while len(self._receivers) < num:
            receiver = rt.Receiver(name=f"v2x-rx-{len(self._receivers):05d}", position=mi.Point3f(0.0, 0.0, 0.0))
            self.sionna_scene.add(receiver)
            self._receivers.append(receiver)
        for receiver, position in zip(self._receivers, positions):
            receiver.position = mi.Point3f(*map(float, position))
