"""The model store: trained models (and the data sets they were trained on) kept on disk
under a hash of their configuration, and the one resume mechanism every training uses.

A training asks the store for a :class:`Checkpoint` named by its kind and configuration
hash. A finished checkpoint is loaded instead of training; a partial one (written every
few steps or epochs) lets a killed training resume where it stopped. Writes are atomic
(temporary file + rename), so parallel processes may share a store.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from v2xsim.cache import cache_dir


def _atomic_torch_save(payload: dict[str, Any], path: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _torch_load(path: Path) -> dict[str, Any]:
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


def file_digest(path: Path) -> str:
    """SHA-256 (first 16 hex digits) of a file's bytes: the identity of trained weights."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Checkpoint:
    """The final and partial checkpoint files of one trained model.

    Attributes:
        final: the finished model (``{"model": state_dict, ...}``).
        partial: the state of an interrupted training (model, optimiser, generator, step).
    """

    final: Path
    partial: Path
    #: the store's record of the models used (name -> content hash), updated on use
    used: dict[str, str] = field(default_factory=dict, compare=False)

    def finished(self) -> dict[str, Any] | None:
        """The finished checkpoint's contents, or None when there is none."""
        if not self.final.exists():
            return None
        self.used[self.final.stem] = file_digest(self.final)
        return _torch_load(self.final)

    def resume(self) -> dict[str, Any] | None:
        """The partial training state to resume from, or None."""
        return _torch_load(self.partial) if self.partial.exists() else None

    def save_partial(self, state: dict[str, Any]) -> None:
        _atomic_torch_save(state, self.partial)

    def save_progress(self, *, model, optimizer, generator, scheduler=None, **counters: int) -> None:
        """Save a training's state (model, optimiser, random generator, optional scheduler,
        and counters such as ``step`` or ``epoch``) as the partial checkpoint."""
        self.save_partial({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "scheduler": None if scheduler is None else scheduler.state_dict(),
                           "generator": generator.get_state(), **counters})

    def restore_progress(self, *, model, optimizer, generator, scheduler=None) -> dict[str, Any]:
        """Load a saved training state into the given objects (when there is one) and
        return its counters (``{}`` for a fresh start). The continued training is then
        bit-identical to one that was never interrupted."""
        state = self.resume()
        if state is None:
            return {}
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        return {key: value for key, value in state.items()
                if key not in ("model", "optimizer", "scheduler", "generator")}

    def save_final(self, state: dict[str, Any]) -> None:
        """Write the finished model and drop the partial state."""
        _atomic_torch_save(state, self.final)
        self.partial.unlink(missing_ok=True)
        self.used[self.final.stem] = file_digest(self.final)


class ModelStore:
    """Trained models and generated training data under one directory.

    Args:
        directory: where to keep them (default: the v2xsim cache, ``$V2XSIM_CACHE`` or
            ``~/.cache/v2xsim``).
        quiet: silence the progress output of trainings started through this store.
    """

    def __init__(self, directory: str | os.PathLike | None = None, *, quiet: bool = False) -> None:
        self.directory = Path(directory) if directory is not None else cache_dir()
        self.quiet = quiet
        #: models loaded or trained through this store: name -> hash of the file's bytes
        self.used: dict[str, str] = {}

    def checkpoint(self, kind: str, key: str) -> Checkpoint:
        """Checkpoint files of a model of ``kind`` (e.g. "rsu") with configuration hash ``key``."""
        return Checkpoint(self.directory / f"{kind}-{key}.pt", self.directory / f"{kind}-{key}.partial.pt",
                          self.used)

    def record(self, name: str, path: str | os.PathLike) -> None:
        """Note a model file used from outside the store (e.g. a given checkpoint)."""
        self.used[name] = file_digest(Path(path))

    def path(self, name: str) -> Path:
        """A file or folder of the store (e.g. a generated data set)."""
        return self.directory / name

    def __repr__(self) -> str:
        return f"ModelStore({str(self.directory)!r})"


def atomic_save(payload: dict[str, Any], path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file, then rename: a kill never leaves half a file."""
    _atomic_torch_save(payload, Path(path))


def load_saved(path: str | os.PathLike) -> dict[str, Any]:
    """What :func:`atomic_save` wrote (on the CPU)."""
    return _torch_load(Path(path))
