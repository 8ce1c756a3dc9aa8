"""Aggregation maths as pure functions over state dicts, and the parameter groups of
GBA-Vehicle that the strategies download, train and upload."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

#: parameter groups of GBA-Vehicle: the three extraction branches and the fusion branch
GROUPS: tuple[str, ...] = ("gps", "image", "lidar", "fusion")
#: bytes per transferred parameter (float32)
BYTES_PER_PARAMETER = 4


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
    _check_weights(weights)
    keys = list(states[0])
    for index, state in enumerate(states[1:], start=1):
        if list(state) != keys:
            raise ValueError(f"states[{index}] has other entries than states[0]")
    return {key: _mean([state[key] for state in states], weights) for key in keys}


def partial_average(states: Sequence[Mapping[str, Any]], weights: Sequence[float],
                    current: Mapping[str, Any]) -> dict[str, Any]:
    """Per entry of ``current``: the weighted mean over the states that hold it; an entry
    no state holds keeps its current value.

    This is Eq. 13 of seed 002 when each vehicle uploads only the branches of the
    sensors it has: a branch is averaged over the vehicles that have that modality, the
    fusion head over all, and a vehicle never touches a branch it does not have.
    Entries a state holds that ``current`` lacks raise ValueError.
    """
    if len(states) != len(weights):
        raise ValueError(f"got {len(states)} states and {len(weights)} weights")
    if states:
        _check_weights(weights)
    for index, state in enumerate(states):
        extra = [key for key in state if key not in current]
        if extra:
            raise ValueError(f"states[{index}] has entries the global model lacks: {extra[:3]}")
    out: dict[str, Any] = {}
    for key, value in current.items():
        holders = [(state[key], w) for state, w in zip(states, weights) if key in state]
        if not holders or sum(w for _, w in holders) <= 0:
            out[key] = value
            continue
        out[key] = _mean([v for v, _ in holders], [w for _, w in holders])
    return out


def parameter_group(key: str) -> str:
    """The group of a GBA-Vehicle state-dict entry: ``branches.<m>.*`` -> ``m``;
    ``fusion_blocks.*`` and ``fusion_head.*`` -> ``"fusion"``."""
    parts = key.split(".")
    if parts[0] == "branches" and len(parts) > 1 and parts[1] in GROUPS:
        return parts[1]
    if parts[0] in ("fusion_blocks", "fusion_head"):
        return "fusion"
    raise ValueError(f"{key!r} is not a GBA-Vehicle parameter (branches.*, fusion_blocks.*, fusion_head.*)")


def select_entries(keys: Iterable[str], *, groups: str | Sequence[str], modalities: Sequence[str]) -> list[str]:
    """The entries of ``keys`` that a vehicle with sensors ``modalities`` moves for
    ``groups``: "all" = every entry; "own" = the branches of its sensors and the fusion
    branch without the fusion blocks of sensors it lacks (its pruned network); a list =
    those groups (fusion blocks of missing sensors excluded)."""
    keys = list(keys)
    if groups == "all":
        return keys
    wanted = set(modalities) | {"fusion"} if groups == "own" else set(groups)
    unknown = wanted - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown parameter groups {sorted(unknown)}; valid: {', '.join(GROUPS)}, all, own")
    chosen = []
    for key in keys:
        group = parameter_group(key)
        if group not in wanted:
            continue
        if key.startswith("fusion_blocks.") and key.split(".")[1] not in modalities:
            continue
        chosen.append(key)
    return chosen


def payload_bytes(state: Mapping[str, Any], keys: Iterable[str] | None = None) -> int:
    """Bytes of the entries ``keys`` (default all) sent as float32 (integer buffers too)."""
    names = state.keys() if keys is None else keys
    return int(sum(_numel(state[name]) for name in names)) * BYTES_PER_PARAMETER


def group_sizes(state: Mapping[str, Any]) -> dict[str, int]:
    """Number of values per parameter group (the cost model's unit)."""
    sizes = {group: 0 for group in GROUPS}
    for key, value in state.items():
        sizes[parameter_group(key)] += _numel(value)
    return sizes


def _check_weights(weights: Sequence[float]) -> None:
    total = float(sum(weights))
    if not total > 0 or any(w < 0 for w in weights):
        raise ValueError(f"weights must be >= 0 with a positive sum, got {list(weights)}")


def _mean(values: Sequence[Any], weights: Sequence[float]) -> Any:
    total = float(sum(weights))
    first = values[0]
    acc = sum(float(w) / total * _as_float(v) for v, w in zip(values, weights))
    if hasattr(acc, "to"):
        if not first.dtype.is_floating_point:
            acc = acc.round()
        return acc.to(first.dtype)
    if first.dtype.kind in "iub":
        acc = acc.round()
    return acc.astype(first.dtype)


def _as_float(value: Any) -> Any:
    if hasattr(value, "double"):
        return value.double()
    return value.astype(float)


def _numel(value: Any) -> int:
    return int(value.numel()) if hasattr(value, "numel") else int(value.size)
