"""The channel-backend protocol shared by the geometric and ray-traced backends."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from v2xsim.world import Boxes

SPEED_OF_LIGHT = 299_792_458.0


@runtime_checkable
class ChannelModel(Protocol):
    """Maps a snapshot of the world to narrowband RSU -> vehicle channels.

    Implementations are deterministic: the same positions, obstacles and construction
    seed give the same arrays.
    """

    num_antennas: int
    carrier_hz: float

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
        ...
