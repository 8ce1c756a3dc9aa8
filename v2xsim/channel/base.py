"""The channel-backend contract shared by the geometric and ray-traced backends.

A backend is a class registered in :data:`v2xsim.registry.CHANNEL`. The engine constructs
it with the keyword arguments ``layout`` (:class:`~v2xsim.geometry.RoadLayout`),
``num_antennas`` (RSU ULA elements), ``carrier_hz`` and ``seed`` plus the scenario's
``[channel] options``, and then calls only what :class:`ChannelModel` declares.

Between two world ticks the engine evaluates the channel at the exact instants the
schemes look at it and at sub-steps of the tick for the data phase
(:meth:`ChannelModel.channels_along`, see :mod:`v2xsim.sim.world`), but only for a backend
that declares :attr:`ChannelModel.vectorised_tracks`; any other backend is evaluated once
per world tick, its channel held until the next tick.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

import numpy as np

from v2xsim.geometry import Boxes, RoadLayout, Snapshot

SPEED_OF_LIGHT = 299_792_458.0


class SceneSensor(Protocol):
    """A backend that renders the vehicles' own camera and LiDAR from its 3-D scene.

    Same signature, keys, shapes and use of ``rng`` as :func:`v2xsim.sensing.sense`.
    """

    def sense(self, layout: RoadLayout, snapshot: Snapshot, rng: np.random.Generator, *,
              config=None) -> dict[str, np.ndarray]: ...


class ChannelModel(ABC):
    """Maps a snapshot of the world to narrowband RSU -> vehicle channels.

    Implementations are deterministic: the same positions, obstacles and construction
    seed give the same arrays. Constructor keywords: ``layout``, ``num_antennas``,
    ``carrier_hz``, ``seed``, then the backend's own options.
    """

    num_antennas: int
    carrier_hz: float
    #: True if :meth:`channels_along` evaluates T instants at about the cost of one
    #: snapshot; only then does the engine sample the channel between world ticks
    vectorised_tracks: bool = False

    @abstractmethod
    def channels(self, rx_positions: np.ndarray, obstacles: Boxes, rx_ids: np.ndarray) -> np.ndarray:
        """Channel vectors ``h`` (K, Nt) complex, in sqrt(W) of received per sqrt(W)
        transmitted, so ``P |h^H w|^2`` is the received power [W] of a unit-norm beam ``w``
        sent with power ``P``.

        Args:
            rx_positions: (K, 3) vehicle antenna positions [m].
            obstacles: boxes that may block paths; boxes owned by ``rx_ids[k]`` never
                block vehicle k's own paths.
            rx_ids: (K,) vehicle ids.
        """

    def channels_along(self, rx_positions: np.ndarray, obstacles: Boxes, rx_ids: np.ndarray, *,
                       reference: np.ndarray | None = None) -> np.ndarray:
        """Channels (T, K, Nt) of the same K receivers at T instants within one world tick.

        Args:
            rx_positions: (T, K, 3) antenna positions [m] of vehicle k at instant t.
            obstacles: the boxes at the world tick.
            rx_ids: (K,) vehicle ids.
            reference: (K, 3) positions at the world tick (default ``rx_positions[0]``).

        Which boxes block which path may be decided once, at ``reference`` (where the boxes
        are), and held for every instant; path lengths, phases and angles follow every
        position. The default evaluates :meth:`channels` at every instant with the same
        boxes (blockage decided at each position).
        """
        rx_positions = np.asarray(rx_positions, dtype=float)
        if rx_positions.ndim != 3 or rx_positions.shape[-1] != 3:
            raise ValueError(f"rx_positions must have shape (T, K, 3), got {rx_positions.shape}")
        out = np.zeros(rx_positions.shape[:2] + (self.num_antennas,), dtype=complex)
        for index, positions in enumerate(rx_positions):
            out[index] = self.channels(positions, obstacles, rx_ids)
        return out

    def scene_sensor(self) -> SceneSensor | None:
        """The backend's own camera / LiDAR renderer, or None (the default): then the
        geometric sensors of :mod:`v2xsim.sensing` see the world's boxes."""
        return None
