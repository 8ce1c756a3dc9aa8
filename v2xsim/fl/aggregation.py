"""Aggregation maths as pure functions over state dicts."""

from __future__ import annotations

from typing import Any, Mapping, Sequence


def weighted_average(states: Sequence[Mapping[str, Any]], weights: Sequence[float]) -> dict[str, Any]:
    """``sum_k w_k state_k / sum_k w_k`` per entry (tensors or arrays).

    Integer entries (e.g. BatchNorm's ``num_batches_tracked``) are averaged in floating
    point and cast back. Raises ValueError on no states, mismatched keys or weights that
    do not sum to a positive number.
    """
    if not states:
        raise ValueError("weighted_average needs at least one state")
    if len(states) != len(weights):
        raise ValueError(f"got {len(states)} states and {len(weights)} weights")
    total = float(sum(weights))
    if not total > 0 or any(w < 0 for w in weights):
        raise ValueError(f"weights must be >= 0 with a positive sum, got {list(weights)}")
    keys = list(states[0])
    for index, state in enumerate(states[1:], start=1):
        if list(state) != keys:
            raise ValueError(f"states[{index}] has other entries than states[0]")
    out: dict[str, Any] = {}
    for key in keys:
        first = states[0][key]
        acc = sum(float(w) / total * _as_float(state[key]) for state, w in zip(states, weights))
        out[key] = acc.to(first.dtype) if hasattr(acc, "to") else acc.astype(first.dtype)
    return out


def _as_float(value: Any) -> Any:
    if hasattr(value, "double"):
        return value.double()
    return value.astype(float)
