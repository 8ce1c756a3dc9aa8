"""Matplotlib figures from a results table (list of result-row dicts)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence


def _series(rows: Sequence[dict[str, Any]], x: str, y: str) -> dict[tuple[str, int], tuple[list, list]]:
    """Mean of ``y`` over seeds, per (scheme, K), as sorted x / y lists."""
    grouped: dict[tuple[str, int], dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        grouped[(row["scheme"], row["num_vehicles"])][row[x]].append(row[y])
    out = {}
    for key, points in grouped.items():
        xs = sorted(points)
        out[key] = (xs, [sum(points[v]) / len(points[v]) for v in xs])
    return out


LINE_STYLES = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-."), ("v", "-"), ("P", "--"), ("X", ":")]


def _style(index: int) -> dict[str, str]:
    """Marker and line style per series, so overlapping curves stay visible."""
    marker, line = LINE_STYLES[index % len(LINE_STYLES)]
    return {"marker": marker, "linestyle": line}


def speed_plots(rows: Sequence[dict[str, Any]], out_dir: Path, *, title: str = "") -> list[Path]:
    """effective_sum_rate_vs_speed.png and rate_and_overhead_vs_speed.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = {row["num_vehicles"] for row in rows}
    label = (lambda s, k: s) if len(counts) == 1 else (lambda s, k: f"{s}, K={k}")
    paths = []
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for index, ((scheme, k), (xs, ys)) in enumerate(sorted(_series(rows, "speed_kmh", "effective_sum_rate").items())):
        ax.plot(xs, ys, label=label(scheme, k), **_style(index))
    ax.set_xlabel("speed [km/h]")
    ax.set_ylabel("effective sum rate [bit/s/Hz]")
    ax.set_title(title or "Effective sum rate vs speed")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    paths.append(out_dir / "effective_sum_rate_vs_speed.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    for index, ((scheme, k), (xs, ys)) in enumerate(sorted(_series(rows, "speed_kmh", "sum_rate").items())):
        left.plot(xs, ys, label=label(scheme, k), **_style(index))
    for index, ((scheme, k), (xs, ys)) in enumerate(sorted(_series(rows, "speed_kmh", "overhead_share").items())):
        right.plot(xs, [100 * y for y in ys], label=label(scheme, k), **_style(index))
    left.set_xlabel("speed [km/h]")
    left.set_ylabel("sum rate while serving [bit/s/Hz]")
    right.set_xlabel("speed [km/h]")
    right.set_ylabel("alignment overhead [% of time]")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    paths.append(out_dir / "rate_and_overhead_vs_speed.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths
