"""Where v2xsim keeps what it computes once (trained models, generated data, traced
paths), and the one way it names cached things: a hash of their configuration.

The cache root is ``$V2XSIM_CACHE`` when set, else ``~/.cache/v2xsim``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

#: hex digits of a configuration hash used in file and folder names
HASH_LENGTH = 16


def cache_dir(*parts: str) -> Path:
    """The cache root (or a sub-folder of it); not created here."""
    root = os.environ.get("V2XSIM_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "v2xsim"
    return base.joinpath(*parts)


def _plain(value: Any) -> Any:
    """JSON fallback: tuples and other sequences as lists, paths and the rest as text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (os.PathLike,)):
        return os.fspath(value)
    try:
        return list(value)
    except TypeError:
        return str(value)


def config_json(payload: Any) -> str:
    """Canonical JSON text of a configuration (keys sorted)."""
    return json.dumps(payload, sort_keys=True, default=_plain)


def config_hash(payload: Any, *, length: int | None = HASH_LENGTH) -> str:
    """SHA-256 hex digest of :func:`config_json` (the first ``length`` digits; None: all)."""
    digest = hashlib.sha256(config_json(payload).encode()).hexdigest()
    return digest if length is None else digest[:length]
