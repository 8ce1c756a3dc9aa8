"""Disk cache of ray-traced paths, reused across runs, sweeps and processes.

An entry holds the per-path results of one trace (one snapshot: all receivers against
one placement of the obstacle boxes), stored as one ``.npz`` file::

    <cache dir>/<config digest[:16]>/config.json        what the digest stands for
    <cache dir>/<config digest[:16]>/<key[:2]>/<key>.npz

The config digest covers everything that changes a trace except the positions (scene
file / generator, materials, carrier, solver settings, RSU position, quantisation steps,
Sionna version); the key adds the quantised receiver positions (in order) and the
quantised obstacle boxes (as a set). The default directory is ``$V2XSIM_CACHE/rt``, else
``~/.cache/v2xsim/rt``. Writes are atomic (temporary file + rename), so parallel sweep
workers can share a directory; an unreadable entry counts as a miss and is rewritten.
A hit returns exactly the arrays that were stored.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from v2xsim.cache import cache_dir, config_hash, config_json

#: bump when the stored arrays change meaning
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``rt`` in the v2xsim cache (``$V2XSIM_CACHE/rt``, else ``~/.cache/v2xsim/rt``)."""
    return cache_dir("rt")


@dataclass(frozen=True)
class TracedPaths:
    """Per-path results of one trace: K receivers x P paths (padded with invalid paths).

    Attributes:
        rx_position: (K, 3) receiver positions the paths were traced to [m].
        a: (K, P) complex64 passband path coefficients (no carrier phase), 0 where invalid.
        tau: (K, P) float32 path delays [s].
        sin_aod: (K, P) float32 x component of the unit departure direction at the RSU.
        arrival: (K, P, 3) float32 unit vectors from the receiver towards where each path
            arrives from.
        depth: (K, P) uint8 number of interactions (0 = line of sight).
        valid: (K, P) bool.
    """

    rx_position: np.ndarray
    a: np.ndarray
    tau: np.ndarray
    sin_aod: np.ndarray
    arrival: np.ndarray
    depth: np.ndarray
    valid: np.ndarray

    @property
    def num_paths(self) -> int:
        return int(self.a.shape[1])

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def digest(obj) -> str:
    """Full SHA-256 hex digest of a configuration (:func:`v2xsim.cache.config_hash`)."""
    return config_hash(obj, length=None)


def snapshot_key(config_digest: str, rx_grid: np.ndarray, box_grid: np.ndarray) -> str:
    """Key of one snapshot from integer grid coordinates.

    Args:
        rx_grid: (K, 3) int64 quantised receiver positions, in receiver order.
        box_grid: (B, 7) int64 rows (kind, quantised centre, quantised size), any order.
    """
    rx_grid = np.ascontiguousarray(rx_grid, dtype=np.int64).reshape(-1, 3)
    box_grid = np.ascontiguousarray(box_grid, dtype=np.int64).reshape(-1, 7)
    if len(box_grid):
        box_grid = box_grid[np.lexsort(box_grid.T[::-1])]
    h = hashlib.sha256(config_digest.encode())
    h.update(np.int64(len(rx_grid)).tobytes())
    h.update(rx_grid.tobytes())
    h.update(np.int64(len(box_grid)).tobytes())
    h.update(np.ascontiguousarray(box_grid).tobytes())
    return h.hexdigest()


class RTCache:
    """Directory of traced snapshots for one configuration.

    Args:
        directory: cache root (see :func:`default_cache_dir`).
        config: JSON-serialisable description of the configuration; its digest names
            the sub-directory.
    """

    def __init__(self, directory: str | os.PathLike | None, config: dict) -> None:
        self.root = Path(directory).expanduser() if directory is not None else default_cache_dir()
        self.config_digest = digest({"format": CACHE_FORMAT, **config})
        self.directory = self.root / self.config_digest[:16]
        self.hits = 0
        self.misses = 0
        self._config = config

    def key(self, rx_grid: np.ndarray, box_grid: np.ndarray) -> str:
        return snapshot_key(self.config_digest, rx_grid, box_grid)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.npz"

    def load(self, key: str) -> TracedPaths | None:
        """The stored entry ``key``, or None (a miss)."""
        path = self._path(key)
        try:
            with np.load(path, allow_pickle=False) as data:
                entry = TracedPaths(**{f.name: data[f.name] for f in fields(TracedPaths)})
        except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def store(self, key: str, entry: TracedPaths) -> None:
        """Write entry ``key`` atomically (a concurrent writer of the same key is harmless)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        info = self.directory / "config.json"
        if not info.exists():
            self._write_atomic(info, config_json({"format": CACHE_FORMAT, **self._config}).encode())
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **entry.arrays())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @staticmethod
    def _write_atomic(path: Path, payload: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def __len__(self) -> int:
        if not self.directory.is_dir():
            return 0
        return sum(1 for _ in self.directory.glob("*/*.npz"))

    def clear(self) -> None:
        """Remove every entry of this configuration."""
        if self.directory.is_dir():
            for path in self.directory.glob("*/*.npz"):
                path.unlink(missing_ok=True)
