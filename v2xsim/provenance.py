"""What produced a result: the v2xsim version and git commit (when run from a checkout),
package versions and the trained models used, so a number can be traced back."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from v2xsim import __version__


def provenance(models: dict[str, Any] | None = None) -> dict[str, Any]:
    """What produced a result: package versions, the git commit of a checkout, models."""
    import importlib.metadata as metadata

    versions = {}
    for package in ("torch", "simpy", "numpy", "scipy", "sionna-rt", "flwr"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"v2xsim": __version__, "git": _git_state(), "python": platform.python_version(),
            "packages": versions, "models": models or {}}


def _git_state() -> dict[str, Any] | None:
    """Commit (and whether the tree has uncommitted changes) when v2xsim runs from a checkout."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "uncommitted_changes": dirty}
