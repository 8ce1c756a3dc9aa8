"""Result-table cells: one formatting rule for every CSV v2xsim writes."""

from __future__ import annotations

import math
from typing import Any


def table_cell(value: Any, *, digits: int) -> Any:
    """A CSV cell: ``None`` (a statistic that does not exist, e.g. a CI from one seed) ->
    empty; floats with ``digits`` significant digits; a non-finite float is refused
    (ValueError: no NaN reaches a result table); anything else unchanged."""
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"refusing to write a non-finite value ({value}) to a result table")
        return f"{value:.{digits}g}"
    return value


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for numpy scalars, tuples and sets (anything else is
    refused: a TypeError naming its type)."""
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, (tuple, set)):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
