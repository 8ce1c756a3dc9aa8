"""The held-out bed of a corridor run, recorded on the road.

``evaluation.bed = "road"`` (default): before the runs, a *survey* fleet drives the same
corridor (the scenario's ``[traffic]``, its own seed) for ``evaluation.survey_s`` simulated
seconds without FL; at every ``evaluation.record_every``-th alignment of each RSU it
records what the FL cars record (GPS, camera, LiDAR, sweep labels) plus the true channels
of the alignment's cars. The global model is scored on those samples (bit accuracy, exact
match, top-1 beam) and, alignment by alignment, on the sum rate GBA-RSU reaches from the
feedback it predicts for every car of the alignment (with that RSU's real beams). The
RSU's label statistics (DA+) and the GPS normalisation of the initial model come from the
survey too. ``"flash_like"``: the FLASH-like bed of an FL experiment file (a different
road: its blockers and speeds are not the corridor's, so it measures transfer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from v2xsim.fl.client import ServerContext
from v2xsim.training.vehicle import SensorSet, evaluate_vehicle


@dataclass
class SurveyGroup:
    """One recorded alignment: its RSU, the rows of its cars in the survey set, and their
    true channels (K, Nt)."""

    rsu: int
    rows: np.ndarray
    channels: np.ndarray


@dataclass
class RoadBed:
    """The survey: samples, alignments, the RSUs' real beams and link budget, GBA-RSU."""

    test_set: SensorSet
    groups: list[SurveyGroup]
    codebooks: list[np.ndarray]
    p_max: float
    noise_power: float
    rsu: Any

    def server(self, num_vehicles: int = 1) -> ServerContext:
        """What DA uses: GBA-RSU, the link budget and the label statistics of the survey
        (``num_vehicles``: the federation's size)."""
        from v2xsim.fl.runner import label_statistics

        noise_mw = self.noise_power * 1e3
        labels, rates = label_statistics(self.test_set, self.rsu, noise_mw=noise_mw, p_max=self.p_max)
        return ServerContext(rsu=self.rsu, noise_mw=noise_mw, p_max=self.p_max, global_labels=labels,
                             label_rates=rates, num_vehicles=num_vehicles)


def evaluate_on_road(model: torch.nn.Module, bed: RoadBed) -> dict[str, Any]:
    """Held-out metrics of ``model`` on the survey: the vehicle metrics over every sample
    and the mean over alignments of GBA-RSU's sum rate on the predicted feedback [bit/s/Hz]."""
    import math

    from v2xsim.training.rsu import feedback_sum_rates

    result = evaluate_vehicle(model, bed.test_set)
    by_kind: dict[tuple[int, int], list[SurveyGroup]] = {}
    for group in bed.groups:
        by_kind.setdefault((group.rsu, len(group.rows)), []).append(group)
    total, count = 0.0, 0
    for (rsu, _), groups in sorted(by_kind.items()):
        feedback = np.stack([result.feedback[g.rows] for g in groups])
        channels = np.stack([g.channels for g in groups])
        rates = feedback_sum_rates(bed.rsu, feedback, channels, p_max=bed.p_max, noise_power=bed.noise_power,
                                   codebook=bed.codebooks[rsu])
        total += float(rates.sum())
        count += len(rates)
    return {"bit_accuracy": result.bit_accuracy, "exact_match": result.exact_match,
            "top1_beam_hit": None if math.isnan(result.top1_beam_hit) else result.top1_beam_hit,
            "sum_rate": total / count if count else None}


class SurveyRecorder:
    """Collects the survey's samples and alignments (the engine's ``recorder``)."""

    def __init__(self, *, available: np.ndarray) -> None:
        self.available = np.asarray(available, dtype=bool)
        self.rows: list[dict[str, np.ndarray]] = []
        self.groups: list[SurveyGroup] = []

    def __call__(self, rsu: int, cars: list[int], channels: np.ndarray, measured: np.ndarray,
                 readings: dict[str, np.ndarray], feedback: np.ndarray) -> None:
        first = len(self.rows)
        for row, car in enumerate(cars):
            self.rows.append({"gps": readings["gps"][row].astype(np.float32), "image": readings["image"][row],
                              "lidar": readings["lidar"][row], "rss": (measured[row] * 1e3).astype(np.float32),
                              "feedback": feedback[row].astype(np.float32), "available": self.available[car],
                              "episode": car})
        self.groups.append(SurveyGroup(rsu=rsu, rows=np.arange(first, len(self.rows)),
                                       channels=np.asarray(channels).copy()))

    def sensor_set(self) -> SensorSet:
        if not self.rows:
            from v2xsim.errors import ConfigError

            raise ConfigError("evaluation.survey_s: the survey recorded no samples (no car reached an RSU); "
                              "lengthen it or add cars")
        stack = {name: np.stack([r[name] for r in self.rows]) for name in ("gps", "image", "lidar", "rss",
                                                                           "feedback", "available")}
        image_missing, lidar_missing = ~stack["available"][:, 1], ~stack["available"][:, 2]
        stack["image"][image_missing] = 0
        stack["lidar"][lidar_missing] = 0
        return SensorSet(**stack, episode=np.array([r["episode"] for r in self.rows]),
                         category=np.zeros(len(self.rows), dtype=np.int64))


__all__ = ["RoadBed", "SurveyGroup", "SurveyRecorder", "evaluate_on_road"]
