"""The FL strategy contract, shaped like Flower's ``Strategy`` so that Flower strategies
can sit behind it: the server configures a round (which clients train), aggregates the
clients' fit results together with the list of failures, and evaluates the global model.

Parameters travel as state dicts: ``{name: torch.Tensor}`` (a model's ``state_dict()``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

State = Mapping[str, Any]


@dataclass(frozen=True)
class ClientUpdate:
    """One client's result of a round (Flower's ``FitRes``).

    Attributes:
        client: client (vehicle) id.
        state: the client's parameters after local training.
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

    @abstractmethod
    def configure_fit(self, server_round: int, clients: Sequence[int], rng) -> list[int]:
        """The clients that train in round ``server_round`` (a subset of ``clients``)."""

    @abstractmethod
    def aggregate_fit(self, server_round: int, results: Sequence[ClientUpdate], failures: Sequence[FitFailure],
                      current: State) -> State:
        """The new global parameters from the round's results; ``failures`` are reported,
        never silently dropped; with no result the current parameters stay."""

    def evaluate(self, server_round: int, state: State) -> dict[str, float]:
        """Server-side evaluation of the global parameters (none by default)."""
        return {}
