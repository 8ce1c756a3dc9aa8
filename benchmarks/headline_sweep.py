"""Wall time of the whole headline sweep, side by side in one run: one seed with PyTorch's
default threads in every worker (how sweeps ran before one thread per worker was the
default) against the three seeds of today's headline with one thread per worker.

Both use the same code, the same models (trained first if needed) and two worker
processes; the results of both settings are compared for the seed they share.

Run: ``python benchmarks/headline_sweep.py``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from v2xsim.config import load_scenario
from v2xsim.executors import LocalExecutor
from v2xsim.sim.results import result_rows
from v2xsim.sim.runner import prepare_models, run_sweep

ROOT = Path(__file__).resolve().parent.parent


def timed_sweep(seeds: list[int], torch_threads: int | None) -> tuple[float, list[dict]]:
    scenario = load_scenario(ROOT / "scenarios" / "speed_sweep.toml", [f"sweep.seeds={seeds}"])
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        outputs = run_sweep(scenario, checkpoint_dir=Path(directory), quiet=True, prepared=True,
                            executor=LocalExecutor(workers=2, torch_threads=torch_threads))
        return time.perf_counter() - start, result_rows(outputs)


def main() -> None:
    prepare_models(load_scenario(ROOT / "scenarios" / "speed_sweep.toml"), quiet=False)
    before, old_rows = timed_sweep([0], torch_threads=None)
    after, new_rows = timed_sweep([0, 1, 2], torch_threads=1)
    same = [r for r in new_rows if r["seed"] == 0] == old_rows
    print("headline sweep (8 speeds x 4 schemes, K = 10, 2 simulated s per point, 2 workers)")
    print(f"1 seed,  PyTorch default threads per worker: {before:7.1f} s")
    print(f"3 seeds, one PyTorch thread per worker:      {after:7.1f} s")
    print(f"ratio (3 seeds now / 1 seed before): {after / before:.2f}; per point: {after / 3 / before:.2f}")
    print(f"seed-0 results identical in both settings: {same}")


if __name__ == "__main__":
    main()
