"""Path tracing of snapshots, through the disk cache, and extrapolation to exact positions.

Per snapshot, one ``PathSolver`` call traces all K receivers (:class:`PathTracer`).
Receivers are traced at positions snapped to a ``rx_quantum_m`` grid and boxes at
centres / sizes snapped to ``box_quantum_m``. The traced paths (not the channels) are
cached on disk (:mod:`v2xsim.channel.sionna_rt.cache`) under the quantised snapshot, and
:func:`extrapolate` moves them to the true position ``r = r_q + d`` by the plane-wave
(Doppler) phase shift of each path: its length becomes ``L_p - u_p . d`` with ``u_p`` the
unit arrival direction. The error of that first-order length is at most
``|d|^2 / (2 D_p)`` with ``D_p`` the length of the path's last leg; with the default 2 cm
grid (``|d| <= 1.73 cm``, 3.5 wavelengths at 60 GHz) and ``D_p >= 1.5 m`` it stays below
1e-4 m (0.13 rad of phase), and amplitudes change by less than ``|d| / D_p`` (about 1 %).
Blockage changes only from one grid cell to the next. The result is the same whether the
snapshot came from the cache or from a new trace, so the cache never changes results;
``rx_quantum_m=0`` traces exact positions.

A vehicle's own body is part of the scene, so it cannot be excluded from its own paths
one receiver at a time: a receiver whose antenna lies inside its own box
(``owner == rx_id``) is traced from :data:`ROOF_CLEARANCE_M` above the roof, and the own
body may still shadow a ground bounce, as a real car body does.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import numpy as np

from v2xsim import checks as check
from v2xsim.channel.base import SPEED_OF_LIGHT
from v2xsim.channel.sionna_rt.cache import RTCache, TracedPaths
from v2xsim.channel.sionna_rt.scene import RTScene
from v2xsim.geometry import Boxes

#: height above its own roof at which a receiver inside its own box is traced [m]
ROOF_CLEARANCE_M = 0.05


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


class PathTracer:
    """Traces snapshots in an :class:`~v2xsim.channel.sionna_rt.scene.RTScene` with one
    ``PathSolver``, behind the disk cache.

    Args:
        scene: the scene to trace in (the RSU is its transmitter).
        seed: path solver seed.
        samples_per_src: rays launched from the RSU per trace.
        max_depth: maximum number of interactions per path (0 = line of sight only).
        max_num_paths_per_src: cap on the paths kept per trace.
        reflection, refraction, diffraction: specular reflections, transmission through
            (thin) objects, first-order edge diffraction.
        rx_quantum_m: receiver grid step [m] (0 = exact).
        box_quantum_m: obstacle centre / size grid step [m] (0 = exact).
        cache_dir: disk cache directory (None: no cache).

    Attributes:
        trace_count: number of path-solver calls.
        trace_seconds: their durations [s].
    """

    def __init__(self, scene: RTScene, *, seed: int, samples_per_src: int, max_depth: int,
                 max_num_paths_per_src: int, reflection: bool, refraction: bool, diffraction: bool,
                 rx_quantum_m: float, box_quantum_m: float, cache_dir: str | os.PathLike | None) -> None:
        self.scene = scene
        self.seed = seed
        self.samples_per_src = samples_per_src
        self.max_depth = max_depth
        self.max_num_paths_per_src = max_num_paths_per_src
        self.reflection, self.refraction, self.diffraction = reflection, refraction, diffraction
        self.rx_quantum_m = rx_quantum_m
        self.box_quantum_m = box_quantum_m
        self.cache_dir = cache_dir
        self.trace_count = 0
        self.trace_seconds: list[float] = []
        self._cache: RTCache | None = None
        self._solver = None

    def _ready(self) -> None:
        """Load the scene, open the cache and create the solver, once."""
        if self._solver is not None:
            return
        self.scene.load()
        rt, mi, _ = self.scene.sionna
        # everything a trace depends on except the snapshot: names the cache directory
        config = {
            "backend": "sionna_rt", "sionna_rt": getattr(rt, "__version__", "?"), "variant": mi.variant(),
            "scene": self.scene.name, "scene_digest": self.scene.digest, "box_materials": self.scene.box_materials,
            "carrier_hz": self.scene.carrier_hz, "rsu": self.scene.layout.rsu_position.tolist(),
            "max_depth": self.max_depth, "samples_per_src": self.samples_per_src,
            "max_num_paths_per_src": self.max_num_paths_per_src, "reflection": self.reflection,
            "refraction": self.refraction, "diffraction": self.diffraction, "seed": self.seed,
            "rx_quantum_m": self.rx_quantum_m, "box_quantum_m": self.box_quantum_m,
            "roof_clearance_m": ROOF_CLEARANCE_M,
        }
        self._cache = RTCache(self.cache_dir, config) if self.cache_dir is not None else None
        self._solver = rt.PathSolver(deterministic=True)

    @property
    def cache(self) -> RTCache | None:
        """The disk cache (None when disabled); loads Sionna on first use."""
        self._ready()
        return self._cache

    def snapshot(self, rx_positions: np.ndarray, obstacles: Boxes | None, rx_ids: np.ndarray | None
                 ) -> tuple[np.ndarray, TracedPaths]:
        """The receiver positions (K, 3) [m] (raised out of their own bodies) and the paths
        traced at their grid points, from the cache when there."""
        rx = np.asarray(rx_positions, dtype=float).reshape(-1, 3).copy()
        check.finite_array("rx_positions", rx)
        obstacles = obstacles if obstacles is not None else Boxes.empty()
        rx_ids = np.arange(len(rx)) if rx_ids is None else np.asarray(rx_ids, dtype=int).reshape(-1)
        if len(rx_ids) != len(rx):
            raise ValueError(f"rx_ids must have length K={len(rx)}, got {len(rx_ids)}")
        # a receiver inside its own body is traced from just above the roof
        if len(obstacles) and len(rx):
            own = obstacles.owner[None, :] == rx_ids[:, None]
            within = (rx[:, None, :] >= obstacles.lower[None]) & (rx[:, None, :] <= obstacles.upper[None])
            inside = own & np.all(within, -1)
            roof = np.where(inside, obstacles.upper[None, :, 2] + ROOF_CLEARANCE_M, -np.inf).max(axis=1)
            rx[:, 2] = np.maximum(rx[:, 2], roof)
        self._ready()
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

    def _trace(self, rx: np.ndarray, centre: np.ndarray, size: np.ndarray, kind: np.ndarray) -> TracedPaths:
        """One PathSolver call for all receivers of a snapshot."""
        self.scene.place_boxes(centre, size, kind)
        self.scene.set_receivers(rx)
        start = time.perf_counter()
        paths = self._solver(
            self.scene.sionna_scene, max_depth=self.max_depth, max_num_paths_per_src=self.max_num_paths_per_src,
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


def extrapolate(traced: TracedPaths, rx: np.ndarray, *, wavelength: float, oxygen_db_per_m: float,
                antenna_gain_dbi: float) -> RTPaths:
    """Paths traced at grid points moved to the exact receiver positions ``rx`` (K, 3) [m]
    (plane-wave phase shift), with carrier phase, oxygen absorption [dB/m] and antenna
    gain [dBi] applied; ``wavelength`` [m]."""
    offset = rx - traced.rx_position  # (K, 3), within half a grid cell
    valid = traced.valid
    shorter = np.einsum("kpi,ki->kp", traced.arrival.astype(np.float64), offset)
    length = traced.tau.astype(np.float64) * SPEED_OF_LIGHT - shorter
    loss_db = oxygen_db_per_m * length - antenna_gain_dbi
    gain = traced.a.astype(np.complex128) * 10.0 ** (-loss_db / 20.0) \
        * np.exp(-2j * math.pi * length / wavelength)
    gain = np.where(valid, gain, 0)
    return RTPaths(gain, np.where(valid, traced.sin_aod.astype(np.float64), 0.0),
                   np.where(valid, length, 0.0), traced.depth.astype(int), valid)
