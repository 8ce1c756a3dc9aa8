"""One switch for progress output of long jobs (training, data generation).

Library functions take ``quiet=...``; plug-ins called without it (a scheme's ``prepare``)
follow :func:`quiet_mode`, which the CLI's ``--quiet`` turns on for the whole run.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

_silenced = 0


def silenced() -> bool:
    """True while inside :func:`quiet_mode`."""
    return _silenced > 0


@contextmanager
def quiet_mode(enabled: bool = True) -> Iterator[None]:
    """Silence progress output of everything called inside (when ``enabled``)."""
    global _silenced
    _silenced += int(enabled)
    try:
        yield
    finally:
        _silenced -= int(enabled)
