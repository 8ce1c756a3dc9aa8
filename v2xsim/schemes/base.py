"""The scheme plug-in contract: a vehicle side that turns what each vehicle knows into its
feedback bits, and an RSU side that turns the feedback into beams and powers.

The engine calls a scheme only through what :class:`Scheme` declares:

- class attributes ``acquisition`` ("sweep": exhaustive beam sweep, "sensing": on-vehicle
  sensing and prediction, "none": genie) and ``needs_csi`` (the RSU side gets the true
  channels);
- instance attributes ``uses_sensors`` (the vehicles sense the road at each alignment,
  with ``sensor_config``) and ``knows_true_feedback`` (the vehicles know their true RSS
  at the alignment instant: a perfect predictor);
- :meth:`Scheme.prepare`, :meth:`Scheme.feedback_bits`, :meth:`Scheme.vehicle_feedback`
  (sensing schemes) and :meth:`Scheme.allocate`.

What the vehicles know never reaches the RSU side except through their feedback.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np

from v2xsim.metrics import precoders

if TYPE_CHECKING:  # pragma: no cover - types only
    from v2xsim.build import SchemeContext
    from v2xsim.sensing import SensorConfig
    from v2xsim.training.jobs import TrainingJob

Acquisition = Literal["none", "sweep", "sensing"]


@dataclass(frozen=True, kw_only=True)
class VehicleInputs:
    """What the K vehicles of one alignment know, one row each (a vehicle uses only its own).

    Attributes:
        ids: (K,) vehicle ids.
        sensors: ``{"gps": (K, 2), "image": (K, 90, 160, 3), "lidar": (K, 20, 20, 20)}``
            readings taken at the start of the alignment (schemes with ``uses_sensors``).
        true_rss: (K, W) true received power of every beam [W] at the alignment instant
            (schemes with ``knows_true_feedback``).
        feedback_threshold: receiver sensitivity [W]: a beam above it is "heard".
        rng: the scheme's random generator (derived from the scenario seed).
    """

    ids: np.ndarray
    sensors: dict[str, np.ndarray] | None = None
    true_rss: np.ndarray | None = None
    feedback_threshold: float = 0.0
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, kw_only=True)
class Observation:
    """What the RSU side of a scheme may use at one alignment.

    Attributes:
        codebook: (Nt, W) complex, unit-norm columns.
        p_max: total transmit power budget [W].
        noise_power: receiver noise power [W].
        feedback_threshold: receiver sensitivity for binary feedback [W].
        channels: (K, Nt) true channels; only schemes with ``needs_csi`` get them.
        rss: (K, W) RSS the vehicles measured in the beam sweep [W] (each beam sent at
            ``p_max``); sweep schemes.
        feedback: (K, W) 0/1 feedback the vehicles sent; sensing schemes.
        rng: the scheme's random generator (derived from the scenario seed).
    """

    codebook: np.ndarray
    p_max: float
    noise_power: float
    feedback_threshold: float = 0.0
    channels: np.ndarray | None = None
    rss: np.ndarray | None = None
    feedback: np.ndarray | None = None
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

    @classmethod
    def from_rows(cls, rows: np.ndarray) -> "Allocation":
        """From a network output (K, W) with at most one non-zero amplitude per row."""
        rows = np.asarray(rows, dtype=float)
        power = (rows ** 2).sum(axis=1)
        return cls(np.where(power > 0, np.argmax(np.abs(rows), axis=1), -1), power)

    def precoders(self, codebook: np.ndarray) -> np.ndarray:
        """Precoder matrix (Nt, K) including sqrt(power)."""
        return precoders(codebook, self.beams, self.powers)


class Scheme(ABC):
    """A beam-alignment scheme (plug-in registered in :data:`v2xsim.registry.SCHEME`).

    Constructors take the scheme's options as keyword arguments (a scenario's
    ``[[schemes]] options``); an unknown option is refused by the registry.
    """

    name: ClassVar[str] = "scheme"
    acquisition: ClassVar[Acquisition] = "sweep"
    needs_csi: ClassVar[bool] = False
    #: the vehicles sense the road at each alignment (GPS, camera, LiDAR)
    uses_sensors: bool = False
    #: the vehicles know their true RSS at the alignment instant (perfect prediction)
    knows_true_feedback: bool = False
    #: the vehicles' sensors (None: :class:`v2xsim.sensing.SensorConfig` defaults)
    sensor_config: "SensorConfig | None" = None

    def prepare(self, context: "SchemeContext") -> None:
        """Called once per run before the first alignment (learned schemes load their
        models from ``context.store`` here, trained for ``context``'s road and radio)."""

    def training_jobs(self, context: "SchemeContext") -> list["TrainingJob"]:
        """The trainings :meth:`prepare` would run on first use for ``context``, as
        independent jobs (none once their models are in ``context.store``), so that a
        sweep can train them side by side before preparing; default: none."""
        return []

    @abstractmethod
    def feedback_bits(self, num_beams: int) -> int:
        """Bits each vehicle sends back per alignment."""

    def vehicle_feedback(self, inputs: VehicleInputs) -> np.ndarray:
        """Vehicle side of a sensing scheme: the (K, W) 0/1 feedback the vehicles send.

        The default sends the true feedback (needs ``knows_true_feedback``)."""
        if inputs.true_rss is None:
            raise RuntimeError(f"scheme {self.name!r} senses but has no vehicle side: override "
                               "vehicle_feedback or set knows_true_feedback")
        return (np.asarray(inputs.true_rss) > inputs.feedback_threshold).astype(np.float32)

    @abstractmethod
    def allocate(self, observation: Observation) -> Allocation:
        """Beams and powers for the K vehicles of ``observation``."""


def index_bits(num_beams: int) -> int:
    """Bits needed to send one beam index out of ``num_beams``."""
    return max(1, math.ceil(math.log2(num_beams)))
