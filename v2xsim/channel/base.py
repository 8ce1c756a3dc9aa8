"""The channel-backend contract shared by the geometric and ray-traced backends.

A backend is a class registered in :data:`v2xsim.registry.CHANNEL`. The engine constructs
it with the keyword arguments ``layout`` (:class:`~v2xsim.geometry.RoadLayout`),
``num_antennas`` (RSU ULA elements), ``carrier_hz`` and ``seed`` plus the scenario's
``[channel] options``, and then calls only what :class:`ChannelModel` declares.
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

    def scene_sensor(self) -> SceneSensor | None:
        """The backend's own camera / LiDAR renderer, or None (the default): then the
        geometric sensors of :mod:`v2xsim.sensing` see the world's boxes."""
        return None
