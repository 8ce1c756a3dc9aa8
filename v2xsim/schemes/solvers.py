"""Codebook-constrained beam and power optimisation (pure functions).

Notation: ``A`` (K, W) complex with ``A[k, w] = h_k^H c_w`` (the beam-space channel),
``beams`` (K,) int (-1 = not served), ``powers`` (K,) [W].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from v2xsim import checks as check
from v2xsim.metrics import rates_from_gains, shannon_rate


def beam_space_channel(h: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """``A[k, w] = h_k^H c_w``, shape (K, W)."""
    return np.asarray(h).conj() @ codebook


def selected_gains(beam_power: np.ndarray, beams: np.ndarray, powers: np.ndarray) -> np.ndarray:
    """Gain matrix ``G[k, i] = p_i |A[k, b_i]|^2`` (K, K); unserved columns are 0."""
    served = beams >= 0
    gains = np.zeros((len(beams), len(beams)))
    gains[:, served] = beam_power[:, beams[served]] * powers[served]
    return gains


def allocation_sum_rate(beam_power: np.ndarray, beams: np.ndarray, powers: np.ndarray,
                        noise_power: float) -> float:
    """Sum rate [bit/s/Hz] of an allocation, ``beam_power = |A|^2`` (K, W)."""
    if len(beams) == 0:
        return 0.0
    return float(rates_from_gains(selected_gains(beam_power, beams, powers), noise_power).sum())


@dataclass(frozen=True)
class WMMSEResult:
    """Output of :func:`wmmse_power`: powers (K,) [W] and the sum rate after each iteration
    (``history[0]`` is the initial point)."""

    powers: np.ndarray
    history: np.ndarray


def wmmse_power(
    gains_abs: np.ndarray,
    p_max: float,
    noise_power: float,
    *,
    init_powers: np.ndarray | None = None,
    max_iters: int = 200,
    tol: float = 1e-4,
) -> WMMSEResult:
    """Power control for fixed beams by the WMMSE algorithm (Shi et al., 2011), sum-power
    constraint ``sum p <= p_max``.

    Args:
        gains_abs: (K, K) magnitudes ``|h_k^H w_i|`` of the beam chosen for vehicle i
            as seen by vehicle k.
        p_max: power budget [W].
        noise_power: noise power [W].
        init_powers: starting powers (default: equal split).
        max_iters: iteration cap.
        tol: stop when one iteration changes the sum rate by less than this fraction.

    The returned powers are the best iterate, so the sum rate never ends below the
    initial point's.
    """
    check.positive("p_max", p_max)
    check.positive("noise_power", noise_power)
    g = np.asarray(gains_abs, dtype=float)
    num = g.shape[0]
    if num == 0:
        return WMMSEResult(np.zeros(0), np.zeros(1))
    direct = np.diag(g).copy()
    active = direct > 0
    if init_powers is None:
        powers = np.where(active, p_max / max(int(active.sum()), 1), 0.0)
    else:
        powers = np.asarray(init_powers, dtype=float).copy()
        if powers.sum() > p_max * (1 + 1e-9):
            powers *= p_max / powers.sum()
    g2 = g ** 2

    def rate(p: np.ndarray) -> float:
        return float(rates_from_gains(g2 * p[None, :], noise_power).sum())

    amp = np.sqrt(powers)
    best_powers, best_rate = powers.copy(), rate(powers)
    history = [best_rate]
    for _ in range(max_iters):
        received = g2 @ (amp ** 2) + noise_power  # (K,) total received power incl. noise
        u = direct * amp / received
        mse = 1.0 - u * direct * amp
        w = np.where(active, 1.0 / np.maximum(mse, 1e-12), 0.0)
        numer = w * u * direct
        weight = g2.T @ (w * u ** 2)  # sum_j w_j u_j^2 |g_jk|^2 for each k
        amp = _amplitudes_within_budget(numer, weight, p_max)
        current = rate(amp ** 2)
        previous = history[-1]
        history.append(current)
        if current > best_rate:
            best_rate, best_powers = current, amp ** 2
        if abs(current - previous) <= tol * max(abs(current), 1.0):
            break
    return WMMSEResult(best_powers, np.asarray(history))


def _amplitudes_within_budget(numer: np.ndarray, weight: np.ndarray, p_max: float) -> np.ndarray:
    """WMMSE transmit amplitudes ``numer / (weight + mu)`` with the smallest ``mu >= 0``
    that meets ``sum amp^2 <= p_max``.

    ``f(mu) = sum (numer / (weight + mu))^2 - p_max`` is convex and decreasing, so Newton's
    method started at ``mu = 0`` (left of the root) climbs to the root monotonically.
    """
    numer = np.where(numer > 0, numer, 0.0)
    weight = np.maximum(weight, 0.0)
    live = numer > 0
    if not np.any(live):
        return np.zeros_like(numer)
    n, w = numer[live], weight[live]
    mu = 0.0
    if np.any(w <= 0) or ((n / w) ** 2).sum() > p_max:
        mu = max(0.0, float(np.sqrt((n ** 2).sum() / p_max) - w.max()))  # f(mu) >= 0 here
        for _ in range(100):
            amp = n / (w + mu)
            excess = (amp ** 2).sum() - p_max
            if excess <= p_max * 1e-12:
                break
            slope = -2.0 * (amp ** 2 / (w + mu)).sum()
            mu -= excess / slope
    out = np.zeros_like(numer)
    out[live] = n / (w + mu)
    total = (out ** 2).sum()
    if total > p_max:  # rounding guard
        out *= np.sqrt(p_max / total)
    return out


def _improve_beams(beam_power: np.ndarray, beams: np.ndarray, powers: np.ndarray,
                   p_max: float, noise_power: float, allow_unserved: bool) -> tuple[np.ndarray, bool]:
    """One pass of coordinate ascent: each vehicle in turn takes the beam (or no beam) that
    maximises the sum rate with everyone else fixed. Returns (beams, changed)."""
    num, num_beams = beam_power.shape
    beams = beams.copy()
    changed = False
    for k in range(num):
        served = beams >= 0
        p_k = powers[k] if powers[k] > 0 else p_max / max(int(served.sum()) + (0 if served[k] else 1), 1)
        gains = selected_gains(beam_power, beams, powers)
        gains[:, k] = 0.0
        signal = np.diag(gains).copy()
        interference_others = gains.sum(axis=1) - signal  # without vehicle k's beam
        # candidate beams for k: (W,) rows; contribution to every vehicle j: p_k |A[j, w]|^2
        extra = p_k * beam_power.T  # (W, K)
        other = np.arange(num) != k
        rates_others = shannon_rate(signal[other], interference_others[other] + extra[:, other], noise_power)
        rate_k = shannon_rate(extra[:, k], interference_others[k], noise_power)
        totals = rates_others.sum(axis=1) + rate_k
        best = int(np.argmax(totals))
        best_total = totals[best]
        choice = best
        if allow_unserved:
            none_total = shannon_rate(signal[other], interference_others[other], noise_power).sum()
            if none_total > best_total + 1e-12:
                choice, best_total = -1, none_total
        current = beams[k]
        current_total = (totals[current] if current >= 0 else
                         shannon_rate(signal[other], interference_others[other], noise_power).sum())
        if choice != current and best_total > current_total + 1e-9:
            beams[k] = choice
            if choice >= 0 and powers[k] == 0:
                powers = powers.copy()
                powers[k] = p_k
            changed = True
    return beams, changed


def optimise_allocation(
    beam_space: np.ndarray,
    p_max: float,
    noise_power: float,
    *,
    starts: list[tuple[np.ndarray, np.ndarray | None]] | None = None,
    rounds: int = 4,
    allow_unserved: bool = True,
    wmmse_iters: int = 200,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Joint beam selection and power control: greedy coordinate ascent over beams
    alternated with WMMSE power control, from several starting points.

    Args:
        beam_space: ``A`` (K, W) complex beam-space channel.
        p_max: power budget [W].
        noise_power: noise power [W].
        starts: extra starting points ``(beams (K,), powers (K,) or None)``; None means
            equal power. The strongest beam per vehicle and the best single vehicle alone
            are always tried.
        rounds: beam / power alternations per start.
        allow_unserved: a vehicle may be left unserved when that raises the sum rate.

    Returns:
        beams (K,), powers (K,) [W], sum rate [bit/s/Hz] (evaluated on ``beam_space``).
        Never below the sum rate of any starting point.
    """
    beam_power = np.abs(beam_space) ** 2
    num = beam_power.shape[0]
    if num == 0:
        return np.zeros(0, dtype=int), np.zeros(0), 0.0
    strongest = np.argmax(beam_power, axis=1)
    # the best single-vehicle allocation is a start too: at low SNR it can be optimal
    single = np.full(num, -1)
    best_vehicle = int(np.argmax(beam_power.max(axis=1)))
    single[best_vehicle] = strongest[best_vehicle]
    candidates: list[tuple[np.ndarray, np.ndarray]] = []
    for beams, powers in [(strongest, None), (single, None)] + list(starts or []):
        beams = np.asarray(beams, dtype=int)
        served = beams >= 0
        if powers is None:
            powers = np.where(served, p_max / max(int(served.sum()), 1), 0.0)
        powers = np.where(served, np.asarray(powers, dtype=float), 0.0)
        if powers.sum() > p_max * (1 + 1e-9):
            raise ValueError(f"starts: powers sum to {powers.sum()} > p_max = {p_max}")
        if not any(np.array_equal(beams, b) and np.array_equal(powers, p) for b, p in candidates):
            candidates.append((beams, powers))
    best = (candidates[0][0], candidates[0][1], -np.inf)
    for beams, powers in candidates:
        beams, powers = beams.copy(), powers.copy()
        rate = allocation_sum_rate(beam_power, beams, powers, noise_power)
        if rate > best[2]:
            best = (beams.copy(), powers.copy(), rate)
        for _ in range(rounds):
            beams, changed = _improve_beams(beam_power, beams, powers, p_max, noise_power, allow_unserved)
            served = beams >= 0
            if powers[served].sum() == 0 or np.any(powers[served] == 0):
                powers = np.where(served, p_max / max(int(served.sum()), 1), 0.0)
            powers = np.where(served, powers, 0.0)
            g_abs = np.sqrt(selected_gains(beam_power, beams, np.ones(num)))
            powers = wmmse_power(g_abs, p_max, noise_power, init_powers=powers, max_iters=wmmse_iters).powers
            rate = allocation_sum_rate(beam_power, beams, powers, noise_power)
            if rate > best[2] + 1e-12:
                best = (beams.copy(), powers.copy(), rate)
            if not changed:
                break
    beams, powers, rate = best
    beams = np.where(powers > 1e-12 * p_max, beams, -1)
    return beams, np.where(beams >= 0, powers, 0.0), float(rate)
