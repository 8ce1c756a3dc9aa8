"""Sionna RT channel backend (ray-traced channels, camera and LiDAR from one 3-D scene).

Importing this package registers :class:`SionnaRTChannel` as channel backend
``"sionna_rt"``; Sionna itself is imported only when a scene is first loaded.

- :mod:`.runtime`: importing Sionna with a working LLVM / CUDA JIT back-end.
- :mod:`.scenes`: built-in scenes (XML) and the 60 GHz material handling.
- :mod:`.scene`: the loaded scene, its obstacle box pools, RSU and receivers.
- :mod:`.tracing`: path tracing, quantisation and extrapolation to exact positions.
- :mod:`.cache`: the disk cache of traced paths.
- :mod:`.sensors`: camera and LiDAR rendered in the scene.
- :mod:`.backend`: :class:`SionnaRTChannel`, composing the above.
"""

from v2xsim.channel.sionna_rt.backend import SionnaRTChannel
from v2xsim.channel.sionna_rt.runtime import import_sionna, locate_libllvm
from v2xsim.channel.sionna_rt.scene import RTScene
from v2xsim.channel.sionna_rt.sensors import SceneSensors, camera_rays
from v2xsim.channel.sionna_rt.tracing import PathTracer, RTPaths

__all__ = [
    "PathTracer",
    "RTPaths",
    "RTScene",
    "SceneSensors",
    "SionnaRTChannel",
    "camera_rays",
    "import_sionna",
    "locate_libllvm",
]
