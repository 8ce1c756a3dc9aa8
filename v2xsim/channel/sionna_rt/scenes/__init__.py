"""Scenes for the Sionna RT backend: built-in scenes generated from the road layout and
the 60 GHz material handling of user scenes. Pure XML; importing this never imports Sionna."""

from v2xsim.channel.sionna_rt.scenes.builtin import (
    BUILTIN_SCENES,
    DEFAULT_BOX_MATERIALS,
    add_box_pool,
    builtin_scene_xml,
    canyon_walls,
    parked_centre,
    pool_shape_id,
)
from v2xsim.channel.sionna_rt.scenes.materials import MMWAVE_SUBSTITUTES, adapt_itu_materials

__all__ = [
    "BUILTIN_SCENES",
    "DEFAULT_BOX_MATERIALS",
    "MMWAVE_SUBSTITUTES",
    "adapt_itu_materials",
    "add_box_pool",
    "builtin_scene_xml",
    "canyon_walls",
    "parked_centre",
    "pool_shape_id",
]
