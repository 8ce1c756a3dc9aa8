"""The learning side of the corridor: what each car recorded on the road, its local
GBA-Vehicle client, the global model, and the held-out evaluation.

A car records one sample per recorded alignment of the RSU serving it, as FLASH does: its
GPS (in the serving RSU's frame: the car knows which RSU it is registered with), camera
and LiDAR at the alignment and the sweep's measured RSS, whose feedback bits are the
labels. It keeps its newest ``fl.max_samples``. A car without a camera (LiDAR) records
that modality as missing, so the fleet's modality imbalance is real, and its labels
depend on its lane, speed and the cars around it.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch

from v2xsim.errors import ConfigError
from v2xsim.fl.aggregation import payload_bytes, select_entries
from v2xsim.fl.base import ClientInfo, ClientUpdate
from v2xsim.fl.client import DAOptions, LocalTraining, VehicleClient
from v2xsim.formats import MODALITIES
from v2xsim.sim.corridor.config import CorridorScenario
from v2xsim.training.vehicle import SensorSet


class RoadData:
    """The samples one car recorded (newest ``max_samples`` kept), after an optional
    warm-start set.

    Args:
        num_beams: W. max_samples: how many recorded samples it keeps.
        available: (3,) bool, the sensors the car has (gps, image, lidar).
        warm: warm-start samples (kept in front of the recorded ones), or None.
    """

    def __init__(self, *, num_beams: int, max_samples: int, available: np.ndarray,
                 warm: SensorSet | None = None) -> None:
        self.num_beams = num_beams
        self.max_samples = max_samples
        self.available = np.asarray(available, dtype=bool)
        self.warm = warm
        self._rows: list[dict[str, np.ndarray]] = []
        self._set: SensorSet | None = None
        self.recorded = 0

    def __len__(self) -> int:
        return len(self._rows) + (len(self.warm) if self.warm is not None else 0)

    def add(self, *, gps: np.ndarray, image: np.ndarray, lidar: np.ndarray, rss: np.ndarray,
            feedback: np.ndarray, category: int = 0) -> None:
        """Record one sample (a missing sensor is stored as zeros and marked missing)."""
        self._rows.append({"gps": np.asarray(gps, np.float32),
                           "image": image if self.available[1] else np.zeros_like(image),
                           "lidar": lidar if self.available[2] else np.zeros_like(lidar),
                           "rss": np.asarray(rss, np.float32), "feedback": np.asarray(feedback, np.float32),
                           "category": np.int64(category)})
        if len(self._rows) > self.max_samples:
            del self._rows[0]
        self.recorded += 1
        self._set = None

    def sensor_set(self, episode: int) -> SensorSet:
        """The samples as a :class:`SensorSet` (one object until the next record)."""
        if self._set is None:
            parts = []
            if self._rows:
                n = len(self._rows)
                parts.append(SensorSet(
                    gps=np.stack([r["gps"] for r in self._rows]), image=np.stack([r["image"] for r in self._rows]),
                    lidar=np.stack([r["lidar"] for r in self._rows]), rss=np.stack([r["rss"] for r in self._rows]),
                    feedback=np.stack([r["feedback"] for r in self._rows]),
                    available=np.tile(self.available, (n, 1)), episode=np.full(n, episode),
                    category=np.array([r["category"] for r in self._rows])))
            if self.warm is not None:
                parts.insert(0, self.warm)
            from v2xsim.fl.client import concatenate

            self._set = parts[0] if len(parts) == 1 else concatenate(*parts)
        return self._set


@dataclass
class Preparation:
    """What every run of a scenario starts from.

    Attributes:
        initial_model: the initial global GBA-Vehicle.
        server: what DA uses at the RSU (GBA-RSU, link budget, label statistics), or None.
        evaluate: held-out metrics of a model, or None (no evaluation).
        warm: warm-start samples per FLASH-like vehicle, or None.
        used: models used (file name -> hash), for provenance.
    """

    initial_model: torch.nn.Module
    server: Any = None
    evaluate: Callable[[torch.nn.Module], dict[str, Any]] | None = None
    warm: dict[int, SensorSet] | None = None
    used: dict[str, str] = field(default_factory=dict)


class Learner:
    """Global GBA-Vehicle, one client per car (made when it first trains) and the
    evaluation bed.

    Args:
        scenario: the corridor scenario. preparation: the initial global model, what DA
            needs at the RSU, the held-out evaluation and warm-start data
            (:class:`Preparation`). available: (K, 3) sensors of every car. seed: the run seed.
    """

    def __init__(self, *, scenario: CorridorScenario, preparation: "Preparation", available: np.ndarray,
                 seed: int) -> None:
        fl = scenario.fl
        self.preparation = preparation
        self.model = copy.deepcopy(preparation.initial_model)  # evaluation loads the global weights here
        #: what a car's client starts from (never changed: a client made later, or after a
        #: resume, starts from the same weights)
        self._initial = copy.deepcopy(preparation.initial_model)
        self.global_state = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.training = LocalTraining(epochs=fl.local_epochs, batch_size=fl.batch_size, lr=fl.lr,
                                      weight_decay=fl.weight_decay, modality_dropout=fl.modality_dropout)
        try:
            self.da = DAOptions(**scenario.da)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"da: {error}") from None
        self.server = preparation.server
        num_beams = int(self.model.num_beams) if hasattr(self.model, "num_beams") else None
        self.num_beams = num_beams
        warm = {}
        if fl.warm_start and preparation.warm:
            episodes = sorted(preparation.warm)
            warm = {car: preparation.warm[episodes[car % len(episodes)]] for car in range(len(available))}
        self.data = {car: RoadData(num_beams=num_beams, max_samples=fl.max_samples, available=available[car],
                                   warm=warm.get(car)) for car in range(len(available))}
        self.available = np.asarray(available, dtype=bool)
        seeds = np.random.SeedSequence([seed, 7]).spawn(len(available))
        self._seeds = [int(s.generate_state(1)[0]) for s in seeds]
        self.clients: dict[int, VehicleClient] = {}
        self._flops: dict[tuple[str, ...], float] = {}
        #: wall time spent in local training [s] (benchmarks; never in results)
        self.training_wall_s = 0.0

    # ------------------------------------------------------------ clients
    def modalities(self, car: int) -> tuple[str, ...]:
        """The model's sensors this car has."""
        return tuple(m for m in self.model.modalities if self.available[car, MODALITIES.index(m)])

    def num_samples(self, car: int) -> int:
        return len(self.data[car])

    def info(self, car: int) -> ClientInfo:
        return ClientInfo(client=car, modalities=self.modalities(car), num_samples=self.num_samples(car))

    def bytes_down(self, car: int, config: Mapping[str, Any], state: Mapping[str, Any]) -> int:
        """Bytes the car downloads for ``config`` (float32 entries)."""
        keys = select_entries(state.keys(), groups=config.get("download", "all"), modalities=self.modalities(car))
        return payload_bytes(state, keys)

    def model_bytes(self) -> int:
        """Bytes of the whole global model (what the backhaul carries to an RSU)."""
        return payload_bytes(self.global_state)

    def bytes_up(self, car: int, config: Mapping[str, Any]) -> int:
        """Bytes the car uploads for ``config``."""
        keys = select_entries(self.global_state.keys(), groups=config.get("upload", "all"),
                              modalities=self.modalities(car))
        return payload_bytes(self.global_state, keys)

    def client(self, car: int) -> VehicleClient:
        """The car's client (made on first use, with its data as of now)."""
        data = self.data[car].sensor_set(car)
        client = self.clients.get(car)
        if client is None:
            client = VehicleClient(client=car, data=data, model=copy.deepcopy(self._initial), training=self.training,
                                   da=self.da, seed=self._seeds[car])
            self.clients[car] = client
        client.data = data
        return client

    def fit(self, car: int, base_state: Mapping[str, Any], config: Mapping[str, Any]) -> ClientUpdate:
        """Local training of ``car`` from ``base_state`` (its data as of now)."""
        began = time.perf_counter()
        update, cost = self.client(car).fit(base_state, config, self.server)
        self.training_wall_s += time.perf_counter() - began
        expected = self.bytes_up(car, config)
        if cost["bytes_up"] != expected:
            raise RuntimeError(f"car {car} uploaded {cost['bytes_up']} bytes, the timeline assumed {expected}")
        return update

    def flops_per_sample(self, car: int) -> float:
        """FLOPs of one training sample of the car's (pruned) network, counted once per
        sensor set (:func:`~v2xsim.sim.corridor.devices.training_flops_per_sample`)."""
        from v2xsim.sim.corridor.devices import training_flops_per_sample

        modalities = self.modalities(car)
        if modalities not in self._flops:
            model = copy.deepcopy(self._initial)
            mask = torch.tensor([[m in modalities for m in model.modalities]] * 2)
            zeros = {"gps": torch.zeros(2, 2), "image": torch.zeros(2, 90, 160, 3, dtype=torch.uint8),
                     "lidar": torch.zeros(2, 20, 20, 20, dtype=torch.int8)}
            # the car's pruned network: the branches of the sensors it has, as its client trains
            self._flops[modalities] = training_flops_per_sample(model, {m: zeros[m] for m in modalities},
                                                                available=mask)
        return self._flops[modalities]

    # ------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[str, Any]:
        """Held-out metrics of the global model (empty without an evaluation bed)."""
        if self.preparation.evaluate is None:
            return {}
        self.model.load_state_dict(self.global_state)
        return self.preparation.evaluate(self.model.eval())

    # ------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {"global": self.global_state,
                "clients": {car: client.state_dict() for car, client in self.clients.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.global_state = {k: v.clone() for k, v in state["global"].items()}
        for car, saved in state["clients"].items():
            self.client(int(car)).load_state_dict(saved)


__all__ = ["Learner", "Preparation", "RoadData"]
