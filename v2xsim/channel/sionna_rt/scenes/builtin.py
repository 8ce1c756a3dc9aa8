"""Built-in ray-tracing scenes, generated as Mitsuba XML from the road layout.

Nothing is shipped as a mesh: every shape is a Mitsuba ``cube`` (a 12-triangle mesh)
placed and scaled by its ``to_world`` transform, so a scene follows the
:class:`~v2xsim.geometry.RoadLayout` it is built for.

Scenes (coordinates as in :mod:`v2xsim.geometry`: x along the road, y across, z up [m]):

- ``"empty"``: a concrete ground slab (top face at z = 0) only.
- ``"street_canyon"``: the ground plus rows of buildings behind both sidewalks (facade
  planes at the layout's wall positions, as the geometric backend's reflecting walls),
  separated by side streets, with seeded lengths / heights and concrete or glass facades,
  and metal lamp posts on the far sidewalk (the counterpart of the geometric backend's
  point scatterers).

Obstacle boxes of the world (cars, trucks, pedestrians, parked cars) are not part of the
base scene: :func:`add_box_pool` appends a pool of cubes per class that the channel backend
moves each snapshot (unused cubes wait far away, below the ground).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np

from v2xsim.geometry import OBSTACLE_KINDS, RoadLayout

BUILTIN_SCENES: tuple[str, ...] = ("street_canyon", "empty")

#: margin of the ground / buildings beyond the covered road stretch [m]
SCENE_MARGIN_M = 80.0
BUILDING_DEPTH_M = 12.0

#: default radio material of each obstacle class; ITU names, or "human" (skin at 60 GHz:
#: relative permittivity 8, conductivity 36 S/m)
DEFAULT_BOX_MATERIALS: dict[str, str] = {
    "car": "metal",
    "truck": "metal",
    "pedestrian": "human",
    "parked_car": "metal",
}
HUMAN_PERMITTIVITY = 8.0
HUMAN_CONDUCTIVITY_S_M = 36.0

#: where an unused pool box waits [m] (far outside any scene, below the ground)
PARK_ORIGIN = np.array([5.0e4, 5.0e4, -1.0e3])
PARK_SIZE_M = 0.01


def _fmt(value: float) -> str:
    return repr(float(value))


def _material(root: ET.Element, bsdf_id: str, itu_type: str, thickness_m: float) -> None:
    bsdf = ET.SubElement(root, "bsdf", {"type": "itu-radio-material", "id": bsdf_id})
    ET.SubElement(bsdf, "string", {"name": "type", "value": itu_type})
    ET.SubElement(bsdf, "float", {"name": "thickness", "value": _fmt(thickness_m)})


def _cube(root: ET.Element, shape_id: str, centre, size, bsdf_id: str) -> None:
    shape = ET.SubElement(root, "shape", {"type": "cube", "id": shape_id})
    transform = ET.SubElement(shape, "transform", {"name": "to_world"})
    half = np.asarray(size, dtype=float) / 2.0
    ET.SubElement(transform, "scale", {"x": _fmt(half[0]), "y": _fmt(half[1]), "z": _fmt(half[2])})
    centre = np.asarray(centre, dtype=float)
    ET.SubElement(transform, "translate", {"x": _fmt(centre[0]), "y": _fmt(centre[1]), "z": _fmt(centre[2])})
    ET.SubElement(shape, "ref", {"id": bsdf_id, "name": "bsdf"})


def canyon_walls(layout: RoadLayout) -> tuple[float, float]:
    """y of the near and far facade planes [m] (the geometric backend's walls)."""
    near = -max(layout.sidewalk_m, layout.rsu_setback_m + 0.5)
    return near, layout.road_width + layout.sidewalk_m


def _ground(root: ET.Element, layout: RoadLayout) -> None:
    x_min, x_max = layout.x_range
    near, far = canyon_walls(layout)
    _material(root, "mat-v2x_ground", "concrete", 0.2)
    lo = np.array([x_min - SCENE_MARGIN_M, near - SCENE_MARGIN_M])
    hi = np.array([x_max + SCENE_MARGIN_M, far + SCENE_MARGIN_M])
    _cube(root, "v2x-ground", [*(lo + hi) / 2, -0.1], [*(hi - lo), 0.2], "mat-v2x_ground")


def _buildings(root: ET.Element, layout: RoadLayout, rng: np.random.Generator) -> None:
    x_min, x_max = layout.x_range
    _material(root, "mat-v2x_facade_concrete", "concrete", 0.3)
    _material(root, "mat-v2x_facade_glass", "glass", 0.05)
    _material(root, "mat-v2x_pole", "metal", 0.01)
    for side, wall in enumerate(canyon_walls(layout)):
        y_centre = wall - BUILDING_DEPTH_M / 2 if side == 0 else wall + BUILDING_DEPTH_M / 2
        x = x_min - SCENE_MARGIN_M + rng.uniform(0.0, 10.0)
        index = 0
        while x < x_max + SCENE_MARGIN_M:
            length = rng.uniform(15.0, 35.0)
            height = rng.uniform(8.0, 25.0)
            material = "mat-v2x_facade_glass" if rng.random() < 0.3 else "mat-v2x_facade_concrete"
            _cube(root, f"v2x-building-{side}-{index:02d}", [x + length / 2, y_centre, height / 2],
                  [length, BUILDING_DEPTH_M, height], material)
            x += length + rng.uniform(4.0, 8.0)  # side street
            index += 1
    # lamp posts on the far sidewalk, every ~25 m
    post_y = layout.road_width + 0.6
    x = x_min - 10.0 + rng.uniform(0.0, 10.0)
    index = 0
    while x < x_max + 10.0:
        _cube(root, f"v2x-post-{index:02d}", [x, post_y, 3.0], [0.2, 0.2, 6.0], "mat-v2x_pole")
        x += rng.uniform(20.0, 30.0)
        index += 1


def builtin_scene_xml(name: str, layout: RoadLayout, seed: int) -> ET.Element:
    """The XML tree of built-in scene ``name`` for ``layout`` (buildings seeded by ``seed``)."""
    if name not in BUILTIN_SCENES:
        raise ValueError(f"scene: unknown built-in scene {name!r}; valid: {', '.join(BUILTIN_SCENES)} "
                         "or the path of a Mitsuba XML file")
    root = ET.Element("scene", {"version": "2.1.0"})
    _ground(root, layout)
    if name == "street_canyon":
        _buildings(root, layout, np.random.default_rng(seed))
    return root


def pool_shape_id(kind: str, index: int) -> str:
    return f"v2x-box-{kind}-{index:03d}"


def add_box_pool(root: ET.Element, pool_sizes: dict[str, int], materials: dict[str, str]) -> None:
    """Append, in place, ``pool_sizes[kind]`` parked cubes of each obstacle class.

    Args:
        pool_sizes: number of cubes per class of :data:`~v2xsim.geometry.OBSTACLE_KINDS`.
        materials: ITU material name (or "human") per class.
    """
    for code, kind in enumerate(OBSTACLE_KINDS):
        bsdf_id = f"mat-v2x_box_{kind}"
        material = materials[kind]
        if material == "human":
            bsdf = ET.SubElement(root, "bsdf", {"type": "radio-material", "id": bsdf_id})
            ET.SubElement(bsdf, "float", {"name": "relative_permittivity", "value": _fmt(HUMAN_PERMITTIVITY)})
            ET.SubElement(bsdf, "float", {"name": "conductivity", "value": _fmt(HUMAN_CONDUCTIVITY_S_M)})
            ET.SubElement(bsdf, "float", {"name": "thickness", "value": "0.1"})
        else:
            _material(root, bsdf_id, material, 0.01)
        for index in range(pool_sizes[kind]):
            _cube(root, pool_shape_id(kind, index), parked_centre(code, index), [PARK_SIZE_M] * 3, bsdf_id)


def parked_centre(code: int, index: int) -> np.ndarray:
    """Waiting position of unused pool cube ``index`` of class ``code`` [m]."""
    return PARK_ORIGIN + np.array([2.0 * index, 2.0 * code, 0.0])
