"""Ray-traced 60 GHz channels from Sionna RT (``sionna-rt``, Mitsuba 3 / Dr.Jit).

:class:`SionnaRTChannel` implements :class:`~v2xsim.channel.base.ChannelModel` with the
conventions of the geometric backend: the RSU is a ULA along x at
``layout.rsu_position`` with half-wavelength spacing, a path leaving the RSU in unit
direction ``u`` has ``sin(aod) = u_x`` and the array response
:func:`~v2xsim.channel.codebook.ula_response`, and ``P |h^H w|^2`` is the received power
[W] of a unit-norm beam ``w`` sent with power ``P`` (isotropic, vertically polarised
antennas at both ends, plus ``antenna_gain_dbi``). Per snapshot, one ``PathSolver`` call
traces all K receivers; the narrowband channel of vehicle k is

    h_k = sum_p a_p exp(-j 2 pi f_c tau_p) 10^(-O c tau_p / 20) a_ULA(sin aod_p)

with ``a_p`` Sionna's passband path coefficient, ``tau_p`` the delay and ``O`` oxygen
absorption [dB/m] (Sionna models none).

Scene: ``"street_canyon"`` or ``"empty"`` (built in, see :mod:`v2xsim.channel.sionna_rt.scenes`)
or the path of a Mitsuba XML file in the world's coordinates (x along the road, z up
[m]). Scenes are loaded with ``merge_shapes=False``; ITU materials without a fit at the
carrier are replaced automatically (:mod:`v2xsim.channel.sionna_rt.scenes.materials`; the
replacements are in :attr:`SionnaRTChannel.material_changes`). The world's obstacle boxes
are cubes of a per-class pool (metal cars / trucks / parked cars, skin-like pedestrians by
default) moved and scaled each snapshot; unused cubes wait outside the scene.

Differences from the geometric backend, by construction: a vehicle's own body is part of
the scene, so it cannot be excluded from its own paths one receiver at a time; a receiver
whose antenna lies inside its own box (``owner == rx_id``) is raised to 5 cm above the
roof, and the own body may still shadow a ground bounce, as a real car body does. Box
penetration is physical (a metal car body is opaque) rather than a fixed dB value.

Quantisation, cache and extrapolation: receivers are traced at positions snapped to a
``rx_quantum_m`` grid and boxes at centres / sizes snapped to ``box_quantum_m``. The
traced paths (not the channels) are cached on disk (:mod:`v2xsim.channel.sionna_rt.cache`) under
the quantised snapshot, and the channel at the true position ``r = r_q + d`` is
extrapolated from the paths at ``r_q`` by the plane-wave (Doppler) phase shift of each
path: its length becomes ``L_p - u_p . d`` with ``u_p`` the unit arrival direction. The
error of that first-order length is at most ``|d|^2 / (2 D_p)`` with ``D_p`` the length of
the path's last leg; with the default 2 cm grid (``|d| <= 1.73 cm``, 3.5 wavelengths at
60 GHz) and ``D_p >= 1.5 m`` it stays below 1e-4 m (0.13 rad of phase), and amplitudes
change by less than ``|d| / D_p`` (about 1 %). Blockage changes only from one grid cell to
the next. The result is the same whether the snapshot came from the cache or from a new
trace, so the cache never changes results; ``rx_quantum_m=0`` traces exact positions.

Sensors (:meth:`SionnaRTChannel.sense`): GPS, camera and LiDAR in the formats of
:func:`v2xsim.sensing.sense`, seen in the same Mitsuba scene the paths are traced in
(buildings, lamp posts, ground, the obstacle cubes at their exact positions). Camera
pixels and LiDAR beams of all K vehicles are each one vectorised ``ray_intersect`` call;
a vehicle's own body is transparent to its own sensors. Images use the geometric camera's
palette and face shading, so a network trained on geometric FLASH-like images sees the
same colours for the same things. The LiDAR marks the obstacle boxes; static geometry is
background unless ``lidar_static``.

Set-up: ``pip install 'v2xsim[rt]'``. On CPU, Dr.Jit needs LLVM >= 16 (Debian's LLVM 15
fails with "Cannot select fmaximum"): when ``DRJIT_LIBLLVM_PATH`` is unset, a
``libLLVM.so.19.1`` (``apt-get install libllvm19``) or another LLVM 16-20 in the usual
library directories is used. With a CUDA GPU, Sionna's CUDA variant is used.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import logging
import math
import os
import sys
import sysconfig
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from v2xsim import _validate as check
from v2xsim.channel.base import SPEED_OF_LIGHT, ChannelModel
from v2xsim.channel.codebook import DEFAULT_NUM_ANTENNAS, ula_response
from v2xsim.channel.sionna_rt.cache import RTCache, TracedPaths, default_cache_dir
from v2xsim.channel.sionna_rt.scenes import (
    BUILTIN_SCENES,
    DEFAULT_BOX_MATERIALS,
    adapt_itu_materials,
    add_box_pool,
    builtin_scene_xml,
    parked_centre,
    pool_shape_id,
)
from v2xsim.channel.sionna_rt.scenes.builtin import PARK_SIZE_M
from v2xsim.channel.sionna_rt.scenes.materials import itu_table
from v2xsim.errors import ConfigError
from v2xsim.registry import CHANNEL
from v2xsim.sensing.camera import (
    DASH_LENGTH_M,
    DASH_PERIOD_M,
    FACE_SHADE,
    KIND_COLOURS,
    MARKING_COLOUR,
    MARKING_WIDTH_M,
    ROAD_COLOUR,
    RSU_COLOUR,
    SIDEWALK_COLOUR,
    SKY_COLOUR,
    VERGE_COLOUR,
    WALL_COLOUR,
    rsu_boxes,
)
from v2xsim.sensing.gps import gps_reading
from v2xsim.sensing.lidar import BASE_STATION, OBSTACLE, RECEIVER, _scan_pattern, first_hits, grid_bounds
from v2xsim.geometry import OBSTACLE_KINDS, Boxes, RoadLayout, Snapshot

log = logging.getLogger(__name__)

#: initial number of pool cubes per obstacle class (a pool doubles when a snapshot needs more)
DEFAULT_POOL_SIZES: dict[str, int] = {"car": 64, "truck": 8, "pedestrian": 16, "parked_car": 8}
#: height above its own roof at which a receiver inside its own box is traced [m]
ROOF_CLEARANCE_M = 0.05
_RSU_NAME = "v2x-rsu"


# --------------------------------------------------------------------------- import
def locate_libllvm() -> str | None:
    """Path of a libLLVM >= 16 shared library in the usual places, preferring LLVM 19."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
    dirs = [f"/usr/lib/{multiarch}", "/usr/lib64", "/usr/lib"]
    for version in (19, 20, 18, 17, 16):
        candidates = []
        for directory in [*dirs, f"/usr/lib/llvm-{version}/lib"]:
            candidates += [f"{directory}/libLLVM.so.{version}.1", f"{directory}/libLLVM-{version}.so",
                           f"{directory}/libLLVM-{version}.so.1", f"{directory}/libLLVM.so.{version}"]
        for path in candidates:
            if os.path.isfile(path):
                return path
    return None


def import_sionna():
    """Import ``sionna.rt``, ``mitsuba`` and ``drjit`` with a working JIT back-end.

    Sets ``DRJIT_LIBLLVM_PATH`` (when unset and Dr.Jit is not imported yet) to
    :func:`locate_libllvm`. Raises ImportError with the install command when sionna-rt is
    missing.
    """
    if not os.environ.get("DRJIT_LIBLLVM_PATH") and "drjit" not in sys.modules:
        path = locate_libllvm()
        if path:
            os.environ["DRJIT_LIBLLVM_PATH"] = path
    try:
        import drjit as dr
        import mitsuba as mi
        import sionna.rt as rt
    except ImportError as exc:
        raise ImportError("the 'sionna_rt' channel backend needs sionna-rt 2.2: "
                          "pip install 'v2xsim[rt]' (or sionna-rt==2.2.0)") from exc
    variant = mi.variant() or ""
    if not variant.endswith("_ad_mono_polarized"):
        # another library picked a rendering variant; Sionna RT needs a polarised one
        mi.set_variant("cuda_ad_mono_polarized", "llvm_ad_mono_polarized")
    if mi.variant().startswith("llvm"):
        version = tuple(dr.detail.llvm_version() or ())
        if version and version[0] < 16:
            # LLVM 15 aborts the process ("Cannot select fmaximum") on the first trace
            raise ImportError(
                f"Dr.Jit loaded LLVM {'.'.join(map(str, version))} "
                f"(DRJIT_LIBLLVM_PATH={os.environ.get('DRJIT_LIBLLVM_PATH', 'unset')}); Sionna RT on CPU "
                "needs LLVM >= 16: apt-get install libllvm19, or point DRJIT_LIBLLVM_PATH at a newer libLLVM")
    return rt, mi, dr


# --------------------------------------------------------------------------- paths
@dataclass(frozen=True)
class RTPaths:
    """Ray-traced paths of a snapshot at the requested positions, K vehicles x P paths.

    Attributes:
        gain: (K, P) complex path gains (carrier phase, oxygen and antenna gain
            included; 0 for padding).
        sin_aod: (K, P) sine of the departure angle at the RSU ULA.
        length: (K, P) unfolded path lengths [m].
        depth: (K, P) number of interactions (0 = line of sight).
        valid: (K, P) bool.
    """

    gain: np.ndarray
    sin_aod: np.ndarray
    length: np.ndarray
    depth: np.ndarray
    valid: np.ndarray

    @property
    def los(self) -> np.ndarray:
        """(K, P) bool: valid line-of-sight paths."""
        return self.valid & (self.depth == 0)


def _snap(values: np.ndarray, quantum: float) -> tuple[np.ndarray, np.ndarray]:
    """Grid indices (int64) and snapped values; quantum 0 keeps the exact float bits."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    if quantum == 0:
        return values.view(np.int64).copy(), values.copy()
    grid = np.round(values / quantum).astype(np.int64)
    return grid, grid * quantum


# --------------------------------------------------------------------------- sensors
#: camera colours of the built-in street's facades and lamp posts [RGB]; obstacle boxes,
#: road, RSU and sky use the palette of :mod:`v2xsim.sensing.camera`
GLASS_COLOUR: tuple[int, int, int] = (110, 140, 170)
POST_COLOUR: tuple[int, int, int] = (95, 95, 100)
#: colour of a user-scene shape whose radio material has none [RGB]
DEFAULT_SHAPE_COLOUR: tuple[int, int, int] = (180, 180, 180)
#: LiDAR settings that :class:`~v2xsim.sensing.SensorConfig` does not carry: the defaults
#: of :func:`v2xsim.sensing.lidar.lidar_grid` (channels, elevations [deg], range [m],
#: minimum horizontal grid span [m], grid headroom above the RSU [m])
LIDAR_CHANNELS = 16
LIDAR_ELEVATION_DEG = (-15.0, 15.0)
LIDAR_RANGE_M = 100.0
LIDAR_MIN_SPAN_M = 10.0
LIDAR_HEADROOM_M = 3.0
#: camera far plane [m] (farther surfaces show sky, as in :mod:`v2xsim.sensing.camera`)
CAMERA_RANGE_M = 300.0
#: with ``lidar_static``, static geometry hit below this height is ground [m]
GROUND_CUT_M = 0.2
#: a sensor ray that hits its own vehicle's body restarts this far behind the hit [m] ...
SKIP_STEP_M = 1e-3
#: ... at most this many times (a convex body needs two: in and out)
MAX_SKIPS = 6
_NO_SHAPE = np.uint32(0xFFFFFFFF)


@dataclass(frozen=True)
class _ShapeTable:
    """Sensor attributes of the shapes of one loaded scene, by Mitsuba registry id.

    Attributes:
        reg: (S,) sorted registry ids (uint32) of the scene's shapes.
        colour: (S + 1, 3) float base RGB; the last row (no shape) is the sky.
        kind: (S + 1,) obstacle class code of a pool cube, -1 for anything else.
        static: (S + 1,) bool: scene geometry (not a pool cube, not "no shape").
        by_name: shape id -> registry id.
    """

    reg: np.ndarray
    colour: np.ndarray
    kind: np.ndarray
    static: np.ndarray
    by_name: dict[str, int]

    def rows(self, reg: np.ndarray) -> np.ndarray:
        """Row of each registry id; ``S`` (the sky row) for 0 / unknown ids."""
        if len(self.reg) == 0:
            return np.zeros(np.shape(reg), dtype=int)
        pos = np.minimum(np.searchsorted(self.reg, reg), len(self.reg) - 1)
        return np.where(self.reg[pos] == reg, pos, len(self.reg))


def _shape_colour(name: str, shape, kind: int) -> tuple[float, float, float]:
    """Base camera colour of a scene shape [RGB 0..255]."""
    if kind >= 0:
        return KIND_COLOURS[OBSTACLE_KINDS[kind]]
    if name.startswith("v2x-building-"):
        return GLASS_COLOUR if shape.bsdf().id().endswith("_glass") else WALL_COLOUR
    if name.startswith("v2x-post-"):
        return POST_COLOUR
    if name == "v2x-ground":
        return SIDEWALK_COLOUR
    colour = getattr(shape.bsdf(), "color", None)  # a Sionna radio material's display colour
    try:
        return tuple(255.0 * float(c) for c in colour)
    except TypeError:
        return DEFAULT_SHAPE_COLOUR


def _radical_inverse(index: int) -> float:
    """Van der Corput sequence in base 2."""
    value, scale = 0.0, 0.5
    while index:
        value += scale * (index & 1)
        index >>= 1
        scale /= 2.0
    return value


@functools.lru_cache(maxsize=8)
def camera_rays(width: int, height: int, fov_deg: float, yaw_deg: float, pitch_deg: float,
                spp: int = 1) -> np.ndarray:
    """Unit pixel-ray directions (spp, height * width, 3), rows top to bottom.

    Same pinhole model as :mod:`v2xsim.sensing.camera` (yaw from +x in the x-y plane,
    upward pitch, horizontal field of view, square pixels). Sample ``s`` of a pixel goes
    through the shifted Hammersley point ``((s + 1/2) / spp, (phi_2(s) + 1/(2 spp)) mod 1)``
    of the pixel, so ``spp = 1`` is the pixel centre.
    """
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    forward = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)])
    right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
    up = np.cross(right, forward)
    half_width = math.tan(math.radians(fov_deg) / 2.0)
    half_height = half_width * height / width
    samples = []
    for s in range(spp):
        dx = (s + 0.5) / spp
        dy = (_radical_inverse(s) + 0.5 / spp) % 1.0
        u = (2.0 * (np.arange(width) + dx) / width - 1.0) * half_width
        v = (1.0 - 2.0 * (np.arange(height) + dy) / height) * half_height
        rays = forward + u[None, :, None] * right + v[:, None, None] * up
        samples.append((rays / np.linalg.norm(rays, axis=-1, keepdims=True)).reshape(-1, 3))
    out = np.stack(samples)
    out.flags.writeable = False
    return out


def _face_shade(normal: np.ndarray) -> np.ndarray:
    """Brightness (...,) of surfaces with unit normals (..., 3): the camera's per-face
    factors, blended by the squared normal components (exact on axis-aligned faces)."""
    shade = np.asarray(FACE_SHADE)
    weight = normal ** 2
    index = 2 * np.arange(3) + (normal > 0)
    return np.sum(weight * shade[index], axis=-1)


def _road_paint(layout: RoadLayout, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ground colour (N, 3) at points (x, y) [m]: verge, sidewalks, road, lane markings
    (dashed between lanes, solid at the road edges), as the geometric camera paints it."""
    colour = np.empty((len(x), 3))
    colour[:] = VERGE_COLOUR
    width = layout.road_width
    colour[(y >= -layout.sidewalk_m) & (y <= width + layout.sidewalk_m)] = SIDEWALK_COLOUR
    colour[(y >= 0.0) & (y <= width)] = ROAD_COLOUR
    half = MARKING_WIDTH_M / 2.0
    solid = (np.abs(y) <= half) | (np.abs(y - width) <= half)
    lines = layout.lane_width_m * np.arange(1, layout.num_lanes)
    dashed = (np.abs(y[:, None] - lines[None, :]) <= half).any(axis=1) & (np.mod(x, DASH_PERIOD_M) < DASH_LENGTH_M)
    colour[solid | dashed] = MARKING_COLOUR
    return colour


# --------------------------------------------------------------------------- backend
@CHANNEL.register("sionna_rt")
class SionnaRTChannel(ChannelModel):
    """Sionna RT backend (implements :class:`~v2xsim.channel.base.ChannelModel`).

    Args:
        layout: road geometry (RSU position; built-in scenes follow it).
        num_antennas: RSU ULA elements Nt.
        carrier_hz: carrier frequency [Hz].
        seed: seeds the built-in scene's buildings and the path solver.
        scene: ``"street_canyon"``, ``"empty"`` (ground only) or the path of a Mitsuba
            XML file.
        samples_per_src: rays launched from the RSU per trace.
        max_depth: maximum number of interactions per path (0 = line of sight only).
        max_num_paths_per_src: cap on the paths kept per trace.
        reflection: specular reflections.
        refraction: transmission through (thin) objects.
        diffraction: first-order edge diffraction.
        oxygen_db_per_km: atmospheric absorption [dB/km] applied per path length.
        antenna_gain_dbi: combined element gain of RSU element and vehicle antenna [dBi].
        box_materials: ITU material (or ``"human"``) per obstacle class; missing classes
            use :data:`~v2xsim.channel.sionna_rt.scenes.DEFAULT_BOX_MATERIALS`.
        rx_quantum_m: receiver grid step for tracing / caching [m] (0 = exact).
        box_quantum_m: obstacle centre / size grid step [m] (0 = exact).
        cache: use the disk cache of traced paths.
        cache_dir: cache directory (default ``$V2XSIM_CACHE/rt`` or ``~/.cache/v2xsim/rt``).
        pool_sizes: initial pool cubes per obstacle class.
        camera_spp: rays per camera pixel of :meth:`sense` (1 = the pixel centre, as
            :mod:`v2xsim.sensing.camera`; more = anti-aliased, proportionally slower).
        lidar_static: LiDAR points on static scene geometry (buildings, lamp posts, any
            shape of a user scene) higher than 0.2 m count as obstacles too; by default
            only the world's obstacle boxes do (see :meth:`sense`).
    """

    def __init__(
        self,
        *,
        layout: RoadLayout | None = None,
        num_antennas: int = DEFAULT_NUM_ANTENNAS,
        carrier_hz: float = 60e9,
        seed: int = 0,
        scene: str | os.PathLike = "street_canyon",
        samples_per_src: int = 100_000,
        max_depth: int = 3,
        max_num_paths_per_src: int = 100_000,
        reflection: bool = True,
        refraction: bool = True,
        diffraction: bool = False,
        oxygen_db_per_km: float = 15.0,
        antenna_gain_dbi: float = 0.0,
        box_materials: dict[str, str] | None = None,
        rx_quantum_m: float = 0.02,
        box_quantum_m: float = 0.05,
        cache: bool = True,
        cache_dir: str | os.PathLike | None = None,
        pool_sizes: dict[str, int] | None = None,
        camera_spp: int = 1,
        lidar_static: bool = False,
    ) -> None:
        self.layout = layout or RoadLayout()
        self.num_antennas = check.positive_int("num_antennas", num_antennas)
        self.carrier_hz = check.positive("carrier_hz", carrier_hz)
        self.wavelength = SPEED_OF_LIGHT / self.carrier_hz
        self.seed = int(seed)
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {seed!r}")
        self.samples_per_src = check.positive_int("samples_per_src", samples_per_src)
        if int(max_depth) != max_depth or max_depth < 0:
            raise ConfigError(f"max_depth must be an integer >= 0, got {max_depth!r}")
        self.max_depth = int(max_depth)
        self.max_num_paths_per_src = check.positive_int("max_num_paths_per_src", max_num_paths_per_src)
        self.reflection, self.refraction, self.diffraction = bool(reflection), bool(refraction), bool(diffraction)
        self.oxygen_db_per_m = check.non_negative("oxygen_db_per_km", oxygen_db_per_km) / 1000.0
        self.antenna_gain_dbi = check.finite("antenna_gain_dbi", antenna_gain_dbi)
        self.rx_quantum_m = check.non_negative("rx_quantum_m", rx_quantum_m)
        self.box_quantum_m = check.non_negative("box_quantum_m", box_quantum_m)
        materials = dict(DEFAULT_BOX_MATERIALS)
        for name, value in (box_materials or {}).items():
            if name not in materials:
                raise ConfigError(f"box_materials: unknown obstacle class {name!r}; valid: {', '.join(OBSTACLE_KINDS)}")
            materials[name] = str(value)
        self.box_materials = materials
        self._pool_sizes = dict(DEFAULT_POOL_SIZES)
        for name, value in (pool_sizes or {}).items():
            if name not in self._pool_sizes:
                raise ConfigError(f"pool_sizes: unknown obstacle class {name!r}; valid: {', '.join(OBSTACLE_KINDS)}")
            self._pool_sizes[name] = check.positive_int(f"pool_sizes.{name}", value)

        self.camera_spp = check.positive_int("camera_spp", camera_spp)
        self.lidar_static = bool(lidar_static)
        self.scene_name, self.scene_file = self._resolve_scene(scene)
        self.use_cache = bool(cache)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.material_changes: dict[str, str] = {}
        #: number of path-solver calls and their durations [s]
        self.trace_count = 0
        self.trace_seconds: list[float] = []
        self._sionna = None  # (rt, mi, dr) once loaded
        self._scene = None
        self._cache: RTCache | None = None
        self._shapes: _ShapeTable | None = None
        #: durations of the last :meth:`sense` call's parts [s] (place, lidar, camera)
        self.sense_seconds: dict[str, float] = {}

    # ------------------------------------------------------------ scene setup
    @staticmethod
    def _resolve_scene(scene) -> tuple[str, Path | None]:
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

    def _base_tree(self) -> tuple[ET.Element, str]:
        """XML tree of the scene without obstacle pools, and a digest of its inputs."""
        if self.scene_file is None:
            root = builtin_scene_xml(self.scene_name, self.layout, self.seed)
            return root, hashlib.sha256(ET.tostring(root)).hexdigest()
        try:
            text = self.scene_file.read_bytes()
            root = ET.fromstring(text)
        except (OSError, ET.ParseError) as exc:
            raise ConfigError(f"scene: cannot read Mitsuba XML file {str(self.scene_file)!r}: {exc}") from None
        if root.tag != "scene":
            raise ConfigError(f"scene: {str(self.scene_file)!r} is not a Mitsuba scene (root <{root.tag}>)")
        h = hashlib.sha256(text)
        for element in root.iter("string"):
            if element.get("name") == "filename":
                mesh = self.scene_file.parent / element.get("value", "")
                if mesh.is_file():
                    h.update(mesh.read_bytes())
        return root, h.hexdigest()

    def _ensure_loaded(self) -> None:
        if self._scene is not None:
            return
        rt, mi, dr = import_sionna()
        self._sionna = (rt, mi, dr)
        base, scene_digest = self._base_tree()
        self._base = base
        self._load_scene()
        config = {
            "backend": "sionna_rt", "sionna_rt": getattr(rt, "__version__", "?"), "variant": mi.variant(),
            "scene": self.scene_name, "scene_digest": scene_digest, "box_materials": self.box_materials,
            "carrier_hz": self.carrier_hz, "rsu": self.layout.rsu_position.tolist(),
            "max_depth": self.max_depth, "samples_per_src": self.samples_per_src,
            "max_num_paths_per_src": self.max_num_paths_per_src, "reflection": self.reflection,
            "refraction": self.refraction, "diffraction": self.diffraction, "seed": self.seed,
            "rx_quantum_m": self.rx_quantum_m, "box_quantum_m": self.box_quantum_m,
            "roof_clearance_m": ROOF_CLEARANCE_M,
        }
        self._cache = RTCache(self.cache_dir, config) if self.use_cache else None
        self._solver = rt.PathSolver(deterministic=True)

    def _load_scene(self) -> None:
        """(Re)load the Sionna scene: base scene + obstacle pools + RSU."""
        rt, mi, dr = self._sionna
        known = sorted(itu_table()) + ["human"]
        for kind, material in self.box_materials.items():
            if material not in known:
                raise ConfigError(f"box_materials.{kind}: unknown material {material!r}; valid: {', '.join(known)}")
        root = copy.deepcopy(self._base)
        add_box_pool(root, self._pool_sizes, self.box_materials)
        self.material_changes = adapt_itu_materials(root, self.carrier_hz, load_hz=float(rt.DEFAULT_FREQUENCY))
        for bsdf_id, change in self.material_changes.items():
            log.info("sionna_rt: material %s: %s", bsdf_id, change)
        xml = ET.tostring(root, encoding="unicode")
        old_resolver = mi.file_resolver()
        try:
            if self.scene_file is not None:
                resolver = mi.FileResolver(old_resolver)
                resolver.append(str(self.scene_file.parent))
                mi.set_file_resolver(resolver)
            scene = rt.load_scene_from_string(xml, merge_shapes=False)
            scene.frequency = self.carrier_hz
        except Exception as exc:  # Mitsuba raises RuntimeError / ValueError with its own text
            where = f"Mitsuba XML file {str(self.scene_file)!r}" if self.scene_file else f"built-in scene {self.scene_name!r}"
            raise ConfigError(f"scene: cannot load {where}: {exc}") from None
        finally:
            mi.set_file_resolver(old_resolver)
        scene.tx_array = rt.PlanarArray(num_rows=1, num_cols=1, pattern="iso", polarization="V")
        scene.rx_array = rt.PlanarArray(num_rows=1, num_cols=1, pattern="iso", polarization="V")
        scene.add(rt.Transmitter(name=_RSU_NAME, position=mi.Point3f(*map(float, self.layout.rsu_position))))
        self._scene = scene
        self._shapes = None  # new shapes, new registry ids
        self._receivers: list = []
        # vertices of a cube with unit edges centred at the origin, in Mitsuba's order
        unit = mi.load_dict({"type": "cube"})
        self._unit_cube = np.asarray(mi.traverse(unit)["vertex_positions"], dtype=np.float64).reshape(-1, 3) / 2.0
        # current placement of every pool cube: (centre, size) rows, NaN = unknown
        self._placed = {kind: np.full((self._pool_sizes[kind], 6), np.nan) for kind in OBSTACLE_KINDS}

    # ------------------------------------------------------------ snapshot
    def _place_boxes(self, centre: np.ndarray, size: np.ndarray, kind: np.ndarray) -> np.ndarray:
        """Move / scale the pool cubes to the given boxes; park the unused ones.

        Returns the pool index of each box, (B,) int: the i-th box of a class (in the
        given order) is cube :func:`pool_shape_id` ``(class, i)``.
        """
        counts = {name: int(np.sum(kind == code)) for code, name in enumerate(OBSTACLE_KINDS)}
        if any(counts[name] > self._pool_sizes[name] for name in OBSTACLE_KINDS):
            for name in OBSTACLE_KINDS:
                if counts[name] > self._pool_sizes[name]:
                    self._pool_sizes[name] = max(counts[name], 2 * self._pool_sizes[name])
            log.info("sionna_rt: growing the obstacle pools to %s", self._pool_sizes)
            self._load_scene()
        _, mi, _ = self._sionna
        params = self._scene.mi_scene_params
        changed = False
        for code, name in enumerate(OBSTACLE_KINDS):
            mine = kind == code
            target = np.empty((self._pool_sizes[name], 6))
            target[:, :3] = [parked_centre(code, i) for i in range(self._pool_sizes[name])]
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
            self._scene.scene_geometry_updated()
        slot = np.zeros(len(kind), dtype=int)
        for code in range(len(OBSTACLE_KINDS)):
            mine = kind == code
            slot[mine] = np.arange(int(mine.sum()))
        return slot

    def _set_receivers(self, positions: np.ndarray) -> None:
        rt, mi, _ = self._sionna
        num = len(positions)
        if len(self._receivers) > num:
            self._scene.remove([rx.name for rx in self._receivers[num:]])
            del self._receivers[num:]
        while len(self._receivers) < num:
            receiver = rt.Receiver(name=f"v2x-rx-{len(self._receivers):05d}", position=mi.Point3f(0.0, 0.0, 0.0))
            self._scene.add(receiver)
            self._receivers.append(receiver)
        for receiver, position in zip(self._receivers, positions):
            receiver.position = mi.Point3f(*map(float, position))

    def _trace(self, rx: np.ndarray, centre: np.ndarray, size: np.ndarray, kind: np.ndarray) -> TracedPaths:
        """One PathSolver call for all receivers of a snapshot."""
        self._place_boxes(centre, size, kind)
        self._set_receivers(rx)
        start = time.perf_counter()
        paths = self._solver(
            self._scene, max_depth=self.max_depth, max_num_paths_per_src=self.max_num_paths_per_src,
            samples_per_src=self.samples_per_src, synthetic_array=True, los=True,
            specular_reflection=self.reflection, diffuse_reflection=False, refraction=self.refraction,
            diffraction=self.diffraction, seed=self.seed)
        a_re, a_im = (np.asarray(part.numpy()) for part in paths.a)
        num_rx = len(rx)
        a = (a_re + 1j * a_im).reshape(num_rx, -1)
        tau = np.asarray(paths.tau.numpy()).reshape(num_rx, -1)
        valid = np.asarray(paths.valid.numpy()).reshape(num_rx, -1).astype(bool)
        theta_t = np.asarray(paths.theta_t.numpy()).reshape(num_rx, -1)
        phi_t = np.asarray(paths.phi_t.numpy()).reshape(num_rx, -1)
        theta_r = np.asarray(paths.theta_r.numpy()).reshape(num_rx, -1)
        phi_r = np.asarray(paths.phi_r.numpy()).reshape(num_rx, -1)
        interactions = np.asarray(paths.interactions.numpy())
        self.trace_seconds.append(time.perf_counter() - start)
        self.trace_count += 1
        depth = (interactions.reshape(interactions.shape[0], num_rx, -1) != 0).sum(axis=0) \
            if interactions.size else np.zeros(a.shape, dtype=int)
        valid &= np.isfinite(tau) & (tau >= 0) & np.isfinite(a) & (a != 0)
        keep = np.any(valid, axis=0)  # drop paths invalid for every receiver
        valid, a, tau = valid[:, keep], a[:, keep], tau[:, keep]
        theta_t, phi_t, theta_r, phi_r, depth = (x[:, keep] for x in (theta_t, phi_t, theta_r, phi_r, depth))
        arrival = np.stack([np.sin(theta_r) * np.cos(phi_r), np.sin(theta_r) * np.sin(phi_r), np.cos(theta_r)], -1)
        return TracedPaths(
            rx_position=np.asarray(rx, dtype=np.float64),
            a=np.where(valid, a, 0).astype(np.complex64),
            tau=np.where(valid, tau, 0).astype(np.float32),
            sin_aod=np.where(valid, np.sin(theta_t) * np.cos(phi_t), 0).astype(np.float32),
            arrival=np.where(valid[..., None], arrival, 0).astype(np.float32),
            depth=depth.astype(np.uint8),
            valid=valid,
        )

    def _snapshot(self, rx_positions, obstacles, rx_ids) -> tuple[np.ndarray, TracedPaths]:
        rx = np.asarray(rx_positions, dtype=float).reshape(-1, 3).copy()
        check.finite_array("rx_positions", rx)
        obstacles = obstacles if obstacles is not None else Boxes.empty()
        rx_ids = np.arange(len(rx)) if rx_ids is None else np.asarray(rx_ids, dtype=int).reshape(-1)
        if len(rx_ids) != len(rx):
            raise ValueError(f"rx_ids must have length K={len(rx)}, got {len(rx_ids)}")
        # a receiver inside its own body is traced from just above the roof
        if len(obstacles) and len(rx):
            own = obstacles.owner[None, :] == rx_ids[:, None]
            inside = own & np.all((rx[:, None, :] >= obstacles.lower[None]) & (rx[:, None, :] <= obstacles.upper[None]), -1)
            roof = np.where(inside, obstacles.upper[None, :, 2] + ROOF_CLEARANCE_M, -np.inf).max(axis=1)
            rx[:, 2] = np.maximum(rx[:, 2], roof)
        self._ensure_loaded()
        rx_grid, rx_traced = _snap(rx, self.rx_quantum_m)
        centre_grid, centre = _snap(obstacles.centre, self.box_quantum_m)
        if self.box_quantum_m > 0:
            size_grid = np.maximum(np.round(obstacles.size / self.box_quantum_m), 1).astype(np.int64)
            size = size_grid * self.box_quantum_m
        else:
            size_grid, size = _snap(obstacles.size, 0.0)
        if len(rx) == 0:
            empty = np.zeros((0, 0))
            return rx, TracedPaths(np.zeros((0, 3)), empty.astype(np.complex64), empty.astype(np.float32),
                                   empty.astype(np.float32), np.zeros((0, 0, 3), np.float32),
                                   empty.astype(np.uint8), empty.astype(bool))
        box_grid = np.concatenate([obstacles.kind[:, None], centre_grid, size_grid], axis=1)
        key = self._cache.key(rx_grid, box_grid) if self._cache is not None else None
        traced = self._cache.load(key) if self._cache is not None else None
        if traced is None:
            order = np.lexsort(box_grid.T[::-1]) if len(box_grid) else np.zeros(0, dtype=int)
            traced = self._trace(rx_traced, centre[order], size[order], obstacles.kind[order])
            if self._cache is not None:
                self._cache.store(key, traced)
        return rx, traced

    # ------------------------------------------------------------ public API
    @property
    def cache(self) -> RTCache | None:
        """The disk cache (None when disabled); loads Sionna on first use."""
        self._ensure_loaded()
        return self._cache

    def paths(self, rx_positions: np.ndarray, obstacles: Boxes | None = None,
              rx_ids: np.ndarray | None = None) -> RTPaths:
        """All ray-traced paths of a snapshot, extrapolated to the exact positions."""
        rx, traced = self._snapshot(rx_positions, obstacles, rx_ids)
        offset = rx - traced.rx_position  # (K, 3), within half a grid cell
        valid = traced.valid
        shorter = np.einsum("kpi,ki->kp", traced.arrival.astype(np.float64), offset)
        length = traced.tau.astype(np.float64) * SPEED_OF_LIGHT - shorter
        loss_db = self.oxygen_db_per_m * length - self.antenna_gain_dbi
        gain = traced.a.astype(np.complex128) * 10.0 ** (-loss_db / 20.0) \
            * np.exp(-2j * math.pi * length / self.wavelength)
        gain = np.where(valid, gain, 0)
        return RTPaths(gain, np.where(valid, traced.sin_aod.astype(np.float64), 0.0),
                       np.where(valid, length, 0.0), traced.depth.astype(int), valid)

    def channels(self, rx_positions: np.ndarray, obstacles: Boxes | None = None,
                 rx_ids: np.ndarray | None = None) -> np.ndarray:
        """Channel vectors (K, Nt) complex; see :class:`v2xsim.channel.base.ChannelModel`."""
        paths = self.paths(rx_positions, obstacles, rx_ids)
        response = ula_response(self.num_antennas, paths.sin_aod)  # (K, P, Nt)
        return np.einsum("kp,kpn->kn", paths.gain, response)

    # ------------------------------------------------------------ sensors
    def scene_sensor(self) -> "SionnaRTChannel":
        """This backend renders the cars' camera and LiDAR from its own scene (:meth:`sense`)."""
        return self

    def sense(self, layout: RoadLayout, snapshot: Snapshot, rng: np.random.Generator, *,
              config=None) -> dict[str, np.ndarray]:
        """GPS, camera and LiDAR of K vehicles, seen in the ray-tracing scene.

        Same keys, shapes, dtypes, poses and value conventions as
        :func:`v2xsim.sensing.sense`, and the same use of ``rng`` (GPS error, then per
        vehicle the LiDAR range error and dropout of every ray), but the sensors see the
        3-D scene the channels are traced in: buildings, lamp posts, the ground and the
        obstacle boxes as moved meshes (at their exact, unquantised positions).

        - GPS: :func:`v2xsim.sensing.gps_reading` of the positions.
        - Camera: one Mitsuba ray cast (``scene.mi_scene.ray_intersect``) for the pixels of
          all K cameras, ``camera_spp`` rays per pixel averaged. A hit is coloured by what
          was hit (obstacle classes, road paint, sidewalk and verge, RSU and sky in the
          palette of :mod:`v2xsim.sensing.camera`; facades, lamp posts and user-scene
          shapes by their material) and shaded by the surface normal like the geometric
          camera's box faces. The RSU pole and head are not radio geometry (the array is a
          point source), so they are drawn as in :mod:`v2xsim.sensing.camera` (visual only).
        - LiDAR: the scan of :mod:`v2xsim.sensing.lidar` (``lidar_num_azimuth`` x 16
          channels, -15..15 deg, 100 m) for all K vehicles in one Mitsuba ray cast; hit
          points (range error, dropout) binned into the grid of
          :func:`v2xsim.sensing.lidar.grid_bounds`. Points on obstacle boxes (cars,
          trucks, pedestrians, parked cars: the blockers the world moves) are 1; ground,
          buildings and lamp posts are static background filtered out as a LiDAR
          pipeline's ground / map removal would (they cannot stand between the RSU and a
          lane), unless ``lidar_static`` marks static hits above 0.2 m too. RSU cell -1,
          ego cell -2.

        Own body: camera and LiDAR sit ``config.mount_height_m`` above the antenna, as in
        the geometric sensors; a ray that hits its own vehicle's box (``owner == id``)
        passes through it (restarts 1 mm behind each hit), so the own body is invisible
        to its own sensors and returns no points, while other vehicles still see it.

        Args:
            layout: the road (must be this backend's own layout).
            snapshot: the vehicles (ids, antenna positions [m]) and every box.
            rng: source of GPS error, LiDAR range error and dropout.
            config: :class:`v2xsim.sensing.SensorConfig` (default: its defaults).

        Returns:
            ``{"gps": (K, 2) float32 [m], "image": (K, H, W, 3) uint8,
            "lidar": (K, G, G, G) int8}``.
        """
        from v2xsim.sensing import SensorConfig

        if layout != self.layout:
            raise ValueError("layout: a Sionna RT scene senses only the road it was built for")
        positions, ids, obstacles = snapshot.positions, snapshot.ids, snapshot.obstacles
        config = SensorConfig() if config is None else config
        if not isinstance(config, SensorConfig):
            raise ValueError(f"config must be a SensorConfig, got {type(config).__name__}")
        if not isinstance(obstacles, Boxes):
            raise ValueError(f"obstacles must be Boxes, got {type(obstacles).__name__}")
        positions = np.asarray(positions, dtype=float)
        if positions.size == 0:
            positions = positions.reshape(0, 3)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise ValueError(f"positions must have shape (K, 3), got {positions.shape}")
        check.finite_array("positions", positions)
        ids = np.asarray(ids).reshape(-1).astype(np.int64)
        if len(ids) != len(positions):
            raise ValueError(f"ids must have length K = {len(positions)}, got {len(ids)}")
        num, grid = len(positions), config.lidar_grid
        gps = gps_reading(positions, rng, noise_std_m=config.gps_noise_m)
        if num == 0:
            return {"gps": gps,
                    "image": np.zeros((0, config.camera_height, config.camera_width, 3), dtype=np.uint8),
                    "lidar": np.zeros((0, grid, grid, grid), dtype=np.int8)}
        self._ensure_loaded()
        started = time.perf_counter()
        slot = self._place_boxes(obstacles.centre, obstacles.size, obstacles.kind)
        table = self._shape_table()
        own = self._own_shapes(table, obstacles, slot, ids)
        sensor = positions + np.array([0.0, 0.0, config.mount_height_m])
        placed = time.perf_counter()
        lidar = self._lidar(table, sensor, positions, own, rng, config)
        scanned = time.perf_counter()
        image = self._camera(table, sensor, own, config)
        self.sense_seconds = {"place": placed - started, "lidar": scanned - placed,
                              "camera": time.perf_counter() - scanned}
        return {"gps": gps, "image": image, "lidar": lidar}

    def _shape_table(self) -> _ShapeTable:
        if self._shapes is None:
            _, mi, dr = self._sionna
            prefixes = {pool_shape_id(name, 0)[:-3]: code for code, name in enumerate(OBSTACLE_KINDS)}
            rows = []
            for shape in self._scene.mi_scene.shapes():
                reg = int(dr.reinterpret_array(mi.UInt32, mi.ShapePtr(shape))[0])
                name = shape.id()
                kind = next((code for prefix, code in prefixes.items() if name.startswith(prefix)), -1)
                rows.append((reg, name, kind, _shape_colour(name, shape, kind)))
            rows.sort()
            self._shapes = _ShapeTable(
                reg=np.array([r[0] for r in rows], dtype=np.uint32),
                colour=np.array([r[3] for r in rows] + [SKY_COLOUR], dtype=float),
                kind=np.array([r[2] for r in rows] + [-1], dtype=int),
                static=np.array([r[2] < 0 for r in rows] + [False]),
                by_name={r[1]: r[0] for r in rows})
        return self._shapes

    @staticmethod
    def _own_shapes(table: _ShapeTable, obstacles: Boxes, slot: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Registry ids (K, M) of each vehicle's own boxes, padded with an id no shape has."""
        mine = [np.flatnonzero(obstacles.owner == vehicle) for vehicle in ids]
        own = np.full((len(ids), max([1] + [len(m) for m in mine])), _NO_SHAPE, dtype=np.uint32)
        for k, boxes in enumerate(mine):
            for j, b in enumerate(boxes):
                own[k, j] = table.by_name[pool_shape_id(OBSTACLE_KINDS[obstacles.kind[b]], int(slot[b]))]
        return own

    def _cast(self, origins: np.ndarray, directions: np.ndarray, own: np.ndarray, *, normals: bool
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """First hits of the same R directions from each of K origins, in one ray cast.

        Rays that hit one of their vehicle's own shapes (``own[k]``) continue behind it.

        Returns:
            ``(t, reg, normal)``: (K, R) float32 distance [m] (inf = no hit), (K, R)
            uint32 registry id of the shape hit (0 = none), (K, R, 3) float32 geometric
            normal at the hit (only with ``normals``, else None).
        """
        _, mi, dr = self._sionna
        scene = self._scene.mi_scene
        num, count = len(origins), len(directions)
        vehicle = np.repeat(np.arange(num), count)
        start = np.repeat(np.asarray(origins, dtype=np.float32), count, axis=0)
        heading = np.tile(np.asarray(directions, dtype=np.float32), (num, 1))
        distance = np.full(num * count, np.inf, dtype=np.float32)
        shape = np.zeros(num * count, dtype=np.uint32)
        normal = np.zeros((num * count, 3), dtype=np.float32) if normals else None
        travelled = np.zeros(num * count, dtype=np.float32)
        todo = np.arange(num * count)
        for _ in range(MAX_SKIPS + 1):
            ray = mi.Ray3f(mi.Point3f(*(mi.Float(np.ascontiguousarray(start[todo, a])) for a in range(3))),
                           mi.Vector3f(*(mi.Float(np.ascontiguousarray(heading[todo, a])) for a in range(3))))
            if normals:
                hit = scene.ray_intersect(ray, mi.RayFlags.Minimal, True)
            else:
                hit = scene.ray_intersect_preliminary(ray, True)
            t = np.asarray(hit.t.numpy(), dtype=np.float32)
            reg = np.asarray(dr.reinterpret_array(mi.UInt32, hit.shape).numpy(), dtype=np.uint32)
            found = np.isfinite(t)
            through = found & np.any(reg[:, None] == own[vehicle[todo]], axis=1)
            done, final = todo[~through], found[~through]
            distance[done] = np.where(final, travelled[done] + t[~through], np.inf)
            shape[done] = np.where(final, reg[~through], 0)
            if normals:
                normal[done] = np.asarray(hit.n.numpy(), dtype=np.float32).reshape(3, -1).T[~through]
            todo = todo[through]
            if len(todo) == 0:
                break
            step = t[through] + np.float32(SKIP_STEP_M)
            start[todo] += heading[todo] * step[:, None]
            travelled[todo] += step
        # rays still inside their own body after MAX_SKIPS stay misses
        return (distance.reshape(num, count), shape.reshape(num, count),
                normal.reshape(num, count, 3) if normals else None)

    def _lidar(self, table: _ShapeTable, sensor: np.ndarray, positions: np.ndarray, own: np.ndarray,
               rng: np.random.Generator, config) -> np.ndarray:
        directions, _ = _scan_pattern(config.lidar_num_azimuth, LIDAR_CHANNELS, *LIDAR_ELEVATION_DEG)
        t, reg, _ = self._cast(sensor, directions, own, normals=False)
        rows = table.rows(reg)
        hit = np.isfinite(t) & (t <= LIDAR_RANGE_M)
        marked = table.kind[rows] >= 0
        if self.lidar_static:
            height = sensor[:, None, 2] + np.where(hit, t, 0.0) * directions[None, :, 2]
            marked |= table.static[rows] & (height > GROUND_CUT_M)
        grid = config.lidar_grid
        out = np.zeros((len(sensor), grid, grid, grid), dtype=np.int8)
        rsu = self.layout.rsu_position
        for k in range(len(sensor)):
            # drawn for every ray, hit or not, as the geometric LiDAR does
            noise = rng.normal(0.0, 1.0, len(directions)) * config.lidar_range_noise_m
            kept = rng.random(len(directions)) >= config.lidar_dropout
            use = hit[k] & marked[k] & kept
            points = sensor[k] + directions[use] * np.maximum(t[k, use] + noise[use], 0.0)[:, None]
            lower, upper = grid_bounds(self.layout, positions[k], margin_m=config.lidar_margin_m,
                                       min_span_m=LIDAR_MIN_SPAN_M, headroom_m=LIDAR_HEADROOM_M)

            def cell(p: np.ndarray) -> np.ndarray:
                return np.floor((p - lower) / (upper - lower) * grid).astype(np.int64)

            cells = cell(points)
            cells = cells[np.all((cells >= 0) & (cells < grid), axis=1)]
            out[k, cells[:, 0], cells[:, 1], cells[:, 2]] = OBSTACLE
            out[(k, *np.clip(cell(rsu), 0, grid - 1))] = BASE_STATION
            out[(k, *np.clip(cell(positions[k]), 0, grid - 1))] = RECEIVER
        return out

    def _camera(self, table: _ShapeTable, sensor: np.ndarray, own: np.ndarray, config) -> np.ndarray:
        height, width, spp = config.camera_height, config.camera_width, self.camera_spp
        rays = camera_rays(width, height, float(config.camera_fov_deg), float(config.camera_yaw_deg),
                           float(config.camera_pitch_deg), spp).reshape(-1, 3)
        t, reg, normal = self._cast(sensor, rays, own, normals=True)
        rows = table.rows(reg)
        sky = ~np.isfinite(t) | (t > CAMERA_RANGE_M)
        rgb = table.colour[rows] * _face_shade(normal)[..., None]
        point = sensor[:, None, :] + np.where(sky, 0.0, t)[..., None] * rays[None]
        # ground: upward faces of scene geometry at z ~ 0 carry the road paint
        ground = ~sky & table.static[rows] & (normal[..., 2] > 0.9) & (np.abs(point[..., 2]) < 0.05)
        rgb[ground] = _road_paint(self.layout, point[ground][:, 0], point[ground][:, 1])
        rgb[sky] = SKY_COLOUR
        depth = np.where(sky, np.inf, t)
        rsu_lower, rsu_upper = rsu_boxes(self.layout)
        for k in range(len(sensor)):
            t_rsu, _, face = first_hits(sensor[k], rays, rsu_lower, rsu_upper, t_max=CAMERA_RANGE_M)
            front = t_rsu < depth[k]
            if front.any():
                rgb[k, front] = np.asarray(RSU_COLOUR, dtype=float) * np.asarray(FACE_SHADE)[face[front], None]
        image = rgb.reshape(len(sensor), spp, height, width, 3).mean(axis=1)
        return np.clip(np.rint(image), 0, 255).astype(np.uint8)
