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

The backend composes the scene (:mod:`.scene`: base scene, obstacle box pools), the path
tracer with its disk cache and the extrapolation to exact positions (:mod:`.tracing`),
and the camera / LiDAR rendered in the same scene (:mod:`.sensors`, returned by
:meth:`SionnaRTChannel.scene_sensor`). Differences from the geometric backend, by
construction: a vehicle's own body is part of the scene (see :mod:`.tracing` for how its
own receiver is treated), and box penetration is physical (a metal car body is opaque)
rather than a fixed dB value.

Set-up: ``pip install 'v2xsim[rt]'``; on CPU, an LLVM >= 16 (:mod:`.runtime`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from v2xsim import checks as check
from v2xsim.channel.base import SPEED_OF_LIGHT, ChannelModel
from v2xsim.channel.codebook import DEFAULT_NUM_ANTENNAS, ula_response
from v2xsim.channel.sionna_rt.cache import RTCache, default_cache_dir
from v2xsim.channel.sionna_rt.scene import DEFAULT_POOL_SIZES, RTScene
from v2xsim.channel.sionna_rt.scenes import DEFAULT_BOX_MATERIALS
from v2xsim.channel.sionna_rt.sensors import SceneSensors
from v2xsim.channel.sionna_rt.tracing import PathTracer, RTPaths, extrapolate
from v2xsim.errors import ConfigError
from v2xsim.geometry import OBSTACLE_KINDS, Boxes, RoadLayout
from v2xsim.registry import CHANNEL

#: oxygen absorption at 60 GHz, sea level [dB/km]
DEFAULT_OXYGEN_DB_PER_KM = 15.0


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
        camera_spp: rays per camera pixel of the scene sensors (1 = the pixel centre, as
            :mod:`v2xsim.sensing.camera`; more = anti-aliased, proportionally slower).
        lidar_static: LiDAR points on static scene geometry (buildings, lamp posts, any
            shape of a user scene) higher than 0.2 m count as obstacles too; by default
            only the world's obstacle boxes do (see :class:`.sensors.SceneSensors`).

    Attributes:
        rt_scene: the Sionna scene (:class:`~.scene.RTScene`).
        tracer: path tracing and cache (:class:`~.tracing.PathTracer`).
        sensors: camera and LiDAR in the scene (:class:`~.sensors.SceneSensors`).
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
        oxygen_db_per_km: float = DEFAULT_OXYGEN_DB_PER_KM,
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
        seed_value = int(seed)
        if seed_value < 0:
            raise ConfigError(f"seed must be >= 0, got {seed!r}")
        samples_per_src = check.positive_int("samples_per_src", samples_per_src)
        if int(max_depth) != max_depth or max_depth < 0:
            raise ConfigError(f"max_depth must be an integer >= 0, got {max_depth!r}")
        max_num_paths_per_src = check.positive_int("max_num_paths_per_src", max_num_paths_per_src)
        self.oxygen_db_per_m = check.non_negative("oxygen_db_per_km", oxygen_db_per_km) / 1000.0
        self.antenna_gain_dbi = check.finite("antenna_gain_dbi", antenna_gain_dbi)
        rx_quantum_m = check.non_negative("rx_quantum_m", rx_quantum_m)
        box_quantum_m = check.non_negative("box_quantum_m", box_quantum_m)
        materials = dict(DEFAULT_BOX_MATERIALS)
        for name, value in (box_materials or {}).items():
            if name not in materials:
                raise ConfigError(f"box_materials: unknown obstacle class {name!r}; valid: {', '.join(OBSTACLE_KINDS)}")
            materials[name] = str(value)
        pools = dict(DEFAULT_POOL_SIZES)
        for name, value in (pool_sizes or {}).items():
            if name not in pools:
                raise ConfigError(f"pool_sizes: unknown obstacle class {name!r}; valid: {', '.join(OBSTACLE_KINDS)}")
            pools[name] = check.positive_int(f"pool_sizes.{name}", value)
        camera_spp = check.positive_int("camera_spp", camera_spp)

        self.rt_scene = RTScene(layout=self.layout, carrier_hz=self.carrier_hz, seed=seed_value, scene=scene,
                                box_materials=materials, pool_sizes=pools)
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.tracer = PathTracer(
            self.rt_scene, seed=seed_value, samples_per_src=samples_per_src, max_depth=int(max_depth),
            max_num_paths_per_src=max_num_paths_per_src, reflection=bool(reflection),
            refraction=bool(refraction), diffraction=bool(diffraction), rx_quantum_m=rx_quantum_m,
            box_quantum_m=box_quantum_m, cache_dir=root if cache else None)
        self.sensors = SceneSensors(self.rt_scene, camera_spp=camera_spp, lidar_static=bool(lidar_static))

    # ------------------------------------------------------------ state
    @property
    def cache(self) -> RTCache | None:
        """The disk cache (None when disabled); loads Sionna on first use."""
        return self.tracer.cache

    @property
    def trace_count(self) -> int:
        """Number of path-solver calls so far."""
        return self.tracer.trace_count

    @property
    def trace_seconds(self) -> list[float]:
        """Durations of the path-solver calls [s]."""
        return self.tracer.trace_seconds

    @property
    def material_changes(self) -> dict[str, str]:
        """ITU materials replaced at the carrier, by bsdf id (filled when the scene loads)."""
        return self.rt_scene.material_changes

    # ------------------------------------------------------------ ChannelModel
    def paths(self, rx_positions: np.ndarray, obstacles: Boxes | None = None,
              rx_ids: np.ndarray | None = None) -> RTPaths:
        """All ray-traced paths of a snapshot, extrapolated to the exact positions [m]."""
        rx, traced = self.tracer.snapshot(rx_positions, obstacles, rx_ids)
        return extrapolate(traced, rx, wavelength=self.wavelength, oxygen_db_per_m=self.oxygen_db_per_m,
                           antenna_gain_dbi=self.antenna_gain_dbi)

    def channels(self, rx_positions: np.ndarray, obstacles: Boxes | None = None,
                 rx_ids: np.ndarray | None = None) -> np.ndarray:
        """Channel vectors (K, Nt) complex; see :class:`v2xsim.channel.base.ChannelModel`."""
        paths = self.paths(rx_positions, obstacles, rx_ids)
        response = ula_response(self.num_antennas, paths.sin_aod)  # (K, P, Nt)
        return np.einsum("kp,kpn->kn", paths.gain, response)

    def scene_sensor(self) -> SceneSensors:
        """The cars' camera and LiDAR, rendered in this backend's own scene."""
        return self.sensors
