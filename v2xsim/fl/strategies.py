"""Built-in FL strategies (registered in :data:`v2xsim.registry.FL_STRATEGY`).

==================  ========================================================================
``centralized``     the upper bound "UB": the raw data of all vehicles pooled at the RSU and
                    trained as one client (no federation; the cost is the raw data).
``fedavg``          every client downloads and uploads the whole model; sample-weighted mean
                    (``weighted = false``: the unweighted mean of the FLASH reference code).
``flash``           FLASH (Salehi et al., 2022, as in its reference code): vehicles keep
                    their local models; each round the RSU picks, per vehicle, the one
                    parameter group it overwrites from the global model (``policy`` over
                    gps / image / lidar / fusion, default 0.1 / 0.1 / 0.4 / 0.4, renormalised
                    over the groups the vehicle has); the vehicle uploads its whole model;
                    unweighted mean.
``modality_aware``  Eq. 13 of seed 002: each vehicle downloads and uploads its pruned network
                    (the branches of its sensors and the fusion branch without the blocks of
                    sensors it lacks); each entry is averaged over the vehicles that uploaded
                    it, so a missing branch never touches the global one.
``da``              modality-aware aggregation with the DA strategy of seed 002: DA- in the
                    local training of the first rounds, then DA+ (synthetic samples of
                    under-represented labels, decision layers only) in the last
                    ``plus_rounds`` rounds; ``order = "plus_first"`` swaps the stages
                    (Remark 2 says the order matters: this lets it be tested).
==================  ========================================================================
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from v2xsim.fl.aggregation import GROUPS, partial_average, weighted_average
from v2xsim.fl.base import ALL, OWN, ClientInfo, ClientUpdate, FitFailure, FitInstruction, State, Strategy
from v2xsim.registry import FL_STRATEGY

#: FLASH reference code's branch-update probabilities over gps / image / lidar / fusion
FLASH_POLICY: tuple[float, ...] = (0.1, 0.1, 0.4, 0.4)
#: client id of the pooled data set of the centralised upper bound
POOLED_CLIENT = -1


def _weights(results: Sequence[ClientUpdate], weighted: bool) -> list[float]:
    return [float(r.num_samples) if weighted else 1.0 for r in results]


@FL_STRATEGY.register("centralized")
class Centralized(Strategy):
    """The FL upper bound: one client holding every vehicle's training data."""

    name = "centralized"
    pooled = True

    def configure_fit(self, server_round: int, clients: Sequence[ClientInfo], rng) -> list[FitInstruction]:
        return [FitInstruction(POOLED_CLIENT, {"download": ALL, "upload": ALL, "train": ALL})]

    def aggregate_fit(self, server_round: int, results: Sequence[ClientUpdate], failures: Sequence[FitFailure],
                      current: State) -> State | None:
        return partial_average([r.state for r in results], [1.0] * len(results), current)


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

    def configure_fit(self, server_round: int, clients: Sequence[ClientInfo], rng) -> list[FitInstruction]:
        return [FitInstruction(c.client, {"download": ALL, "upload": ALL, "train": ALL}) for c in clients]

    def aggregate_fit(self, server_round: int, results: Sequence[ClientUpdate], failures: Sequence[FitFailure],
                      current: State) -> State | None:
        if not results:
            return dict(current)
        return weighted_average([r.state for r in results], _weights(results, self.weighted))


@FL_STRATEGY.register("flash")
class Flash(Strategy):
    """FLASH's branch-selection FL (see the module table).

    Args:
        policy: probabilities of gps / image / lidar / fusion (four non-negative numbers).
        weighted: weight the mean by sample counts (the FLASH code does not).
    """

    name = "flash"

    def __init__(self, *, policy: Sequence[float] = FLASH_POLICY, weighted: bool = False) -> None:
        policy = [float(p) for p in policy]
        if len(policy) != len(GROUPS) or any(not np.isfinite(p) or p < 0 for p in policy) or sum(policy) <= 0:
            raise ValueError(f"policy must be {len(GROUPS)} non-negative numbers for {', '.join(GROUPS)} "
                             f"with a positive sum, got {policy}")
        self.policy = tuple(policy)
        self.weighted = bool(weighted)

    def group_probabilities(self, modalities: Sequence[str]) -> np.ndarray:
        """The policy restricted to the groups a vehicle with ``modalities`` has,
        renormalised (a vehicle cannot refresh a branch it does not run). (4,)"""
        has = np.array([group == "fusion" or group in modalities for group in GROUPS])
        p = np.where(has, np.asarray(self.policy), 0.0)
        if p.sum() <= 0:  # only groups it lacks had mass: refresh the fusion branch
            p = (np.asarray(GROUPS) == "fusion").astype(float)
        return p / p.sum()

    def configure_fit(self, server_round: int, clients: Sequence[ClientInfo], rng) -> list[FitInstruction]:
        out = []
        for c in clients:
            group = GROUPS[int(rng.choice(len(GROUPS), p=self.group_probabilities(c.modalities)))]
            out.append(FitInstruction(c.client, {"download": [group], "upload": ALL, "train": ALL}))
        return out

    def aggregate_fit(self, server_round: int, results: Sequence[ClientUpdate], failures: Sequence[FitFailure],
                      current: State) -> State | None:
        if not results:
            return dict(current)
        return weighted_average([r.state for r in results], _weights(results, self.weighted))


@FL_STRATEGY.register("modality_aware")
class ModalityAware(Strategy):
    """Modality-aware aggregation, Eq. 13 of seed 002 (see the module table).

    Args:
        weighted: weight by sample counts (Eq. 13 is the plain mean over the vehicles).
    """

    name = "modality_aware"

    def __init__(self, *, weighted: bool = False) -> None:
        self.weighted = bool(weighted)

    def instruction(self, server_round: int, client: ClientInfo) -> dict[str, Any]:
        return {"download": OWN, "upload": OWN, "train": ALL}

    def configure_fit(self, server_round: int, clients: Sequence[ClientInfo], rng) -> list[FitInstruction]:
        return [FitInstruction(c.client, self.instruction(server_round, c)) for c in clients]

    def aggregate_fit(self, server_round: int, results: Sequence[ClientUpdate], failures: Sequence[FitFailure],
                      current: State) -> State | None:
        return partial_average([r.state for r in results], _weights(results, self.weighted), current)


@FL_STRATEGY.register("da")
class DataAugmentation(ModalityAware):
    """Modality-aware FL with DA- then DA+ (seed 002, Section IV; see the module table).

    Args:
        plus_rounds: rounds of the DA+ stage (fine-tuning of the decision layers on own plus
            synthetic samples); the other rounds train with DA-.
        order: "minus_first" (the paper's order, Remark 2) or "plus_first".
        minus: run DA- in its stage (false: plain local training there, an ablation).
        plus: run DA+ in its stage (false: plain decision-layer fine-tuning, an ablation).
        weighted: weight by sample counts (default: plain mean, Eq. 13).
    """

    name = "da"
    ORDERS = ("minus_first", "plus_first")

    def __init__(self, *, plus_rounds: int = 2, order: str = "minus_first", minus: bool = True, plus: bool = True,
                 weighted: bool = False) -> None:
        super().__init__(weighted=weighted)
        if int(plus_rounds) < 0:
            raise ValueError(f"plus_rounds must be >= 0, got {plus_rounds}")
        if order not in self.ORDERS:
            raise ValueError(f"order must be one of {', '.join(self.ORDERS)}, got {order!r}")
        self.plus_rounds = int(plus_rounds)
        self.order = order
        self.minus = bool(minus)
        self.plus = bool(plus)
        self.num_rounds: int | None = None

    def begin(self, *, num_rounds: int) -> None:
        if self.plus_rounds >= num_rounds:
            raise ValueError(f"plus_rounds ({self.plus_rounds}) must be below the number of rounds ({num_rounds})")
        self.num_rounds = int(num_rounds)

    def stage(self, server_round: int) -> str:
        """"minus" or "plus" for round ``server_round`` (1-based)."""
        if self.num_rounds is None:
            raise RuntimeError("the runner calls begin(num_rounds=...) before the first round")
        minus_rounds = self.num_rounds - self.plus_rounds
        first_is_minus = self.order == "minus_first"
        in_first = server_round <= (minus_rounds if first_is_minus else self.plus_rounds)
        return ("minus" if in_first else "plus") if first_is_minus else ("plus" if in_first else "minus")

    def instruction(self, server_round: int, client: ClientInfo) -> dict[str, Any]:
        if self.stage(server_round) == "minus":
            return {"download": OWN, "upload": OWN, "train": ALL, "da_minus": self.minus}
        return {"download": OWN, "upload": OWN, "train": "decision", "da_plus": self.plus}


from v2xsim.fl import flower as _flower  # noqa: E402,F401  (registers "flower")
