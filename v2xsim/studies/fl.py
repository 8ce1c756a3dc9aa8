"""``v2xsim fl FILE --out DIR``: one federated training of GBA-Vehicle (an FL experiment
file, :mod:`v2xsim.fl.experiment`), with its per-round table and a plot of accuracy and
GBA-RSU's sum rate against the round."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from v2xsim.progress import silenced


def run_fl_file(path: str | Path, overrides: list[str] | None, out_dir: Path, *, quiet: bool = False,
                stop_after_rounds: int | None = None) -> dict[str, Any]:
    """Run (or resume) the experiment of ``path`` into ``out_dir`` and plot its rounds."""
    from v2xsim.fl.experiment import load_experiment
    from v2xsim.fl.runner import run_experiment

    experiment = load_experiment(path, overrides)
    summary = run_experiment(experiment, out_dir, quiet=quiet, stop_after_rounds=stop_after_rounds)
    plot_rounds({summary["strategy"]: out_dir / "rounds.csv"}, out_dir / "rounds.png",
                title=f"{experiment.name}: {experiment.setting} setting, {experiment.profile} profile")
    if not (quiet or silenced()):
        final = summary["final"]
        shown = ", ".join(f"{k} {v:.4g}" for k, v in final.items() if v is not None)
        print(f"{experiment.name}: {summary['rounds_done']}/{summary['training']['rounds']} rounds; {shown}")
    return summary


def read_rounds(path: Path) -> list[dict[str, str]]:
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


def plot_rounds(series: dict[str, Path], out: Path, *, title: str) -> Path:
    """Exact-match accuracy and sum rate against the round, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for label, path in series.items():
        rows = [r for r in read_rounds(path) if r.get("exact_match")]
        rounds = [int(r["round"]) for r in rows]
        left.plot(rounds, [float(r["exact_match"]) for r in rows], marker=".", label=label)
        right.plot(rounds, [float(r["sum_rate"]) for r in rows], marker=".", label=label)
    left.set(xlabel="round", ylabel="exact-match accuracy (held-out)")
    right.set(xlabel="round", ylabel="GBA-RSU sum rate on predicted feedback [bit/s/Hz]")
    for axis in (left, right):
        axis.grid(alpha=0.3)
    left.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out
