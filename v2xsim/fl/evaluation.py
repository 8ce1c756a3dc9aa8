"""Server-side evaluation of the global GBA-Vehicle: prediction accuracy, the sum rate
GBA-RSU reaches with the predicted feedback, and the modality contribution ratios phi.

Accuracy (bit accuracy, exact match, top-1 beam) is over every held-out sample; the sum
rate is over the held-out simultaneous snapshots (every vehicle of a snapshot predicts its
feedback, GBA-RSU allocates from it, the true channels give the rate); phi (Eq. 16) comes
from the global model's uni-modal predictions: each sensor alone gives feedback, GBA-RSU
serves the vehicle alone on it, and the rate follows from the measured RSS
(:func:`v2xsim.fl.da_minus.single_vehicle_rates`), averaged over the samples that have
that sensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from v2xsim.formats import MODALITIES
from v2xsim.models.gba_rsu import GBARSU
from v2xsim.models.gba_vehicle import GBAVehicle
from v2xsim.training.rsu import feedback_sum_rates
from v2xsim.training.vehicle import SensorSet, evaluate_vehicle, predict


@dataclass
class HeldOut:
    """The held-out data and what the RSU needs to turn feedback into rates.

    Attributes:
        test_set: held-out samples. snapshots: (S, K) rows of ``test_set`` per snapshot.
        channels: (S, K, Nt) true channels [sqrt(W)]. codebook: (Nt, W).
        p_max: transmit power [W]. noise_power: [W]. noise_mw: [mW] (the unit of ``rss``).
        rsu: trained GBA-RSU.
    """

    test_set: SensorSet
    snapshots: np.ndarray
    channels: np.ndarray
    codebook: np.ndarray
    p_max: float
    noise_power: float
    noise_mw: float
    rsu: GBARSU

    def with_available(self, available: np.ndarray) -> "HeldOut":
        """The same bed with other sensor availability (N, 3) (test-time sensor loss)."""
        return replace(self, test_set=replace(self.test_set, available=np.asarray(available, dtype=bool)))


def evaluate_global(model: GBAVehicle, bed: HeldOut, *, contributions: bool = True) -> dict[str, Any]:
    """Metrics of the global model on ``bed`` (pruned deployment: each sample uses the
    sensors it has)."""
    result = evaluate_vehicle(model, bed.test_set)
    rates = feedback_sum_rates(bed.rsu, result.feedback[bed.snapshots], bed.channels, p_max=bed.p_max,
                               noise_power=bed.noise_power, codebook=bed.codebook)
    out: dict[str, Any] = {"bit_accuracy": result.bit_accuracy, "exact_match": result.exact_match,
                           "top1_beam_hit": None if math.isnan(result.top1_beam_hit) else result.top1_beam_hit,
                           "sum_rate": float(rates.mean())}
    if contributions:
        out.update(contribution_metrics(model, bed))
    return out


@torch.inference_mode()
def contribution_metrics(model: GBAVehicle, bed: HeldOut) -> dict[str, float]:
    """Uni-modal rates ``rate_<m>`` [bit/s/Hz] and contribution ratios ``phi_<m>`` (Eq. 16)."""
    from v2xsim.fl.da_minus import contribution_ratios, single_vehicle_rates

    data = bed.test_set
    rss = torch.from_numpy(data.rss)
    means, present = [], []
    for modality in model.modalities:
        has = data.available[:, MODALITIES.index(modality)]
        if not has.any():
            means.append(0.0)
            present.append(False)
            continue
        probabilities = predict(model, data, sensors=(modality,))
        feedback = torch.from_numpy((probabilities > 0.5).astype(np.float32))
        allocation = bed.rsu(feedback[:, None, :], bed.p_max)[:, 0, :]
        rates = single_vehicle_rates(allocation, rss, noise_mw=bed.noise_mw, p_max=bed.p_max).numpy()
        means.append(float(rates[has].mean()))
        present.append(True)
    phi = contribution_ratios(torch.tensor(means, dtype=torch.float64), torch.tensor(present)).numpy()
    out = {}
    for column, modality in enumerate(model.modalities):
        out[f"rate_{modality}"] = means[column]
        out[f"phi_{modality}"] = float(phi[column])
    return out


def availability_at_test_time(available: np.ndarray, *, image: float, lidar: float, mode: str,
                           rng: np.random.Generator, episode: np.ndarray) -> np.ndarray:
    """Sensor availability (N, 3) at test time with completeness ``image`` / ``lidar``
    (Fig. 6): ``mode="vehicles"`` removes the sensor from a share 1 - kappa of the
    vehicles (rounded), ``"samples"`` from random samples; what a sample already lacks
    stays missing."""
    out = np.asarray(available, dtype=bool).copy()
    vehicles = np.unique(episode)
    for column, kappa in ((1, image), (2, lidar)):
        if not 0 <= kappa <= 1:
            raise ValueError(f"completeness must be in [0, 1], got {kappa}")
        if kappa >= 1:
            continue
        if mode == "vehicles":
            lacking = rng.permutation(vehicles)[: int(round(len(vehicles) * (1 - kappa)))]
            out[np.isin(episode, lacking), column] = False
        elif mode == "samples":
            out[rng.random(len(out)) >= kappa, column] = False
        else:
            raise ValueError(f"mode must be 'vehicles' or 'samples', got {mode!r}")
    return out
