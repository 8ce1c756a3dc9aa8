"""``v2xsim radio SCENARIO``: sector statistics of the FLASH-like sweeps, ideal and
hardware array side by side, and the sector-pattern plot."""

import csv
from pathlib import Path

from v2xsim.cli import main
from v2xsim.data.flash_like import SECTOR_VARIANTS

ROOT = Path(__file__).resolve().parents[2]
HEADLINE = ROOT / "scenarios" / "speed_sweep.toml"


def test_radio_command_prints_both_arrays_and_writes_samples_and_patterns(tmp_path, capsys):
    assert main(["radio", str(HEADLINE), "--trials", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for label in SECTOR_VARIANTS:
        assert label in out
    for row in ("sectors heard", "best - 2nd [dB]", "best - median heard [dB]", "within 3 dB of best",
                "within 6 dB of best", "best-sector changes [%]"):
        assert row in out
    assert "LoS samples" in out and "NLoS samples" in out
    assert "2-bit phase shifters" in out and "-78 dBm" in out
    assert (tmp_path / "sector_patterns.png").stat().st_size > 10_000
    with (tmp_path / "sector_statistics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {row["radio"] for row in rows} == set(SECTOR_VARIANTS)
    assert len(rows) == 3 * 4 * 2 * 10 * 4  # variants x categories x trials x vehicles x samples


def test_radio_command_uses_the_scenarios_own_hardware(capsys):
    assert main(["radio", str(HEADLINE), "--trials", "1", "--set", "radio.array.ideal=false",
                 "--set", "radio.array.phase_bits=3", "--set", "radio.array.failed_elements=2"]) == 0
    out = capsys.readouterr().out
    assert "3-bit phase shifters" in out and "2 failed" in out


def test_radio_command_refuses_bad_input_with_one_line(capsys):
    assert main(["radio", str(HEADLINE), "--trials", "0"]) == 2
    assert "--trials" in capsys.readouterr().err
    assert main(["radio", str(HEADLINE), "--set", "radio.measurement.estimation_chips=0"]) == 2
    assert "radio.measurement.estimation_chips" in capsys.readouterr().err
