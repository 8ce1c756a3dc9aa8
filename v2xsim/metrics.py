"""Rate and feedback maths as pure functions (seed 002, Section II).

Shapes: ``K`` vehicles, ``Nt`` RSU antennas, ``W`` codebook beams.
Powers are in watts, rates in bits/s/Hz.
"""

from __future__ import annotations

import math

import numpy as np

from v2xsim import checks as check
from v2xsim.units import db_to_linear, dbm_to_watt, watt_to_dbm  # noqa: F401 - re-exported


def _as_channel_matrix(h: np.ndarray) -> np.ndarray:
    h = np.asarray(h)
    if h.ndim != 2:
        raise ValueError(f"h must have shape (K, Nt), got {h.shape}")
    return h


def gain_matrix(h: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Received power matrix ``G[k, i] = |h_k^H t_i|^2`` [W], shape (K, K').

    Args:
        h: channels, (K, Nt) complex; row k is ``h_k``.
        t: precoders including sqrt(power), (Nt, K') complex.
    """
    h = _as_channel_matrix(h)
    t = np.asarray(t)
    if t.ndim != 2 or t.shape[0] != h.shape[1]:
        raise ValueError(f"t must have shape (Nt={h.shape[1]}, K), got {t.shape}")
    return np.abs(h.conj() @ t) ** 2


def shannon_rate(signal, interference, noise_power: float):
    """The one SINR-to-rate formula of v2xsim [bit/s/Hz]:
    ``log2(1 + signal / (interference + noise_power))``, element-wise (powers in [W])."""
    return np.log2(1.0 + signal / (interference + noise_power))


def rates_from_gains(gains: np.ndarray, noise_power: float, *, columns: np.ndarray | None = None) -> np.ndarray:
    """Per-vehicle rates [bit/s/Hz] from a gain matrix ``G[k, i]`` (received power of
    precoder i at vehicle k [W]).

    ``R_k = log2(1 + G[k, c_k] / (sum_{i != c_k} G[k, i] + noise_power))`` with ``c_k``
    the precoder serving vehicle k: ``columns[k]``, or ``k`` for a square matrix (works on
    stacked matrices (..., K, K)). Every precoder interferes, including those of vehicles
    that are not rows (e.g. beams of cars that have left).
    """
    check.positive("noise_power", noise_power)
    gains = np.asarray(gains, dtype=float)
    if columns is None:
        if gains.shape[-1] != gains.shape[-2]:
            raise ValueError(f"gains must be square in its last two axes, got {gains.shape}")
        signal = np.diagonal(gains, axis1=-2, axis2=-1)
    else:
        columns = np.asarray(columns, dtype=int)
        if gains.ndim != 2 or columns.shape != (gains.shape[0],):
            raise ValueError(f"columns must have shape (K,) = ({gains.shape[0]},), got {columns.shape}")
        signal = gains[np.arange(len(columns)), columns]
    interference = gains.sum(axis=-1) - signal
    return shannon_rate(signal, interference, noise_power)


def user_rates(h: np.ndarray, t: np.ndarray, noise_power: float) -> np.ndarray:
    """Achievable rate of each vehicle [bit/s/Hz], shape (K,) (Eq. 2 of seed 002).

    Args:
        h: channels, (K, Nt) complex; row k is ``h_k``.
        t: precoders including sqrt(power), (Nt, K) complex; column k serves vehicle k.
        noise_power: receiver noise power ``sigma^2`` [W], > 0.
    """
    h = _as_channel_matrix(h)
    t = np.asarray(t)
    if t.ndim != 2 or t.shape != (h.shape[1], h.shape[0]):
        raise ValueError(f"t must have shape (Nt={h.shape[1]}, K={h.shape[0]}), got {t.shape}")
    check.positive("noise_power", noise_power)
    if h.shape[0] == 0:
        return np.zeros(0)
    return rates_from_gains(gain_matrix(h, t), noise_power)


def sum_rate(h: np.ndarray, t: np.ndarray, noise_power: float) -> float:
    """Sum of :func:`user_rates` [bit/s/Hz]."""
    return float(user_rates(h, t, noise_power).sum())


def effective_rate(rate, t_coherence: float, t_delay: float):
    """Rate left after alignment overhead: ``rate * max(0, 1 - t_delay / t_coherence)``.

    Args:
        rate: instantaneous (sum) rate [bit/s/Hz], scalar or array.
        t_coherence: beam coherence time [s], > 0.
        t_delay: alignment delay [s], >= 0.
    """
    check.positive("t_coherence", t_coherence)
    check.non_negative("t_delay", t_delay)
    factor = max(0.0, 1.0 - t_delay / t_coherence)
    if np.ndim(rate):
        return check.finite_array("rate", np.asarray(rate, dtype=float)) * factor
    return check.finite("rate", rate) * factor


def precoders(codebook: np.ndarray, beams: np.ndarray, powers: np.ndarray) -> np.ndarray:
    """Precoder matrix ``T`` (Nt, K) from beam indices and powers.

    Args:
        codebook: (Nt, W) complex, unit-norm columns.
        beams: (K,) int beam index per vehicle; -1 = not served.
        powers: (K,) transmit power per vehicle [W]; ignored where ``beams == -1``.
    """
    beams = np.asarray(beams, dtype=int)
    powers = np.asarray(powers, dtype=float)
    if beams.shape != powers.shape or beams.ndim != 1:
        raise ValueError(f"beams and powers must both have shape (K,), got {beams.shape} and {powers.shape}")
    if np.any(powers < 0):
        raise ValueError("powers must be >= 0")
    if np.any(beams >= codebook.shape[1]) or np.any(beams < -1):
        raise ValueError(f"beams must be in [-1, {codebook.shape[1] - 1}]")
    served = beams >= 0
    t = np.zeros((codebook.shape[0], beams.size), dtype=complex)
    t[:, served] = codebook[:, beams[served]] * np.sqrt(powers[served])
    return t


def rss_vector(h: np.ndarray, codebook: np.ndarray, tx_power: float = 1.0) -> np.ndarray:
    """Received signal strength of every codebook beam [W], shape (K, W).

    ``r_k[i] = tx_power * |h_k^H c_i|^2``.
    """
    h = _as_channel_matrix(h)
    check.non_negative("tx_power", tx_power)
    return tx_power * np.abs(h.conj() @ codebook) ** 2


def binary_feedback(rss: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """W-bit feedback ``v_k[i] = 1(r_k[i] > threshold)``, shape like ``rss``, dtype uint8."""
    check.non_negative("threshold", threshold)
    return (np.asarray(rss) > threshold).astype(np.uint8)


def feedback_adjacency(feedback: np.ndarray) -> np.ndarray:
    """Feedback-graph adjacency, (K, K) bool: edge i-j (i != j) when ``v_i . v_j >= 1``."""
    v = np.asarray(feedback, dtype=np.int64)
    if v.ndim != 2:
        raise ValueError(f"feedback must have shape (K, W), got {v.shape}")
    adjacency = (v @ v.T) >= 1
    np.fill_diagonal(adjacency, False)
    return adjacency


# ------------------------------------------------------------ feedback prediction
def _feedback_pair(predicted: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predicted = np.asarray(predicted) > 0.5
    true = np.asarray(true) > 0.5
    if predicted.shape != true.shape or predicted.ndim != 2:
        raise ValueError(f"predicted and true feedback must both have shape (N, W), got {predicted.shape} and {true.shape}")
    return predicted, true


def bit_accuracy(predicted: np.ndarray, true: np.ndarray) -> float:
    """Share of feedback bits predicted correctly, over all N x W bits."""
    predicted, true = _feedback_pair(predicted, true)
    return float((predicted == true).mean()) if predicted.size else float("nan")


def exact_match_accuracy(predicted: np.ndarray, true: np.ndarray) -> float:
    """Share of samples whose whole W-bit feedback vector is right."""
    predicted, true = _feedback_pair(predicted, true)
    return float((predicted == true).all(axis=1).mean()) if len(predicted) else float("nan")


def top1_beam_hit(scores: np.ndarray, rss: np.ndarray) -> float:
    """Share of samples (with some beam heard) whose highest-scoring beam is the
    strongest true beam; ``scores`` and ``rss`` are (N, W)."""
    scores, rss = np.asarray(scores), np.asarray(rss)
    if scores.shape != rss.shape or scores.ndim != 2:
        raise ValueError(f"scores and rss must both have shape (N, W), got {scores.shape} and {rss.shape}")
    heard = rss.max(axis=1) > 0
    if not heard.any():
        return float("nan")
    return float((scores[heard].argmax(axis=1) == rss[heard].argmax(axis=1)).mean())


# ------------------------------------------------------------ data imbalance (seed 002, Sec. IV)
def label_overlap(feedback_per_vehicle: list[np.ndarray]) -> float:
    """Label overlap proportion ``zeta`` (Eq. 17): mean over vehicle pairs of the summed
    minimum of their normalised label-combination histograms. 1 = identical label
    distributions, 0 = no label combination in common.

    Args:
        feedback_per_vehicle: one (N_k, W) 0/1 array per vehicle (K >= 2, N_k >= 1).
    """
    if len(feedback_per_vehicle) < 2:
        raise ValueError("label_overlap needs at least two vehicles")
    histograms = []
    for k, feedback in enumerate(feedback_per_vehicle):
        rows = np.asarray(feedback) > 0.5
        if rows.ndim != 2 or len(rows) == 0:
            raise ValueError(f"feedback_per_vehicle[{k}] must be a non-empty (N, W) array, got shape {rows.shape}")
        keys, counts = np.unique(np.packbits(rows, axis=1), axis=0, return_counts=True)
        histograms.append({key.tobytes(): count / len(rows) for key, count in zip(keys, counts)})
    total, pairs = 0.0, 0
    for i in range(len(histograms)):
        for j in range(i + 1, len(histograms)):
            a, b = histograms[i], histograms[j]
            total += sum(min(share, b[key]) for key, share in a.items() if key in b)
            pairs += 1
    return total / pairs


def modality_completeness(sample_counts: np.ndarray) -> np.ndarray:
    """Modality completeness ``kappa^q`` (Eq. 15), averaged over vehicles.

    Args:
        sample_counts: (K, Q) samples of each modality q held by each vehicle k.
    Returns:
        (Q,) mean over vehicles of ``N_k^q / max_q N_k^q`` (vehicles with no data count 0).
    """
    counts = np.asarray(sample_counts, dtype=float)
    if counts.ndim != 2 or np.any(counts < 0):
        raise ValueError(f"sample_counts must be a non-negative (K, Q) array, got shape {counts.shape}")
    peak = counts.max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(peak > 0, counts / np.where(peak > 0, peak, 1), 0.0)
    return ratio.mean(axis=0)


def power_offset_db_for_rate(snr: np.ndarray, target_rate: float, *, low_db: float = -100.0,
                             high_db: float = 100.0, tol_db: float = 1e-6) -> float:
    """Gain ``g`` [dB] such that the mean of ``log2(1 + 10^(g/10) snr)`` over the samples
    equals ``target_rate`` [bit/s/Hz] (single-user rates of ``snr`` (N,) linear SNRs with
    every sample's gain raised by ``g`` dB, e.g. more transmit power or array gain).
    The mean rate grows strictly with ``g``, so bisection finds the unique answer."""
    snr = np.asarray(snr, dtype=float)
    if snr.size == 0 or not np.all(np.isfinite(snr)) or np.any(snr < 0):
        raise ValueError("snr must be a non-empty array of finite values >= 0")
    if not np.any(snr > 0):
        raise ValueError("snr: every sample is silent (0); no gain reaches a rate")
    if not (math.isfinite(target_rate) and target_rate > 0):
        raise ValueError(f"target_rate must be a finite rate > 0 [bit/s/Hz], got {target_rate}")

    def mean_rate(gain_db: float) -> float:
        return float(np.mean(shannon_rate(db_to_linear(gain_db) * snr, 0.0, 1.0)))

    if not mean_rate(low_db) <= target_rate <= mean_rate(high_db):
        raise ValueError(f"target_rate {target_rate} bit/s/Hz is out of reach within "
                         f"[{low_db}, {high_db}] dB of gain")
    while high_db - low_db > tol_db:
        middle = 0.5 * (low_db + high_db)
        low_db, high_db = (middle, high_db) if mean_rate(middle) < target_rate else (low_db, middle)
    return 0.5 * (low_db + high_db)
