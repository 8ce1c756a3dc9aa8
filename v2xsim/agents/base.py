"""The scheme plug-in interface: observations in, per-vehicle (beam, power) out."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from v2xsim.metrics import precoders
from v2xsim.timing import TimingModel

Acquisition = Literal["none", "sweep", "sensing"]


@dataclass(frozen=True, kw_only=True)
class Observation:
    """What the RSU side of a scheme may use at one alignment.

    Attributes:
        codebook: (Nt, W) complex, unit-norm columns.
        p_max: total transmit power budget [W].
        noise_power: receiver noise power [W].
        feedback_threshold: receiver sensitivity for binary feedback [W].
        channels: (K, Nt) true channels; only schemes with ``needs_csi`` get them.
        rss: (K, W) RSS of the beam sweep [W] (each beam sent at ``p_max``); sweep schemes.
        feedback: (K, W) 0/1 feedback vectors; learned schemes.
        sensors: per-vehicle sensor data for on-vehicle prediction (learned schemes).
        rng: the scheme's random generator (derived from the scenario seed).
    """

    codebook: np.ndarray
    p_max: float
    noise_power: float
    feedback_threshold: float = 0.0
    channels: np.ndarray | None = None
    rss: np.ndarray | None = None
    feedback: np.ndarray | None = None
    sensors: Any = None
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    @property
    def num_beams(self) -> int:
        return int(self.codebook.shape[1])

    @property
    def num_vehicles(self) -> int:
        for array in (self.channels, self.rss, self.feedback):
            if array is not None:
                return int(array.shape[0])
        return 0


@dataclass(frozen=True)
class Allocation:
    """Per-vehicle decision of one alignment.

    Attributes:
        beams: (K,) codebook index per vehicle, -1 = not served.
        powers: (K,) transmit power [W]; 0 where not served; sums to at most ``p_max``.
    """

    beams: np.ndarray
    powers: np.ndarray

    def __post_init__(self) -> None:
        beams = np.asarray(self.beams, dtype=int).reshape(-1)
        powers = np.asarray(self.powers, dtype=float).reshape(-1)
        if beams.shape != powers.shape:
            raise ValueError(f"beams {beams.shape} and powers {powers.shape} differ in shape")
        if np.any(~np.isfinite(powers)) or np.any(powers < 0):
            raise ValueError("powers must be finite and >= 0")
        powers = np.where(beams >= 0, powers, 0.0)
        object.__setattr__(self, "beams", beams)
        object.__setattr__(self, "powers", powers)

    @classmethod
    def empty(cls, num_vehicles: int = 0) -> "Allocation":
        return cls(np.full(num_vehicles, -1), np.zeros(num_vehicles))

    def precoders(self, codebook: np.ndarray) -> np.ndarray:
        """Precoder matrix (Nt, K) including sqrt(power)."""
        return precoders(codebook, self.beams, self.powers)


class Scheme(ABC):
    """A beam-alignment scheme (plug-in registered in :data:`v2xsim.registry.SCHEME`).

    Class attributes say what one alignment costs; the engine turns them into time:
    ``acquisition`` = "sweep" (exhaustive sweep of W beams), "sensing" (on-vehicle
    sensing and prediction) or "none" (genie); ``needs_csi`` = gets the true channels.
    """

    name: ClassVar[str] = "scheme"
    acquisition: ClassVar[Acquisition] = "sweep"
    needs_csi: ClassVar[bool] = False

    def prepare(self, scenario: Any) -> None:
        """Called once per run before the first alignment with the validated scenario
        (learned schemes load or train their models for its road and radio here)."""

    @abstractmethod
    def feedback_bits(self, num_beams: int, timing: TimingModel) -> int:
        """Bits each vehicle sends back per alignment."""

    @abstractmethod
    def allocate(self, observation: Observation) -> Allocation:
        """Beams and powers for the K vehicles of ``observation``."""


def index_bits(num_beams: int) -> int:
    """Bits needed to send one beam index out of ``num_beams``."""
    return max(1, math.ceil(math.log2(num_beams)))
