"""Link budget of a scenario against the GBA paper's: the single-vehicle (K = 1) oracle
rate on the scenario's road, and the transmit power that would make it equal a target.

With one vehicle the oracle puts the whole budget on the strongest beam, so its rate is
``log2(1 + p_max max_b |h^H c_b|^2 / noise)``: the link budget in one number. The GBA
paper's K = 1 rows (Tables III-IV, measured FLASH RSS) sit at 12.8-13.1 bit/s/Hz, i.e.
a best-beam SNR near 38 dB; :func:`link_budget` reports where a scenario stands and the
gain that closes the gap (applied as ``radio.tx_power_dbm``: the same dB on every link).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from v2xsim.config import BlockersConfig, RadioConfig, RoadConfig
from v2xsim.metrics import power_offset_db_for_rate, shannon_rate
from v2xsim.stats import mean_ci
from v2xsim.units import linear_to_db

#: the GBA paper's K = 1 sum rates [bit/s/Hz] (seed 002, Tables III and IV)
PAPER_K1_RATES = {"GBA-RSU (Table III)": 12.79, "GBA-RSU, random dropping (Table IV)": 12.81,
                  "WMMSE w/ CE (Tables III-IV)": 13.09}
#: default calibration target: the paper's GBA-RSU at K = 1 (Table III)
PAPER_K1_TARGET = PAPER_K1_RATES["GBA-RSU (Table III)"]


@dataclass(frozen=True)
class LinkBudget:
    """Single-vehicle oracle rate of a scenario and its calibration.

    Attributes:
        radio: the scenario's radio section. samples: K = 1 drops evaluated.
        rate_mean, rate_ci: mean oracle rate [bit/s/Hz] and its 95 % interval.
        snr_db: (10th, 50th, 90th) percentiles of the best-beam SNR [dB].
        silent_share: drops where no beam reaches the vehicle (fully blocked).
        target_rate: calibration target [bit/s/Hz]; offset_db: gain that meets it [dB];
        calibrated_tx_power_dbm: ``radio.tx_power_dbm + offset_db``.
    """

    radio: RadioConfig
    samples: int
    rate_mean: float
    rate_ci: tuple[float, float]
    snr_db: tuple[float, float, float]
    silent_share: float
    target_rate: float
    offset_db: float
    calibrated_tx_power_dbm: float

    def as_dict(self) -> dict[str, Any]:
        return {"tx_power_dbm": self.radio.tx_power_dbm, "num_antennas": self.radio.num_antennas,
                "bandwidth_hz": self.radio.bandwidth_hz, "noise_figure_db": self.radio.noise_figure_db,
                "samples": self.samples, "k1_oracle_rate_mean": self.rate_mean,
                "k1_oracle_rate_ci95": list(self.rate_ci), "best_beam_snr_db_p10_p50_p90": list(self.snr_db),
                "silent_share": self.silent_share, "paper_k1_rates": PAPER_K1_RATES,
                "target_rate": self.target_rate, "offset_db": self.offset_db,
                "calibrated_tx_power_dbm": self.calibrated_tx_power_dbm}

    def table(self) -> str:
        radio = self.radio
        paper = ", ".join(f"{name} {rate:.2f}" for name, rate in PAPER_K1_RATES.items())
        return "\n".join([
            f"link budget: {radio.tx_power_dbm:g} dBm into {radio.num_antennas} elements, "
            f"{radio.bandwidth_hz / 1e9:g} GHz, noise figure {radio.noise_figure_db:g} dB",
            f"  K = 1 oracle rate: {self.rate_mean:.2f} bit/s/Hz (95 % CI {self.rate_ci[0]:.2f} to "
            f"{self.rate_ci[1]:.2f}; {self.samples} drops on the covered road, {100 * self.silent_share:.1f} % "
            f"fully blocked)",
            f"  best-beam SNR: median {self.snr_db[1]:.1f} dB (10th-90th percentile {self.snr_db[0]:.1f} to "
            f"{self.snr_db[2]:.1f} dB)",
            f"  GBA paper, K = 1: {paper} bit/s/Hz",
            f"  to reach {self.target_rate:.2f} bit/s/Hz: {self.offset_db:+.1f} dB, i.e. "
            f"--set radio.tx_power_dbm={self.calibrated_tx_power_dbm:.1f}",
        ]) + "\n"


def link_budget(*, road: RoadConfig, radio: RadioConfig, blockers: BlockersConfig, seed: int,
                samples: int = 2000, target_rate: float = PAPER_K1_TARGET) -> LinkBudget:
    """K = 1 oracle rate over ``samples`` random single-vehicle drops of the scenario's
    road (with its blockers and a truck, as GBA-RSU's training drops), and the
    transmit-power offset that makes its mean equal ``target_rate`` [bit/s/Hz]."""
    from v2xsim.training.rsu import DataConfig, make_drops

    if samples < 2:
        raise ValueError(f"samples must be >= 2, got {samples}")
    drops = make_drops(DataConfig(road=road.model_dump(), radio=radio.model_dump(), blockers=blockers.model_dump(),
                                  num_vehicles=(1,), samples_per_k=samples, seed=seed))
    # noise-normalised units: SNR of beam b = p_max |h^H c_b|^2 / noise
    snr = drops.p_max * np.max(np.abs(drops.beam_space[:, 0, :].astype(complex)) ** 2, axis=1)
    rates = shannon_rate(snr, 0.0, 1.0)
    interval = mean_ci(rates)
    heard = snr[snr > 0]
    percentiles = tuple(float(v) for v in linear_to_db(np.percentile(heard, [10, 50, 90]))) if heard.size \
        else (float("-inf"),) * 3
    offset = power_offset_db_for_rate(snr, target_rate)
    return LinkBudget(radio=radio, samples=samples, rate_mean=interval.mean,
                      rate_ci=(float(interval.ci_low), float(interval.ci_high)), snr_db=percentiles,
                      silent_share=float(np.mean(snr == 0)), target_rate=float(target_rate), offset_db=offset,
                      calibrated_tx_power_dbm=radio.tx_power_dbm + offset)
