"""Realignment study: fixed periods as multiples of T_contact / W, per scheme and speed."""

import csv
import math

import pytest

from v2xsim.studies import read_study_file
from v2xsim.studies.realignment import load_realignment_study, run_realignment_study

pytestmark = pytest.mark.slow  # co-simulations


def test_tiny_realignment_study(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text('\n'.join([
        'study = "realignment"', 'scenario = "base.toml"',
        'overrides = ["simulation.duration_s=0.2", "traffic.num_vehicles=3"]',
        'factors = [0.25, 1.0]', 'speed_kmh = [120]', 'seeds = [0, 1]']))
    (tmp_path / "base.toml").write_text('[[schemes]]\nname = "oracle"\n[[schemes]]\nname = "zf_sweep"\n')
    study, base = load_realignment_study(read_study_file(path), path)
    result = run_realignment_study(study, base, tmp_path / "out", quiet=True, workers=1)
    with (tmp_path / "out" / "table.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 2 * 2  # schemes x factors x seeds
    coherence = 2 * 10.0 * math.tan(math.radians(60.0)) / (120 / 3.6) / 34
    for row in rows:
        assert float(row["period_ms"]) == pytest.approx(float(row["factor"]) * coherence * 1e3)
        if row["scheme"] == "zf_sweep" and row["factor"] == "0.25":
            # a 4.6 ms period is shorter than the 20.3 ms sweep: the beams are always stale
            assert float(row["effective_sum_rate"]) == 0.0
    best = {(b["scheme"], b["speed_kmh"]): b["factor"] for b in result["best_factor"]}
    assert best[("zf_sweep", 120.0)] == 1.0
    assert (tmp_path / "out" / "effective_sum_rate_vs_period.png").stat().st_size > 10_000


def test_bad_factors_are_refused(tmp_path):
    from v2xsim.errors import ConfigError

    path = tmp_path / "study.toml"
    path.write_text('study = "realignment"\nscenario = "base.toml"\nfactors = [0.0]\nspeed_kmh = [60]\n')
    (tmp_path / "base.toml").write_text('[[schemes]]\nname = "oracle"\n')
    with pytest.raises(ConfigError, match="factors"):
        load_realignment_study(read_study_file(path), path)
