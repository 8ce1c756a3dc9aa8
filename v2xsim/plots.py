"""Matplotlib figures from a results table (list of result-row dicts): means across
seeds, with 95 % confidence bands where a point has two or more seeds."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from v2xsim.stats import mean_ci


def _series(rows: Sequence[dict[str, Any]], x: str, y: str, scale: float = 1.0
            ) -> dict[tuple[str, int], tuple[list, list, list, list]]:
    """Mean of ``y`` over seeds per (scheme, K), as sorted x, mean, CI low and CI high
    lists (the CI bounds are the mean where a point has one seed)."""
    grouped: dict[tuple[str, int], dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        grouped[(row["scheme"], row["num_vehicles"])][row[x]].append(scale * row[y])
    out = {}
    for key, points in grouped.items():
        xs = sorted(points)
        stats = [mean_ci(points[v]) for v in xs]
        out[key] = (xs, [s.mean for s in stats], [s.mean if s.ci_low is None else s.ci_low for s in stats],
                    [s.mean if s.ci_high is None else s.ci_high for s in stats])
    return out


def _draw(ax, series: dict[tuple[str, int], tuple[list, list, list, list]], label) -> None:
    for index, ((scheme, k), (xs, ys, lows, highs)) in enumerate(sorted(series.items())):
        (line,) = ax.plot(xs, ys, label=label(scheme, k), **_style(index))
        if any(low != high for low, high in zip(lows, highs)):
            ax.fill_between(xs, lows, highs, color=line.get_color(), alpha=0.15, linewidth=0)


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
    seeds = len({row["seed"] for row in rows})
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    _draw(ax, _series(rows, "speed_kmh", "effective_sum_rate"), label)
    ax.set_xlabel("speed [km/h]" + (f"   (mean of {seeds} seeds, 95 % CI bands)" if seeds > 1 else ""))
    ax.set_ylabel("effective sum rate [bit/s/Hz]")
    ax.set_title(title or "Effective sum rate vs speed")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    paths.append(out_dir / "effective_sum_rate_vs_speed.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    _draw(left, _series(rows, "speed_kmh", "sum_rate"), label)
    _draw(right, _series(rows, "speed_kmh", "overhead_share", scale=100.0), label)
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


def sector_patterns(codebooks: dict[str, Any], path: Path, *, coverage_angle_deg: float | None = None,
                    title: str = "") -> Path:
    """One panel per codebook (label -> (Nt, W) element weights of the beams an array
    radiates): the array gain ``|a(theta)^H c_i|^2`` [dB] of every sector over the departure
    angle from broadside, the coverage sector marked. Writes ``path`` (PNG)."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from v2xsim.channel.codebook import beam_patterns

    angles = np.linspace(-90.0, 90.0, 1441)
    fig, axes = plt.subplots(len(codebooks), 1, figsize=(8.0, 3.2 * len(codebooks)), sharex=True, squeeze=False)
    for ax, (label, codebook) in zip(axes[:, 0], codebooks.items()):
        gains = beam_patterns(np.asarray(codebook), np.radians(angles))
        with np.errstate(divide="ignore"):
            gains_db = 10.0 * np.log10(np.maximum(gains, 1e-6))
        colours = plt.cm.viridis(np.linspace(0.0, 1.0, gains.shape[1]))
        for beam in range(gains.shape[1]):
            ax.plot(angles, gains_db[:, beam], color=colours[beam], linewidth=0.8)
        peak = 10.0 * math.log10(codebook.shape[0])
        ax.set_ylim(peak - 30.0, peak + 2.0)
        if coverage_angle_deg is not None:
            for edge in (-coverage_angle_deg / 2, coverage_angle_deg / 2):
                ax.axvline(edge, color="k", linestyle=":", linewidth=0.8)
        ax.set_ylabel("array gain [dB]")
        ax.set_title(f"{label}: {gains.shape[1]} sectors, {codebook.shape[0]} elements", fontsize=10)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("departure angle from broadside [deg] (dotted: coverage sector)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def corridor_plots(curves: Sequence[dict[str, Any]], rates: Sequence[dict[str, Any]], path: Path, *,
                   metric: str, title: str = "") -> Path:
    """The corridor study's figure: one panel per speed x density with the held-out
    ``metric`` of each strategy's global model against simulated time (mean, 95 % CI
    band over seeds), and a last row with the effective sum rate per case and speed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    speeds = sorted({row["speed_kmh"] for row in curves})
    densities = sorted({row["vehicles"] for row in curves})
    fig, axes = plt.subplots(len(densities) + 1, len(speeds), figsize=(4.2 * len(speeds), 3.2 * (len(densities) + 1)),
                             squeeze=False)
    cases = sorted({row["case"] for row in curves})
    for i, vehicles in enumerate(densities):
        for j, speed in enumerate(speeds):
            ax = axes[i][j]
            for index, case in enumerate(cases):
                rows = sorted((r for r in curves if r["case"] == case and r["speed_kmh"] == speed
                               and r["vehicles"] == vehicles), key=lambda r: r["time_s"])
                if not rows:
                    continue
                xs = [r["time_s"] for r in rows]
                (line,) = ax.plot(xs, [r["mean"] for r in rows], label=case, linestyle=_style(index)["linestyle"])
                lows = [r["mean"] if r["ci_low"] is None else r["ci_low"] for r in rows]
                highs = [r["mean"] if r["ci_high"] is None else r["ci_high"] for r in rows]
                ax.fill_between(xs, lows, highs, color=line.get_color(), alpha=0.15, linewidth=0)
            ax.set_title(f"{speed:g} km/h, {vehicles} cars", fontsize=9)
            ax.set_xlabel("simulated time [s]")
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    rate_cases = sorted({row["case"] for row in rates})
    width = 0.8 / max(len(rate_cases), 1)
    for j, speed in enumerate(speeds):
        ax = axes[-1][j]
        for index, case in enumerate(rate_cases):
            rows = [r for r in rates if r["case"] == case and r["speed_kmh"] == speed]
            rows.sort(key=lambda r: r["vehicles"])
            x = np.arange(len(rows)) + index * width
            means = [r["mean"] for r in rows]
            errors = [[r["mean"] - (r["ci_low"] if r["ci_low"] is not None else r["mean"]) for r in rows],
                      [(r["ci_high"] if r["ci_high"] is not None else r["mean"]) - r["mean"] for r in rows]]
            ax.bar(x, means, width, yerr=errors, label=case, capsize=2)
            ax.set_xticks(np.arange(len(rows)) + 0.4 - width / 2, [f"{r['vehicles']} cars" for r in rows])
        ax.set_title(f"{speed:g} km/h: beam alignment", fontsize=9)
        ax.set_ylabel("effective sum rate [bit/s/Hz]")
        ax.grid(alpha=0.3, axis="y")
        if j == 0:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
