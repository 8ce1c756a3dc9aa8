"""Link budget against the GBA paper: the K = 1 oracle rate and the transmit power that
calibrates it (channels scale with the transmit power, so the calibration is exact)."""

import json
import subprocess
import sys

import pytest

from v2xsim.config import BlockersConfig, RadioConfig, RoadConfig
from v2xsim.studies.link_budget import PAPER_K1_TARGET, link_budget

SECTIONS = dict(road=RoadConfig(), blockers=BlockersConfig(), seed=3, samples=60)


def test_the_calibrated_transmit_power_hits_the_target_rate():
    before = link_budget(radio=RadioConfig(), **SECTIONS)
    assert before.target_rate == PAPER_K1_TARGET
    assert before.rate_ci[0] <= before.rate_mean <= before.rate_ci[1]
    after = link_budget(radio=RadioConfig(tx_power_dbm=before.calibrated_tx_power_dbm), **SECTIONS)
    assert after.rate_mean == pytest.approx(PAPER_K1_TARGET, abs=1e-4)
    assert after.offset_db == pytest.approx(0.0, abs=1e-4)
    # every drop's best-beam SNR moved by exactly the offset
    assert after.snr_db[1] - before.snr_db[1] == pytest.approx(before.offset_db, abs=1e-3)


def test_radio_command_prints_and_writes_the_link_budget(tmp_path):
    result = subprocess.run([sys.executable, "-m", "v2xsim", "radio", "scenarios/speed_sweep.toml", "--trials", "1",
                             "--k1-target", "9.5", "--out", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "K = 1 oracle rate" in result.stdout and "to reach 9.50 bit/s/Hz" in result.stdout
    saved = json.loads((tmp_path / "link_budget.json").read_text())
    assert saved["target_rate"] == 9.5 and saved["paper_k1_rates"]["GBA-RSU (Table III)"] == 12.79


@pytest.mark.parametrize("value", ["nan", "0", "-3"])
def test_radio_command_refuses_a_bad_target(value):
    result = subprocess.run([sys.executable, "-m", "v2xsim", "radio", "scenarios/speed_sweep.toml",
                             "--k1-target", value], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"v2xsim: error: --k1-target must be a finite rate > 0 [bit/s/Hz], got "
                                                  f"{float(value)}"]
