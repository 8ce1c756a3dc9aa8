"""Beam, precoder and power optimisation (pure functions).

Notation: ``h`` (K, Nt) complex channels (row k is ``h_k``), ``A`` (K, W) complex with
``A[k, w] = h_k^H c_w`` (the beam-space channel), ``beams`` (K,) int (-1 = not served),
``powers`` (K,) [W], precoders ``V`` (Nt, K) complex including sqrt(power).

Two families live here:

- the WMMSE algorithm of Shi, Razaviyayn, Luo and He (2011) for a MISO broadcast channel
  with single-antenna receivers and a total power budget, in the precoder domain
  (:func:`wmmse_precoders`) and with fixed beams over the powers only
  (:func:`wmmse_power`), plus the pieces that turn a free precoder into a codebook beam
  (:func:`snap_to_codebook`, :func:`refit_powers`) -- the ``wmmse_ce`` baseline;
- a codebook-aware joint search (:func:`optimise_allocation`): greedy coordinate ascent
  over beams alternated with WMMSE power control from several starts -- ``wmmse_cb`` and
  the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from v2xsim import checks as check
from v2xsim.metrics import gain_matrix, rates_from_gains, shannon_rate


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
    mu = _budget_multiplier(n, w, p_max)
    out = np.zeros_like(numer)
    out[live] = n / (w + mu)
    total = (out ** 2).sum()
    if total > p_max:  # rounding guard
        out *= np.sqrt(p_max / total)
    return out


def _budget_multiplier(numer: np.ndarray, weight: np.ndarray, p_max: float) -> float:
    """Smallest ``mu >= 0`` with ``sum (numer / (weight + mu))^2 <= p_max`` (up to a relative
    1e-12), for ``numer > 0`` and ``weight >= 0``: the Lagrange multiplier of the power
    budget in a WMMSE transmit update.

    ``f(mu) = sum (numer / (weight + mu))^2 - p_max`` is convex and decreasing, so Newton's
    method started left of the root climbs to it monotonically.
    """
    n, w = numer, weight
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
    return mu


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


# ------------------------------------------------------------ precoder-domain WMMSE
@dataclass(frozen=True)
class PrecoderWMMSEResult:
    """Output of :func:`wmmse_precoders`: precoders (Nt, K) including sqrt(power), and the
    sum rate [bit/s/Hz] on the given channel after each iteration (``history[0]`` is the
    initial point)."""

    precoders: np.ndarray
    history: np.ndarray


def matched_filter_precoders(h: np.ndarray, p_max: float) -> np.ndarray:
    """Maximum-ratio precoders ``sqrt(p_max / K') h_k / ||h_k||`` (Nt, K): the budget split
    evenly over the K' vehicles with a non-zero channel; zero columns for the others."""
    check.positive("p_max", p_max)
    h = np.asarray(h, dtype=complex)
    norms = np.linalg.norm(h, axis=1)
    live = norms > 0
    v = np.zeros((h.shape[1], h.shape[0]), dtype=complex)
    if np.any(live):
        v[:, live] = (h[live] / norms[live, None]).T * np.sqrt(p_max / int(live.sum()))
    return v


def random_precoders(h: np.ndarray, p_max: float, rng: np.random.Generator) -> np.ndarray:
    """Random precoders (Nt, K): complex Gaussian columns for the vehicles with a non-zero
    channel (zero columns for the others), scaled to spend exactly ``p_max``."""
    check.positive("p_max", p_max)
    h = np.asarray(h, dtype=complex)
    live = np.linalg.norm(h, axis=1) > 0
    shape = (h.shape[1], h.shape[0])
    v = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * live[None, :]
    total = float(np.sum(np.abs(v) ** 2))
    return v * np.sqrt(p_max / total) if total > 0 else v


def precoder_sum_rate(h: np.ndarray, precoders: np.ndarray, noise_power: float) -> float:
    """Sum rate [bit/s/Hz] of precoders (Nt, K) on channels (K, Nt) (the one SINR of
    :mod:`v2xsim.metrics`)."""
    if np.asarray(h).shape[0] == 0:
        return 0.0
    return float(rates_from_gains(gain_matrix(h, precoders), noise_power).sum())


def wmmse_precoders(
    h: np.ndarray,
    p_max: float,
    noise_power: float,
    *,
    init: np.ndarray | None = None,
    max_iters: int = 100,
    tol: float = 1e-4,
) -> PrecoderWMMSEResult:
    """Sum-rate WMMSE precoding (Shi, Razaviyayn, Luo, He 2011, Algorithm 1) for a MISO
    broadcast channel: K single-antenna receivers, total power budget
    ``sum_k ||v_k||^2 <= p_max``.

    With ``y_k = h_k^H x + n_k`` and ``J_k = sum_j |h_k^H v_j|^2 + sigma^2``, one iteration
    updates, in turn,

    - the MMSE receivers ``u_k = h_k^H v_k / J_k``,
    - the MSE weights ``w_k = 1 / e_k`` with ``e_k = 1 - |h_k^H v_k|^2 / J_k = 1 / (1 + SINR_k)``,
    - the precoders ``v_k = w_k u_k (A + mu I)^-1 h_k``, ``A = sum_j w_j |u_j|^2 h_j h_j^H``,
      with the smallest ``mu >= 0`` that meets the budget.

    Each step minimises the weighted MSE sum over one block, so the sum rate
    ``sum_k -log2 e_k`` never decreases (Shi et al., Theorem 3); iterations stop when it
    changes by less than ``tol`` (relative) or after ``max_iters``. ``(A + mu I)^-1`` is a
    pseudo-inverse: ``h_k`` of every served vehicle lies in the range of ``A``, so the
    directions ``A`` does not see carry no signal. A vehicle whose precoder starts at zero
    (or whose channel is zero) stays unserved.

    Args:
        h: (K, Nt) complex channels.
        p_max: power budget [W].
        noise_power: receiver noise power [W].
        init: (Nt, K) starting precoders (default :func:`matched_filter_precoders`);
            rescaled onto the budget if they exceed it.
        max_iters: iteration cap.
        tol: relative change of the sum rate that ends the iterations.

    Returns:
        the last iterate and the sum rate after every iteration.
    """
    check.positive("p_max", p_max)
    check.positive("noise_power", noise_power)
    check.positive_int("max_iters", max_iters)
    check.non_negative("tol", tol)
    h = np.asarray(h, dtype=complex)
    if h.ndim != 2:
        raise ValueError(f"h must have shape (K, Nt), got {h.shape}")
    num, num_antennas = h.shape
    v = matched_filter_precoders(h, p_max) if init is None else np.array(init, dtype=complex)
    if v.shape != (num_antennas, num):
        raise ValueError(f"init must have shape (Nt={num_antennas}, K={num}), got {v.shape}")
    check.finite_array("init", v)
    if num == 0:
        return PrecoderWMMSEResult(v, np.zeros(1))
    spent = float(np.sum(np.abs(v) ** 2))
    if spent > p_max:
        v = v * np.sqrt(p_max / spent)
    # scaled problem: unit noise and unit budget (rates unchanged), well-conditioned numbers
    hs = h * np.sqrt(p_max / noise_power)
    vs = v / np.sqrt(p_max)
    history = [precoder_sum_rate(hs, vs, 1.0)]
    for _ in range(max_iters):
        cross = hs.conj() @ vs  # cross[k, j] = hs_k^H v_j
        total = np.sum(np.abs(cross) ** 2, axis=1) + 1.0  # J_k
        direct = np.diagonal(cross).copy()
        u = direct / total
        error = np.maximum(1.0 - np.abs(direct) ** 2 / total, 1e-300)
        served = np.abs(u) > 0
        w = np.where(served, 1.0 / error, 0.0)
        covariance = (hs.T * (w * np.abs(u) ** 2)) @ hs.conj()  # A (Nt, Nt)
        targets = hs.T * (w * u)  # column k: w_k u_k h_k
        eigenvalues, basis = np.linalg.eigh(covariance)
        projected = basis.conj().T @ targets
        energy = np.sum(np.abs(projected) ** 2, axis=1)
        seen = (eigenvalues > 1e-12 * max(float(eigenvalues.max()), 0.0)) & (energy > 0)
        vs = np.zeros_like(vs)
        if np.any(seen):
            mu = _budget_multiplier(np.sqrt(energy[seen]), eigenvalues[seen], 1.0)
            vs = basis[:, seen] @ (projected[seen] / (eigenvalues[seen] + mu)[:, None])
            spent = float(np.sum(np.abs(vs) ** 2))
            if spent > 1.0:  # rounding guard
                vs /= np.sqrt(spent)
        history.append(precoder_sum_rate(hs, vs, 1.0))
        if abs(history[-1] - history[-2]) <= tol * max(abs(history[-1]), 1.0):
            break
    return PrecoderWMMSEResult(vs * np.sqrt(p_max), np.asarray(history))


def snap_to_codebook(precoders: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Codebook beam nearest to each precoder's direction: ``argmax_b |v_k^H c_b|`` (the
    beam with the largest correlation with ``v_k / ||v_k||``), shape (K,); -1 where the
    precoder is zero. Ties go to the lower beam index."""
    v = np.asarray(precoders)
    codebook = np.asarray(codebook)
    if v.ndim != 2 or codebook.ndim != 2 or v.shape[0] != codebook.shape[0]:
        raise ValueError(f"precoders (Nt, K) and codebook (Nt, W) must share Nt, got {v.shape} and {codebook.shape}")
    if v.shape[1] == 0:
        return np.zeros(0, dtype=int)
    correlation = np.abs(codebook.conj().T @ v)  # (W, K)
    beams = np.argmax(correlation, axis=0)
    return np.where(np.linalg.norm(v, axis=0) > 0, beams, -1)


def refit_powers(
    beam_space: np.ndarray,
    beams: np.ndarray,
    p_max: float,
    noise_power: float,
    *,
    init_powers: np.ndarray | None = None,
    max_iters: int = 200,
    tol: float = 1e-4,
) -> WMMSEResult:
    """Powers for fixed codebook beams by WMMSE power control (:func:`wmmse_power`) on the
    beam-space channel ``A`` (K, W): ``sum p <= p_max``, ``p >= 0``, 0 for unserved vehicles.

    Args:
        beam_space: ``A[k, w] = h_k^H c_w`` (K, W).
        beams: (K,) codebook index per vehicle, -1 = not served.
        p_max: power budget [W].
        noise_power: noise power [W].
        init_powers: (K,) starting powers (default: equal split over the served vehicles);
            a served vehicle that starts at 0 stays at 0.
        max_iters, tol: as in :func:`wmmse_power`.
    """
    beam_power = np.abs(np.asarray(beam_space)) ** 2
    beams = np.asarray(beams, dtype=int)
    if beams.shape != (beam_power.shape[0],):
        raise ValueError(f"beams must have shape (K,) = ({beam_power.shape[0]},), got {beams.shape}")
    served = beams >= 0
    if init_powers is not None:
        init_powers = np.where(served, np.asarray(init_powers, dtype=float), 0.0)
        if np.any(~np.isfinite(init_powers)) or np.any(init_powers < 0):
            raise ValueError("init_powers must be finite and >= 0")
    g_abs = np.sqrt(selected_gains(beam_power, beams, served.astype(float)))
    result = wmmse_power(g_abs, p_max, noise_power, init_powers=init_powers, max_iters=max_iters, tol=tol)
    return WMMSEResult(np.where(served, result.powers, 0.0), result.history)


def snapped_wmmse_allocation(
    h: np.ndarray,
    codebook: np.ndarray,
    p_max: float,
    noise_power: float,
    *,
    init: np.ndarray | None = None,
    max_iters: int = 100,
    power_iters: int = 200,
    tol: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray]:
    """Codebook allocation from free precoders: :func:`wmmse_precoders` on ``h`` (K, Nt),
    each precoder snapped to its nearest beam (:func:`snap_to_codebook`), powers refitted
    for those beams by :func:`refit_powers` starting from the precoders' powers
    ``||v_k||^2``. Vehicles left with no power (below ``1e-12 p_max``) are unserved.

    Returns:
        beams (K,) (-1 = not served), powers (K,) [W] with ``sum <= p_max``.
    """
    precoders = wmmse_precoders(h, p_max, noise_power, init=init, max_iters=max_iters, tol=tol).precoders
    beams = snap_to_codebook(precoders, codebook)
    powers = refit_powers(beam_space_channel(h, codebook), beams, p_max, noise_power,
                          init_powers=np.sum(np.abs(precoders) ** 2, axis=0), max_iters=power_iters,
                          tol=tol).powers
    beams = np.where(powers > 1e-12 * p_max, beams, -1)
    return beams, np.where(beams >= 0, powers, 0.0)
