"""Fast geometric 60 GHz channel: LoS, ground and wall reflections, point scatterers,
box blockage. Vectorised over vehicles and paths, and with
:meth:`GeometricChannel.channels_along` over the instants of one world tick (blockage
decided at the tick, every other quantity at each instant), so the engine can follow the
two-ray fading between ticks (:mod:`v2xsim.sim.resolution`) at little extra cost.

Each path's complex gain is ``sqrt(G) * lambda / (4 pi L) * 10^(-(A + O L) / 20) *
exp(-j 2 pi L / lambda)`` with ``L`` the unfolded path length [m], ``A`` the sum of the
path's reflection / scattering / blockage losses [dB] and ``O`` oxygen absorption [dB/m].
The departure angle seen by the ULA (axis x) is ``sin(theta) = dx / |d|`` of the first
leg of the path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from v2xsim import checks as check
from v2xsim.channel.base import SPEED_OF_LIGHT, ChannelModel
from v2xsim.channel.codebook import DEFAULT_NUM_ANTENNAS, ula_response
from v2xsim.registry import CHANNEL
from v2xsim.geometry import OBSTACLE_KINDS, Boxes, RoadLayout, segment_hits

#: default penetration loss [dB] per obstacle class at 60 GHz
DEFAULT_BLOCKAGE_DB: dict[str, float] = {
    "car": 15.0,
    "truck": 30.0,
    "pedestrian": 20.0,
    "parked_car": 15.0,
}


@dataclass(frozen=True)
class Paths:
    """Per-path description of a snapshot, K vehicles x P paths.

    Attributes:
        gain: (K, P) complex path gains.
        sin_aod: (K, P) sine of the departure angle at the RSU.
        length: (K, P) unfolded path lengths [m].
        blockage_db: (K, P) total blockage loss [dB] (0 = unblocked).
        names: (P,) path labels: "los", "ground", "wall0", "wall1", "scatter<i>".
    """

    gain: np.ndarray
    sin_aod: np.ndarray
    length: np.ndarray
    blockage_db: np.ndarray
    names: tuple[str, ...]


@CHANNEL.register("geometric")
class GeometricChannel(ChannelModel):
    """Built-in geometric 60 GHz backend (implements :class:`ChannelModel`).

    Args:
        layout: road geometry (RSU position, lanes, walls).
        num_antennas: RSU ULA elements Nt.
        carrier_hz: carrier frequency [Hz].
        seed: seeds the scatterer placement; same seed -> same channels.
        oxygen_db_per_km: atmospheric absorption [dB/km] (about 15 at 60 GHz).
        ground_reflection: include the ground bounce.
        ground_loss_db: ground reflection loss [dB].
        wall_loss_db: building-wall reflection loss [dB].
        num_scatterers: point scatterers (signs, poles, facades) placed at random.
        scatter_loss_db: extra loss of a scattered path [dB].
        blockage_db: penetration loss per obstacle class [dB]; missing classes use defaults.
        antenna_gain_dbi: combined element gain of RSU element and vehicle antenna [dBi].
    """

    #: one vectorised evaluation for all instants of a world tick (:meth:`channels_along`)
    vectorised_tracks = True
    #: phase flip of the ground bounce at grazing incidence
    GROUND_REFLECTION_SIGN = -1.0
    #: height range of the point scatterers (signs, poles, facades) [m]
    SCATTERER_HEIGHT_M = (0.5, 6.0)

    def __init__(
        self,
        *,
        layout: RoadLayout | None = None,
        num_antennas: int = DEFAULT_NUM_ANTENNAS,
        carrier_hz: float = 60e9,
        seed: int = 0,
        oxygen_db_per_km: float = 15.0,
        ground_reflection: bool = True,
        ground_loss_db: float = 6.0,
        wall_loss_db: float = 8.0,
        num_scatterers: int = 4,
        scatter_loss_db: float = 15.0,
        blockage_db: dict[str, float] | None = None,
        antenna_gain_dbi: float = 0.0,
    ) -> None:
        self.layout = layout or RoadLayout()
        self.num_antennas = check.positive_int("num_antennas", num_antennas)
        self.carrier_hz = check.positive("carrier_hz", carrier_hz)
        self.wavelength = SPEED_OF_LIGHT / self.carrier_hz
        self.oxygen_db_per_m = check.non_negative("oxygen_db_per_km", oxygen_db_per_km) / 1000.0
        self.ground_reflection = bool(ground_reflection)
        self.ground_loss_db = check.non_negative("ground_loss_db", ground_loss_db)
        self.wall_loss_db = check.non_negative("wall_loss_db", wall_loss_db)
        if int(num_scatterers) != num_scatterers or num_scatterers < 0:
            raise ValueError(f"num_scatterers must be an integer >= 0, got {num_scatterers!r}")
        self.scatter_loss_db = check.non_negative("scatter_loss_db", scatter_loss_db)
        self.antenna_gain_dbi = check.finite("antenna_gain_dbi", antenna_gain_dbi)
        losses = dict(DEFAULT_BLOCKAGE_DB)
        if not isinstance(blockage_db or {}, dict):
            raise ValueError(f"blockage_db must be a table of losses [dB] per obstacle class, got {blockage_db!r}")
        for name, value in (blockage_db or {}).items():
            if name not in losses:
                raise ValueError(f"blockage_db: unknown obstacle class {name!r}; valid: {', '.join(OBSTACLE_KINDS)}")
            losses[name] = check.non_negative(f"blockage_db.{name}", value)
        self.blockage_db = losses
        self._loss_by_code = np.array([losses[name] for name in OBSTACLE_KINDS])
        self.seed = int(seed)
        self.scatterers = self._place_scatterers(np.random.default_rng(self.seed), int(num_scatterers))
        #: (obstacles, reference, rx_ids, blockage (K, P) [dB]) of the last
        #: :meth:`channels_along`: later instants of the same tick reuse the blockage
        self._blockage_memo: tuple | None = None

    def _place_scatterers(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Scatterer positions (S, 3) [m] on both street sides, spread a bit beyond coverage."""
        lay = self.layout
        x_min, x_max = lay.x_range
        span = x_max - x_min
        x = rng.uniform(x_min - 0.25 * span, x_max + 0.25 * span, count)
        far_side = rng.random(count) < 0.5
        y = np.where(far_side, lay.road_width + rng.uniform(0.5, max(lay.sidewalk_m, 0.6), count),
                     -rng.uniform(0.5, max(lay.sidewalk_m, 0.6), count))
        z = rng.uniform(*self.SCATTERER_HEIGHT_M, count)
        return np.stack([x, y, z], axis=1)

    # ------------------------------------------------------------------ paths
    def _bounces(self, rx: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """Bounce points (..., P, 3) [m] of the paths to receivers ``rx`` (..., 3), the
        paths' fixed losses (P,) [dB] and their names. Every path is two legs
        tx -> bounce -> rx; the LoS "bounces" at its own midpoint."""
        tx = self.layout.rsu_position
        bounce_points: list[np.ndarray] = [0.5 * (tx + rx)]  # each (..., 3)
        fixed_loss: list[float] = [0.0]
        names: list[str] = ["los"]
        if self.ground_reflection:
            image = rx * np.array([1.0, 1.0, -1.0])
            frac = tx[2] / (tx[2] - image[..., 2])
            bounce_points.append(tx + frac[..., None] * (image - tx))
            fixed_loss.append(self.ground_loss_db)
            names.append("ground")
        walls = self.layout.wall_y
        if walls is not None:
            for index, wall in enumerate(walls):
                image = rx.copy()
                image[..., 1] = 2.0 * wall - rx[..., 1]
                frac = (wall - tx[1]) / (image[..., 1] - tx[1])
                bounce_points.append(tx + frac[..., None] * (image - tx))
                fixed_loss.append(self.wall_loss_db)
                names.append(f"wall{index}")
        for index, point in enumerate(self.scatterers):
            bounce_points.append(np.broadcast_to(point, rx.shape))
            fixed_loss.append(self.scatter_loss_db)
            names.append(f"scatter{index}")
        return np.stack(bounce_points, axis=-2), np.asarray(fixed_loss), tuple(names)

    def _blockage_db(self, rx: np.ndarray, bounce: np.ndarray, obstacles: Boxes, rx_ids: np.ndarray) -> np.ndarray:
        """Total penetration loss (K, P) [dB] of the paths to receivers ``rx`` (K, 3)."""
        if not len(obstacles):
            return np.zeros(bounce.shape[:-1])
        tx = self.layout.rsu_position
        rx_k = np.broadcast_to(rx[:, None, :], bounce.shape)
        crossed = segment_hits(np.broadcast_to(tx, bounce.shape), bounce, obstacles)
        crossed |= segment_hits(bounce, rx_k, obstacles)  # (K, P, B)
        crossed &= (obstacles.owner[None, :] != rx_ids[:, None])[:, None, :]
        return crossed @ self._loss_by_code[obstacles.kind]

    def _gains(self, rx: np.ndarray, bounce: np.ndarray, fixed_loss: np.ndarray, blockage: np.ndarray,
               names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Complex gains, sine of the departure angle and unfolded lengths, each (..., P),
        of the paths to ``rx`` (..., 3) via ``bounce`` (..., P, 3) with the given losses."""
        tx = self.layout.rsu_position
        first = bounce - tx
        second = rx[..., None, :] - bounce
        # Euclidean norms, as np.linalg.norm computes them (bit for bit), without its overhead
        first_length = np.sqrt(np.add.reduce(first * first, axis=-1))
        length = first_length + np.sqrt(np.add.reduce(second * second, axis=-1))
        sin_aod = first[..., 0] / np.maximum(first_length, 1e-9)
        loss_db = fixed_loss + blockage + self.oxygen_db_per_m * length - self.antenna_gain_dbi
        amplitude = self.wavelength / (4.0 * math.pi * np.maximum(length, 1e-3)) * 10.0 ** (-loss_db / 20.0)
        # the ground bounce flips the phase (grazing incidence)
        sign = np.where(np.array(names) == "ground", self.GROUND_REFLECTION_SIGN, 1.0)
        gain = sign * amplitude * np.exp(-2j * math.pi * length / self.wavelength)
        return gain, sin_aod, length

    @staticmethod
    def _receivers(rx_positions: np.ndarray, obstacles: Boxes | None, rx_ids: np.ndarray | None,
                   num_rx: int) -> tuple[Boxes, np.ndarray]:
        obstacles = obstacles if obstacles is not None else Boxes.empty()
        rx_ids = np.arange(num_rx) if rx_ids is None else np.asarray(rx_ids, dtype=int).reshape(-1)
        if len(rx_ids) != num_rx:
            raise ValueError(f"rx_ids must have length K={num_rx}, got {len(rx_ids)}")
        return obstacles, rx_ids

    def paths(self, rx_positions: np.ndarray, obstacles: Boxes | None = None,
              rx_ids: np.ndarray | None = None) -> Paths:
        """All paths of a snapshot (see :class:`Paths`)."""
        rx = np.asarray(rx_positions, dtype=float).reshape(-1, 3)
        check.finite_array("rx_positions", rx)
        obstacles, rx_ids = self._receivers(rx, obstacles, rx_ids, len(rx))
        bounce, fixed_loss, names = self._bounces(rx)  # (K, P, 3)
        blockage = self._blockage_db(rx, bounce, obstacles, rx_ids)
        gain, sin_aod, length = self._gains(rx, bounce, fixed_loss, blockage, names)
        return Paths(gain, sin_aod, length, blockage, names)

    # --------------------------------------------------------------- channels
    def channels(self, rx_positions: np.ndarray, obstacles: Boxes | None = None,
                 rx_ids: np.ndarray | None = None) -> np.ndarray:
        """Channel vectors (K, Nt) complex; see :class:`v2xsim.channel.base.ChannelModel`."""
        paths = self.paths(rx_positions, obstacles, rx_ids)
        response = ula_response(self.num_antennas, paths.sin_aod)  # (K, P, Nt)
        return np.einsum("kp,kpn->kn", paths.gain, response)

    def channels_along(self, rx_positions: np.ndarray, obstacles: Boxes | None = None,
                       rx_ids: np.ndarray | None = None, *, reference: np.ndarray | None = None) -> np.ndarray:
        """Channels (T, K, Nt) of K receivers at T instants of one world tick, in one
        vectorised evaluation (see :meth:`ChannelModel.channels_along`).

        Which boxes block which path is decided at ``reference`` (default
        ``rx_positions[0]``) and held for every instant (between two ticks a vehicle moves a
        few centimetres, a body is metres long); lengths, phases, angles and spreading follow
        every position, so ``channels_along(p[None])[0]`` equals ``channels(p)`` up to
        rounding. The blockage of the last ``(reference, obstacles, rx_ids)`` is kept, so
        further instants of the same tick cost no new box tests.
        """
        rx = np.asarray(rx_positions, dtype=float)
        if rx.ndim != 3 or rx.shape[-1] != 3:
            raise ValueError(f"rx_positions must have shape (T, K, 3), got {rx.shape}")
        check.finite_array("rx_positions", rx)
        if len(rx) == 0:
            return np.zeros((0, rx.shape[1], self.num_antennas), dtype=complex)
        reference = rx[0] if reference is None else np.asarray(reference, dtype=float)
        if reference.shape != rx.shape[1:]:
            raise ValueError(f"reference must have shape {rx.shape[1:]}, got {reference.shape}")
        obstacles, rx_ids = self._receivers(reference, obstacles, rx_ids, rx.shape[1])
        memo = self._blockage_memo
        if (memo is not None and memo[0] is obstacles and np.array_equal(memo[1], reference)
                and np.array_equal(memo[2], rx_ids)):
            blockage = memo[3]
            bounce, fixed_loss, names = self._bounces(rx)  # (T, K, P, 3)
        else:  # the reference's paths ride along as instant -1
            bounce, fixed_loss, names = self._bounces(np.concatenate([rx, reference[None]]))
            blockage = self._blockage_db(reference, bounce[-1], obstacles, rx_ids)
            self._blockage_memo = (obstacles, reference.copy(), rx_ids.copy(), blockage)
            bounce = bounce[:-1]
        gain, sin_aod, _ = self._gains(rx, bounce, fixed_loss, blockage, names)  # (T, K, P)
        return self._superpose(gain, sin_aod)

    def _superpose(self, gain: np.ndarray, sin_aod: np.ndarray) -> np.ndarray:
        """``h[..., n] = sum_p gain[..., p] exp(j pi n sin_aod[..., p])`` (..., Nt): the
        paths seen by the half-wavelength ULA (:func:`ula_response`), its element phases
        built by successive steps ``z^n = z^(n-1) z``, equal up to rounding and several times
        faster on the many instants of a tick."""
        step = np.exp(1j * math.pi * sin_aod)
        term = gain.astype(complex, copy=True)
        h = np.empty(gain.shape[:-1] + (self.num_antennas,), dtype=complex)
        for element in range(self.num_antennas):
            h[..., element] = term.sum(axis=-1)
            if element + 1 < self.num_antennas:
                term *= step
        return h
