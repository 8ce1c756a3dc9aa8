"""Link budget of one RSU site (codebook, power budget, noise, feedback threshold) and the
802.11ad sweep measurement model, as pure functions and one frozen :class:`Radio`.

Measurement model (``[radio.measurement]``, docs/radio.md): in an 802.11ad sector sweep
every sector sends one SSW frame with the control PHY (MCS 0). A vehicle

1. decodes the frame only if its received power reaches the control-PHY sensitivity
   (-78 dBm for MCS 0 in the DMG receiver-sensitivity table of IEEE 802.11ad-2012,
   clause 21) -- :data:`CONTROL_PHY_SENSITIVITY_DBM`;
2. estimates the frame's power from its preamble: the mean of ``|y_n|^2`` over the
   ``N`` chips of the channel estimation field minus the known noise power
   (:func:`frame_power_estimate`); with a constant-envelope training sequence and
   complex Gaussian noise this estimate is unbiased with standard deviation
   ``sqrt((2 P sigma^2 + sigma^4) / N)`` (:func:`frame_power_error_std`), so its relative
   error grows as the frame SNR ``P / sigma^2`` falls;
3. reports the SNR in the 8-bit SNR field of the SSW-Feedback field (IEEE 802.11ad-2012
   §8.4a.3): ``SNR = -8 dB + 0.25 dB x value``, value 0..255, so -8 to 55.75 dB
   (:func:`ssw_snr_code`, :func:`ssw_snr_db`).

The sector-statistics helpers (:func:`sector_statistics`, :func:`summarise_sector_statistics`)
describe a sweep the way published Talon AD7200 measurements do: sectors heard, how far
the best one stands above the others, how often the best sector changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from v2xsim import checks as check

#: thermal noise power spectral density kT at 290 K [dBm/Hz]
THERMAL_NOISE_DBM_PER_HZ = -174.0

#: receiver sensitivity of the 802.11ad control PHY (MCS 0), the PHY of SSW frames [dBm]
#: (IEEE 802.11ad-2012, clause 21, receiver sensitivity of MCS 0): weaker frames are not
#: decoded, nothing is measured
CONTROL_PHY_SENSITIVITY_DBM = -78.0
#: chips of the DMG channel estimation field of the preamble (Gu512, Gv512, Gv128: 1152
#: chips of 0.57 ns; IEEE 802.11ad-2012, clause 21), the known sequence the frame's power
#: is estimated on
CONTROL_PHY_CEF_CHIPS = 1152
#: SSW-Feedback field, SNR Report subfield (IEEE 802.11ad-2012 §8.4a.3): 8 bits,
#: SNR = SSW_SNR_MIN_DB + SSW_SNR_STEP_DB x value
SSW_SNR_BITS = 8
SSW_SNR_MIN_DB = -8.0
SSW_SNR_STEP_DB = 0.25
SSW_SNR_MAX_CODE = 2 ** SSW_SNR_BITS - 1
SSW_SNR_MAX_DB = SSW_SNR_MIN_DB + SSW_SNR_STEP_DB * SSW_SNR_MAX_CODE  # 55.75 dB


def noise_power_dbm(bandwidth_hz: float, noise_figure_db: float) -> float:
    """Receiver noise power ``kTB + NF`` [dBm]."""
    check.positive("bandwidth_hz", bandwidth_hz)
    return THERMAL_NOISE_DBM_PER_HZ + 10 * math.log10(bandwidth_hz) + check.finite("noise_figure_db", noise_figure_db)


# ------------------------------------------------------------------ SSW SNR field
def ssw_snr_code(snr_db) -> np.ndarray:
    """The 8-bit SNR Report value of an SNR [dB]: ``round((snr + 8) / 0.25)`` clamped to
    0..255 (below -8 dB reports 0, above 55.75 dB reports 255; NaN and -inf report 0).
    Halves round up. Returns uint8, shape like ``snr_db``."""
    snr = np.asarray(snr_db, dtype=float)
    snr = np.where(np.isnan(snr), -np.inf, snr)
    with np.errstate(invalid="ignore"):
        code = np.floor((snr - SSW_SNR_MIN_DB) / SSW_SNR_STEP_DB + 0.5)
    return np.clip(code, 0, SSW_SNR_MAX_CODE).astype(np.uint8)


def ssw_snr_db(code) -> np.ndarray:
    """SNR [dB] an SNR Report value stands for: ``-8 + 0.25 x code``."""
    code = np.asarray(code)
    if np.any((code < 0) | (code > SSW_SNR_MAX_CODE)) or np.any(code != np.round(code)):
        raise ValueError(f"SNR report values must be integers in 0..{SSW_SNR_MAX_CODE}")
    return SSW_SNR_MIN_DB + SSW_SNR_STEP_DB * code.astype(float)


def quantise_ssw_snr(snr_db) -> np.ndarray:
    """An SNR [dB] as the SSW-Feedback field carries it (0.25 dB steps, -8 to 55.75 dB)."""
    return ssw_snr_db(ssw_snr_code(snr_db))


# ------------------------------------------------------------------ frame power estimate
def frame_power_error_std(power, noise_power: float, num_chips: int) -> np.ndarray:
    """Standard deviation [W] of :func:`frame_power_estimate`:
    ``sqrt((2 P sigma^2 + sigma^4) / N)`` for received power ``P`` [W], noise ``sigma^2`` [W]
    and ``N`` averaged chips."""
    check.positive("noise_power", noise_power)
    check.positive_int("num_chips", num_chips)
    power = np.asarray(power, dtype=float)
    return np.sqrt((2.0 * power * noise_power + noise_power ** 2) / num_chips)


def frame_power_estimate(power, noise_power: float, num_chips: int, rng: np.random.Generator) -> np.ndarray:
    """Noise-subtracted power estimate [W] of frames received with power ``power`` [W].

    The receiver averages ``|y_n|^2`` over ``N = num_chips`` chips of a known
    constant-envelope sequence, ``y_n = sqrt(P) s_n + w_n`` with ``|s_n| = 1`` and
    ``w_n ~ CN(0, sigma^2)``, and subtracts the noise power it knows:
    ``P_hat = mean |y_n|^2 - sigma^2``. ``2 N mean|y|^2 / sigma^2`` is non-central
    chi-square with ``2N`` degrees of freedom and non-centrality ``2 N P / sigma^2``, which
    is how it is drawn here (exact, one draw per frame): mean ``P``, standard deviation
    :func:`frame_power_error_std`. The estimate can be negative at very low SNR.
    """
    check.positive("noise_power", noise_power)
    check.positive_int("num_chips", num_chips)
    power = np.asarray(power, dtype=float)
    if np.any(~np.isfinite(power)) or np.any(power < 0):
        raise ValueError("power must be finite and >= 0")
    dof = 2 * num_chips
    draw = rng.noncentral_chisquare(dof, dof * power / noise_power) if power.size else np.zeros(power.shape)
    return noise_power * (np.asarray(draw, dtype=float) / dof - 1.0)


@dataclass(frozen=True, kw_only=True)
class SweepMeasurement:
    """How a vehicle measures one beam slot of the sector sweep.

    Attributes:
        ideal: the vehicle knows the exact received power of every beam (no noise, no
            decoding floor, no quantisation): v2xsim's behaviour before the model existed.
        floor_w: control-PHY sensitivity [W]: frames received weaker are not decoded and
            report 0.
        estimation_chips: chips the power estimate averages over (the CEF: 1152).
        quantise: report the SNR as the SSW-Feedback SNR field (0.25 dB, -8..55.75 dB).
    """

    ideal: bool = True
    floor_w: float = 10 ** ((CONTROL_PHY_SENSITIVITY_DBM - 30) / 10)
    estimation_chips: int = CONTROL_PHY_CEF_CHIPS
    quantise: bool = True

    def __post_init__(self) -> None:
        check.non_negative("floor_w", self.floor_w)
        check.positive_int("estimation_chips", self.estimation_chips)

    def measure(self, power, noise_power: float, rng: np.random.Generator | None) -> np.ndarray:
        """What the vehicle reports [W] for frames received with power ``power`` [W]:
        0 where not decoded, else ``sigma^2 x SNR_reported`` (the noise-subtracted estimate,
        as an SNR quantised to the SSW field when ``quantise``). An ideal measurement
        returns ``power`` unchanged (and draws nothing)."""
        if self.ideal:
            return power
        if rng is None:
            raise ValueError("a non-ideal sweep measurement needs a random generator")
        power = np.asarray(power, dtype=float)
        decoded = power >= self.floor_w
        estimate = frame_power_estimate(power, noise_power, self.estimation_chips, rng)
        if self.quantise:
            with np.errstate(divide="ignore", invalid="ignore"):
                snr_db = 10.0 * np.log10(estimate / noise_power)
            estimate = noise_power * 10.0 ** (quantise_ssw_snr(snr_db) / 10.0)
        else:
            estimate = np.maximum(estimate, 0.0)
        return np.where(decoded, estimate, 0.0)


@dataclass(frozen=True, kw_only=True)
class Radio:
    """Link-budget constants of one scenario.

    Attributes:
        codebook: (Nt, W) the beams the RSU's array really radiates (its element weights,
            including phase quantisation and element errors of a hardware array model);
            unit-norm columns for an ideal array. Every transmission and measurement uses it.
        p_max: total transmit power [W].
        noise_power: receiver noise power [W].
        feedback_threshold: receiver sensitivity for RSS / binary feedback [W].
        bandwidth_hz: signal bandwidth [Hz] (bits = bit/s/Hz x s x bandwidth).
        nominal_codebook: (Nt, W) the designed codebook (ideal DFT weights); None: the
            same as ``codebook`` (an ideal array).
        calibrated: the RSU knows its array's real patterns (model-based estimators use
            ``codebook``); else they assume ``nominal_codebook``.
        measurement: how vehicles measure the sweep (:class:`SweepMeasurement`).
    """

    codebook: np.ndarray
    p_max: float
    noise_power: float
    feedback_threshold: float
    bandwidth_hz: float
    nominal_codebook: np.ndarray | None = None
    calibrated: bool = False
    measurement: SweepMeasurement = field(default_factory=SweepMeasurement)

    @property
    def num_beams(self) -> int:
        return int(self.codebook.shape[1])

    @property
    def num_antennas(self) -> int:
        return int(self.codebook.shape[0])

    @property
    def ideal_array(self) -> bool:
        """The array radiates its nominal codebook."""
        return self.nominal_codebook is None or self.nominal_codebook is self.codebook

    @property
    def model_codebook(self) -> np.ndarray:
        """The beams a model-based RSU algorithm assumes: the real ones when the array is
        ideal or calibrated, the nominal codebook otherwise."""
        if self.calibrated or self.nominal_codebook is None:
            return self.codebook
        return self.nominal_codebook

    def measure(self, power, rng: np.random.Generator | None) -> np.ndarray:
        """Sweep RSS a vehicle reports [W] for beams received with ``power`` [W]
        (:meth:`SweepMeasurement.measure`)."""
        return self.measurement.measure(power, self.noise_power, rng)


# ------------------------------------------------------------------ sector statistics
SECTOR_STATISTICS = ("heard", "best_minus_second_db", "best_minus_fifth_db", "best_minus_median_db",
                     "within_3db", "within_6db")


def sector_statistics(rss: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample statistics of sweeps ``rss`` (N, W) (any linear power unit, 0 = sector
    not heard / not decoded), each (N,):

    - ``heard``: sectors with a value > 0;
    - ``best_minus_second_db``, ``best_minus_fifth_db``: best heard sector over the 2nd /
      5th strongest heard one [dB] (NaN with fewer heard);
    - ``best_minus_median_db``: best over the median of the heard sectors, in dB [dB]
      (NaN when none is heard);
    - ``within_3db``, ``within_6db``: other heard sectors within 3 / 6 dB of the best
      (the best itself not counted; 0 when at most one is heard);
    - ``best``: index of the strongest sector, -1 when none is heard.
    """
    rss = np.asarray(rss, dtype=float)
    if rss.ndim != 2:
        raise ValueError(f"rss must have shape (N, W), got {rss.shape}")
    heard = rss > 0
    with np.errstate(divide="ignore"):
        level = np.where(heard, 10.0 * np.log10(np.where(heard, rss, 1.0)), -np.inf)
    ordered = -np.sort(-level, axis=1)  # strongest first, -inf for the sectors not heard
    count = heard.sum(axis=1)
    any_heard = count > 0
    best = ordered[:, 0]

    def gap(rank: int) -> np.ndarray:
        if rss.shape[1] <= rank:
            return np.full(len(rss), np.nan)
        with np.errstate(invalid="ignore"):
            return np.where(count > rank, best - ordered[:, rank], np.nan)

    median = np.full(len(rss), np.nan)
    for row in np.flatnonzero(any_heard):
        median[row] = best[row] - np.median(level[row, heard[row]])
    with np.errstate(invalid="ignore"):
        within = lambda db: np.maximum(((level >= best[:, None] - db) & heard).sum(axis=1) - 1, 0)  # noqa: E731
        within_3, within_6 = within(3.0), within(6.0)
    return {
        "heard": count,
        "best_minus_second_db": gap(1),
        "best_minus_fifth_db": gap(4),
        "best_minus_median_db": median,
        "within_3db": within_3,
        "within_6db": within_6,
        "best": np.where(any_heard, rss.argmax(axis=1), -1),
    }


def best_sector_changes(best: np.ndarray, track: np.ndarray) -> np.ndarray:
    """Whether the best sector changed between consecutive samples of the same track, (M,)
    bool over the M consecutive pairs in which both samples heard something.

    Args:
        best: (N,) best-sector index per sample, -1 = nothing heard (``sector_statistics``).
        track: (N,) label of the sequence each sample belongs to (e.g. one vehicle in one
            trial), samples of a track in time order.
    """
    best, track = np.asarray(best), np.asarray(track)
    if best.shape != track.shape or best.ndim != 1:
        raise ValueError(f"best and track must both have shape (N,), got {best.shape} and {track.shape}")
    pair = (track[1:] == track[:-1]) & (best[1:] >= 0) & (best[:-1] >= 0)
    return (best[1:] != best[:-1])[pair]


def summarise_sector_statistics(rss: np.ndarray, track: np.ndarray | None = None) -> dict[str, float]:
    """Medians over the samples of :func:`sector_statistics` (NaN samples left out), the
    number of samples, and, with ``track``, the share of consecutive positions whose best
    sector differs (``best_changes``)."""
    stats = sector_statistics(rss)
    out: dict[str, float] = {"samples": float(len(stats["heard"]))}
    for name in SECTOR_STATISTICS:
        values = np.asarray(stats[name], dtype=float)
        values = values[np.isfinite(values)]
        out[name] = float(np.median(values)) if values.size else math.nan
    if track is not None:
        changes = best_sector_changes(stats["best"], track)
        out["best_changes"] = float(changes.mean()) if changes.size else math.nan
    return out
