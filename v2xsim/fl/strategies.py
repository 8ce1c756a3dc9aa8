"""Built-in FL strategies (registered in :data:`v2xsim.registry.FL_STRATEGY`)."""

from __future__ import annotations

from typing import Sequence

from v2xsim.fl.aggregation import weighted_average
from v2xsim.fl.base import ClientUpdate, FitFailure, State, Strategy
from v2xsim.registry import FL_STRATEGY


@FL_STRATEGY.register("fedavg")
class FedAvg(Strategy):
    """Federated averaging (McMahan et al. 2017): every client trains each round; the
    global parameters are the sample-weighted mean of the results (``weighted = false``:
    the unweighted mean, as the FLASH reference code does).

    Args:
        weighted: weight clients by their sample counts.
    """

    name = "fedavg"

    def __init__(self, *, weighted: bool = True) -> None:
        self.weighted = bool(weighted)

    def configure_fit(self, server_round: int, clients: Sequence[int], rng) -> list[int]:
        return list(clients)

    def aggregate_fit(self, server_round: int, results: Sequence[ClientUpdate], failures: Sequence[FitFailure],
                      current: State) -> State:
        if not results:
            return dict(current)
        weights = [r.num_samples if self.weighted else 1.0 for r in results]
        return weighted_average([r.state for r in results], weights)
