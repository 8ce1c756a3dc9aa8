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

Scene: ``"street_canyon"`` or ``"empty"`` (built in, see :mod:`v2xsim.channel.scenes`)
or the path of a Mitsuba XML file in the world's coordinates (x along the road, z up
[m]). Scenes are loaded with ``merge_shapes=False``; ITU materials without a fit at the
carrier are replaced automatically (:mod:`v2xsim.channel.scenes.materials`; the
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
traced paths (not the channels) are cached on disk (:mod:`v2xsim.channel.rt_cache`) under
the quantised snapshot, and the channel at the true position ``r = r_q + d`` is
extrapolated from the paths at ``r_q`` by the plane-wave (Doppler) phase shift of each
path: its length becomes ``L_p - u_p . d`` with ``u_p`` the unit arrival direction. The
error of that first-order length is at most ``|d|^2 / (2 D_p)`` with ``D_p`` the length of
the path's last leg; with the default 2 cm grid (``|d| <= 1.73 cm``, 3.5 wavelengths at
60 GHz) and ``D_p >= 1.5 m`` it stays below 1e-4 m (0.13 rad of phase), and amplitudes
change by less than ``|d| / D_p`` (about 1 %). Blockage changes only from one grid cell to
the next. The result is the same whether the snapshot came from the cache or from a new
trace, so the cache never changes results; ``rx_quantum_m=0`` traces exact positions.

Set-up: ``pip install 'v2xsim[rt]'``. On CPU, Dr.Jit needs LLVM >= 16 (Debian's LLVM 15
fails with "Cannot select fmaximum"): when ``DRJIT_LIBLLVM_PATH`` is unset, a
``libLLVM.so.19.1`` (``apt-get install libllvm19``) or another LLVM 16-20 in the usual
library directories is used. With a CUDA GPU, Sionna's CUDA variant is used.
"""

from __future__ import annotations

import copy
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
from v2xsim.channel.base import SPEED_OF_LIGHT
from v2xsim.channel.codebook import DEFAULT_NUM_ANTENNAS, ula_response
from v2xsim.channel.rt_cache import RTCache, TracedPaths, default_cache_dir
from v2xsim.channel.scenes import (
    BUILTIN_SCENES,
    DEFAULT_BOX_MATERIALS,
    adapt_itu_materials,
    add_box_pool,
    builtin_scene_xml,
    parked_centre,
    pool_shape_id,
)
from v2xsim.channel.scenes.builtin import PARK_SIZE_M
from v2xsim.channel.scenes.materials import itu_table
from v2xsim.errors import ConfigError
from v2xsim.registry import CHANNEL
from v2xsim.world import OBSTACLE_KINDS, Boxes, RoadLayout

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


# --------------------------------------------------------------------------- backend
@CHANNEL.register("sionna_rt")
class SionnaRTChannel:
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
            use :data:`~v2xsim.channel.scenes.DEFAULT_BOX_MATERIALS`.
        rx_quantum_m: receiver grid step for tracing / caching [m] (0 = exact).
        box_quantum_m: obstacle centre / size grid step [m] (0 = exact).
        cache: use the disk cache of traced paths.
        cache_dir: cache directory (default ``$V2XSIM_CACHE/rt`` or ``~/.cache/v2xsim/rt``).
        pool_sizes: initial pool cubes per obstacle class.
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
        self._receivers: list = []
        # vertices of a cube with unit edges centred at the origin, in Mitsuba's order
        unit = mi.load_dict({"type": "cube"})
        self._unit_cube = np.asarray(mi.traverse(unit)["vertex_positions"], dtype=np.float64).reshape(-1, 3) / 2.0
        # current placement of every pool cube: (centre, size) rows, NaN = unknown
        self._placed = {kind: np.full((self._pool_sizes[kind], 6), np.nan) for kind in OBSTACLE_KINDS}

    # ------------------------------------------------------------ snapshot
    def _place_boxes(self, centre: np.ndarray, size: np.ndarray, kind: np.ndarray) -> None:
        """Move / scale the pool cubes to the given boxes; park the unused ones."""
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
