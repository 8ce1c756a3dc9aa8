"""The FL strategy contract, shaped like Flower's ``Strategy`` so that Flower strategies
can sit behind it: the server configures a round (which clients train, and what each
downloads, trains and uploads), aggregates the clients' fit results together with the
list of failures, and evaluates the global model.

Parameters travel as state dicts: ``{name: torch.Tensor}`` (a model's ``state_dict()``).
A client's upload may hold only some entries (e.g. the branches of the sensors it has):
aggregation then averages each entry over the clients that uploaded it, and an entry
nobody uploaded keeps its global value.

Parameter groups of GBA-Vehicle (:func:`v2xsim.fl.aggregation.parameter_group`):
``gps`` / ``image`` / ``lidar`` = the extraction branches, ``fusion`` = the fusion branch
(the per-modality first-layer blocks of Eq. 14 and the MLP head).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

State = Mapping[str, Any]

#: what a client downloads / uploads: every entry, or only the groups it uses
ALL = "all"
OWN = "own"


@dataclass(frozen=True)
class ClientInfo:
    """What the server knows about a client before a round.

    Attributes:
        client: client (vehicle) id.
        modalities: the sensors the vehicle has (it registers them with the RSU).
        num_samples: size of its local training set.
    """

    client: int
    modalities: tuple[str, ...]
    num_samples: int


@dataclass(frozen=True)
class FitInstruction:
    """One client's job in a round (Flower's ``FitIns``).

    Attributes:
        client: client id.
        config: what to do. Keys the built-in client understands:
            ``download``: "all" (overwrite the local model with the global one) or a list
            of parameter groups to take from the global model (the rest stays local);
            ``upload``: "all" (every entry), "own" (the groups of its sensors and the
            fusion blocks of those sensors) or a list of groups;
            ``train``: "all", "decision" (the decision layers of DA+: the last layer of
            each branch and the fusion branch) or a list of groups that get gradient
            steps (the others are frozen);
            ``proximal_mu``: FedProx proximal term weight (0 = none);
            ``da_minus`` / ``da_plus``: run the DA- / DA+ local procedures.
    """

    client: int
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClientUpdate:
    """One client's result of a round (Flower's ``FitRes``).

    Attributes:
        client: client (vehicle) id.
        state: the entries it uploads after local training (all or some of the model's).
        num_samples: samples it trained on (the FedAvg weight).
        metrics: anything the client reports (loss, accuracy, ...).
    """

    client: int
    state: State
    num_samples: int
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FitFailure:
    """A client that did not deliver in a round, and why (e.g. "left coverage",
    "missed the deadline", "link lost")."""

    client: int
    reason: str


class Strategy(ABC):
    """A federated-learning strategy (plug-in of :data:`v2xsim.registry.FL_STRATEGY`)."""

    name: str = "strategy"
    #: True for the centralised upper bound: one client that holds every vehicle's data
    pooled: bool = False

    def begin(self, *, num_rounds: int) -> None:
        """Called once before the first round with the run's number of rounds."""

    @abstractmethod
    def configure_fit(self, server_round: int, clients: Sequence[ClientInfo], rng) -> list[FitInstruction]:
        """The clients that train in round ``server_round`` (a subset of ``clients``) and
        what each does; ``rng`` is a :class:`numpy.random.Generator` (all randomness)."""

    @abstractmethod
    def aggregate_fit(self, server_round: int, results: Sequence[ClientUpdate], failures: Sequence[FitFailure],
                      current: State) -> State | None:
        """The new global parameters from the round's results; ``failures`` are reported,
        never silently dropped. ``None`` rejects the round (the global model stays, as
        Flower's strategies do below a minimum completion rate); with no result the
        current parameters stay."""

    def evaluate(self, server_round: int, state: State) -> dict[str, float]:
        """Server-side evaluation of the global parameters (none by default)."""
        return {}
