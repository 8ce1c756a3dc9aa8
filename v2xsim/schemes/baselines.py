"""Classical schemes: genie oracle, ZF with beam sweeping, WMMSE with channel estimation
(seed 002, Section V-C)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.optimize import nnls

from v2xsim import checks as check
from v2xsim.schemes.base import Allocation, Observation, Scheme, index_bits
from v2xsim.schemes.solvers import beam_space_channel, optimise_allocation
from v2xsim.channel.codebook import ula_response
from v2xsim.registry import SCHEME


def _require(observation: Observation, name: str) -> np.ndarray:
    value = getattr(observation, name)
    if value is None:
        raise ValueError(f"observation.{name} is required by this scheme")
    return np.asarray(value)


@SCHEME.register("oracle")
class Oracle(Scheme):
    """Upper bound: perfect CSI, zero alignment delay, joint beam selection (greedy
    coordinate ascent from several starts) and WMMSE power control."""

    name = "oracle"
    acquisition = "none"
    needs_csi = True

    def __init__(self, *, rounds: int = 4, wmmse_iters: int = 200) -> None:
        self.rounds = check.positive_int("rounds", rounds)
        self.wmmse_iters = check.positive_int("wmmse_iters", wmmse_iters)
        self._estimator = WMMSEChannelEstimation()

    def feedback_bits(self, num_beams: int) -> int:
        return 0

    def allocate(self, observation: Observation) -> Allocation:
        h = _require(observation, "channels")
        if h.shape[0] == 0:
            return Allocation.empty()
        beam_space = beam_space_channel(h, observation.codebook)
        # the sweep-based schemes' decisions are extra starting points, so the genie is
        # never worse than what they would pick on the same channel
        rss = observation.p_max * np.abs(beam_space) ** 2
        sweep = ZFSweep().allocate(_with(observation, rss=rss))
        estimated = self._estimator.allocate(_with(observation, rss=rss))
        beams, powers, _ = optimise_allocation(
            beam_space, observation.p_max, observation.noise_power,
            starts=[(sweep.beams, sweep.powers), (estimated.beams, estimated.powers)],
            rounds=self.rounds, wmmse_iters=self.wmmse_iters,
        )
        return Allocation(beams, powers)


@SCHEME.register("zf_sweep")
class ZFSweep(Scheme):
    """Exhaustive sweep; each vehicle feeds back the index of its strongest beam; the RSU
    serves every vehicle that heard a beam with equal power.

    The RSU knows only beam indices, no channel, so zero-forcing across the chosen
    codebook beams reduces to serving them as they are.
    """

    name = "zf_sweep"
    acquisition = "sweep"

    def feedback_bits(self, num_beams: int) -> int:
        return index_bits(num_beams)

    def allocate(self, observation: Observation) -> Allocation:
        rss = _require(observation, "rss")
        if rss.shape[0] == 0:
            return Allocation.empty()
        beams = np.argmax(rss, axis=1)
        heard = rss[np.arange(len(beams)), beams] > observation.feedback_threshold
        beams = np.where(heard, beams, -1)
        served = int(heard.sum())
        powers = np.where(heard, observation.p_max / max(served, 1), 0.0)
        return Allocation(beams, powers)


@SCHEME.register("wmmse_ce")
class WMMSEChannelEstimation(Scheme):
    """Sweep, quantised RSS feedback of all W beams, channel estimated from the RSS
    pattern by greedy matching of single-path beam patterns, then joint beam selection
    and WMMSE power control on the estimate.

    Args:
        max_paths: paths the greedy estimator may fit per vehicle.
        grid_factor: angular grid points per codebook beam in the estimator.
        residual_fraction: stop adding paths once the unexplained RSS energy is below this.
        quantise: quantise RSS in dB before use (the RSU sees what was fed back).
        quantisation_bits: bits per RSS value (34 x 13 = 442 bits, Table I of seed 002).
        dynamic_range_db: range of the dB quantiser above the sensitivity [dB].
    """

    name = "wmmse_ce"
    acquisition = "sweep"

    def __init__(self, *, max_paths: int = 3, grid_factor: int = 8, residual_fraction: float = 0.02,
                 quantise: bool = True, dynamic_range_db: float = 100.0, rounds: int = 4,
                 quantisation_bits: int = 13) -> None:
        self.max_paths = check.positive_int("max_paths", max_paths)
        self.grid_factor = check.positive_int("grid_factor", grid_factor)
        self.residual_fraction = check.non_negative("residual_fraction", residual_fraction)
        self.quantise = bool(quantise)
        self.dynamic_range_db = check.positive("dynamic_range_db", dynamic_range_db)
        self.rounds = check.positive_int("rounds", rounds)
        self.quantisation_bits = check.positive_int("quantisation_bits", quantisation_bits)
        self._dictionary_cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def feedback_bits(self, num_beams: int) -> int:
        return num_beams * self.quantisation_bits

    # ------------------------------------------------------------------ pieces
    def quantised(self, rss: np.ndarray, threshold: float) -> np.ndarray:
        """RSS as the RSU receives it: 0 below the sensitivity, otherwise rounded to one of
        ``2^bits - 1`` levels spread evenly in dB over ``dynamic_range_db``."""
        floor = threshold if threshold > 0 else max(float(rss.max(initial=0.0)), 1e-300) * 10 ** (-self.dynamic_range_db / 10)
        heard = rss > floor
        if not self.quantise:
            return np.where(heard, rss, 0.0)
        levels = 2 ** self.quantisation_bits - 1
        step = self.dynamic_range_db / levels
        with np.errstate(divide="ignore"):
            rel_db = 10 * np.log10(np.where(heard, rss, floor) / floor)
        code = np.clip(np.round(rel_db / step), 0, levels)
        return np.where(heard, floor * 10 ** (code * step / 10), 0.0)

    def _dictionary(self, codebook: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Angle grid (G,) in sin-space and single-path patterns ``|a(s)^H c_w|^2`` (G, W)."""
        key = (codebook.shape[0], codebook.shape[1])
        if key not in self._dictionary_cache:
            grid = np.linspace(-1.0, 1.0, self.grid_factor * codebook.shape[1] + 1)
            patterns = np.abs(ula_response(codebook.shape[0], grid).conj() @ codebook) ** 2
            self._dictionary_cache[key] = (grid, patterns)
        return self._dictionary_cache[key]

    def estimate_channels(self, rss: np.ndarray, codebook: np.ndarray, p_max: float) -> np.ndarray:
        """Channel estimate (K, Nt) from RSS (K, W) measured with beams sent at ``p_max``.

        Greedy: repeatedly pick the grid angle whose beam pattern best matches the
        unexplained RSS, refit all picked path powers by non-negative least squares.
        Relative path phases are unobservable from RSS and set to zero.
        """
        grid, patterns = self._dictionary(codebook)
        norms = np.linalg.norm(patterns, axis=1)
        estimate = np.zeros((rss.shape[0], codebook.shape[0]), dtype=complex)
        for k, target in enumerate(rss / p_max):
            energy = float(target @ target)
            if energy == 0:
                continue
            picked: list[int] = []
            residual = target.copy()
            weights = np.zeros(0)
            for _ in range(self.max_paths):
                score = patterns @ residual / norms
                score[picked] = -np.inf
                picked.append(int(np.argmax(score)))
                weights, _ = nnls(patterns[picked].T, target)
                residual = target - weights @ patterns[picked]
                if residual @ residual <= self.residual_fraction * energy:
                    break
            estimate[k] = np.sqrt(weights) @ ula_response(codebook.shape[0], grid[picked])
        return estimate

    def allocate(self, observation: Observation) -> Allocation:
        rss = _require(observation, "rss")
        if rss.shape[0] == 0:
            return Allocation.empty()
        received = self.quantised(rss, observation.feedback_threshold)
        estimate = self.estimate_channels(received, observation.codebook, observation.p_max)
        beams, powers, _ = optimise_allocation(
            beam_space_channel(estimate, observation.codebook), observation.p_max,
            observation.noise_power, rounds=self.rounds,
        )
        return Allocation(beams, powers)


def _with(observation: Observation, **changes) -> Observation:
    return replace(observation, **changes)


__all__ = ["Oracle", "ZFSweep", "WMMSEChannelEstimation"]
