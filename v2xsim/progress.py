"""One switch for progress output of long jobs (training, data generation).

Library functions take ``quiet=...``; plug-ins called without it (a scheme's ``prepare``)
follow :func:`quiet_mode`, which the CLI's ``--quiet`` turns on for the whole run.
"""

from __future__ import annotations

import sys
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


#: seconds between progress lines when several jobs share the terminal (line mode)
LINE_MODE_EVERY_S = 10.0
_line_mode = 0


@contextmanager
def line_mode(enabled: bool = True) -> Iterator[None]:
    """Inside, :func:`report` writes whole lines at most every :data:`LINE_MODE_EVERY_S`
    (used when several processes report at once, e.g. trainings side by side, whose
    ``\\r`` updates would overwrite each other)."""
    global _line_mode
    _line_mode += int(enabled)
    try:
        yield
    finally:
        _line_mode -= int(enabled)


def report_every_s(default: float) -> float:
    """Seconds between two progress updates: ``default``, or longer in line mode."""
    return max(default, LINE_MODE_EVERY_S) if _line_mode else default


def report(text: str, *, last: bool = False) -> None:
    """Show one progress update on stderr: it overwrites the previous update on the same
    line (``last`` ends the line), or is a line of its own in :func:`line_mode`."""
    if _line_mode:
        print(text, file=sys.stderr, flush=True)
    else:
        print(f"\r{text}", end="\n" if last else "", file=sys.stderr, flush=True)
