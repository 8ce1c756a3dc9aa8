"""Cold first run of the headline: ``v2xsim run scenarios/speed_sweep.toml`` with an empty
model cache (FLASH-like data generation, GBA-RSU and GBA-Vehicle training side by side,
GBA-RSU stage 3, then the 24-point sweep), and the same run again warm, side by side in
one run. Prints each phase's wall time from the run's progress lines.

Run on an idle machine: ``python benchmarks/cold_start.py`` (about 4 minutes on 2 cores).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(cache: Path, out: Path) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "v2xsim", "run", "scenarios/speed_sweep.toml", "--out", str(out)],
                            cwd=ROOT, env={**os.environ, "V2XSIM_CACHE": str(cache)}, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"run failed:\n{result.stderr}")
    return elapsed, result.stderr.replace("\r", "\n")


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        cache = Path(directory) / "cache"
        cold, log = run(cache, Path(directory) / "cold")
        warm, _ = run(cache, Path(directory) / "warm")
    print(f"cold first run (empty cache): {cold:6.1f} s")
    print(f"warm run (models cached):     {warm:6.1f} s")
    print(f"training and data (cold - warm): {cold - warm:6.1f} s")
    for pattern in (r"training gnn RSU: step (\d+)/\1, .*?(\d+) s,", r"training GBA-Vehicle: \d+/\d+ epochs, (\d+) s",
                    r"FLASH-like data: trial (\d+)/\1, (\d+) s"):
        found = re.findall(pattern, log)
        if found:
            print(f"  {pattern.split(':')[0].replace(chr(92), '')}: {found[-1][-1]} s")


if __name__ == "__main__":
    main()
