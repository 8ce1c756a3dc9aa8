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
