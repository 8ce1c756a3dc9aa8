"""DA-: dynamic modality dropping against modality imbalance (seed 002, Section IV-B,
Eqs. 16, 18 and 19, [Step A] and Algorithm 2).

Every vehicle owns a *harmonious branch* (:class:`HarmoniousBranch`) that maps the
contribution ratios ``phi`` of its previous mini-batch (one per modality, Eq. 16) to
per-modality keep / drop masks. With the masks:

* the masked fused features give the multi-modal prediction and its BCE loss, which
  trains GBA-Vehicle only (the masks enter it detached);
* each modality's masked features go through that modality's own fusion block alone
  (pruned fusion with one modality, :func:`unimodal_logits`); the RSU turns these
  uni-modal predictions into beams and powers (GBA-RSU, frozen) and rates
  (:func:`single_vehicle_rates`), the rates into ``phi`` (:func:`contribution_ratios`)
  and the harmonious loss (Eqs. 18-19, :func:`harmonious_loss`), whose gradient trains
  the harmonious branch only (the features enter it detached). The branch is never
  aggregated; the caller keeps it per vehicle (:class:`DAMinusState`).

:func:`da_minus_epoch` runs one local epoch of this on one vehicle.

Choices the paper leaves open (each: what is done here, then the alternative)
---------------------------------------------------------------------------------
Rates at the RSU. Each uni-modal prediction is served as a *one-vehicle* feedback graph
    (:func:`single_vehicle_rates`): the samples of a vehicle's mini-batch are different
    instants of one vehicle, not vehicles present at the same time, so there is no
    meaningful multi-user graph to build from them; alone, a vehicle's rate follows from
    its measured RSS (received power per codebook beam) and the allocation, without a
    channel matrix, which also works on real FLASH data (RSS but no channels).
    Alternative: graphs of the K vehicles' samples taken at the same index, with their
    channels and the interference between them (needs simulated channels).

How the masks get gradients (``mask_gradient`` of :func:`da_minus_epoch`). The masks
    are hard 0/1 draws (:func:`sample_keep_masks`, keep probability ``sigmoid(logit)``).
    Default "expected": each sample's uni-modal rate for modality ``q`` depends only on
    its own mask ``m_bq``, so every sample is rated with ``q`` kept and with ``q``
    dropped (two RSU passes) and the expected mean rate
    ``p_q kept + (1 - p_q) dropped`` is differentiated exactly
    (:func:`expected_rate_surrogate`); the loss's slope ``dL/dR_q`` is taken at the
    realised rates. Alternative "straight_through" (the literal reading: masks not
    detached in the uni-modal path): backward through the straight-through Bernoulli
    masks (the sigmoid's gradient), the fusion block, GBA-RSU and the rate surrogate
    below. It differentiates the rate in the *feature scale* at ``m = 0`` or 1, a local
    slope that can have the opposite sign of ``kept - dropped`` (e.g. a confident
    modality whose sharper logits make GBA-RSU's soft mask spread over several beams
    marked 1). On the LiDAR-dominated toy of ``tests/fl/test_da_minus.py`` (8 seeds),
    "expected" dropped LiDAR most in 8 runs, "straight_through" in 5 (in the others it
    dropped a weak sensor, up to 98 % of the time). Other alternatives:
    Gumbel-sigmoid relaxations, a score-function (REINFORCE) estimator (unbiased, noisier
    than "expected").

Rate gradient through GBA-RSU (needed by "straight_through" only). For a one-vehicle
    graph GBA-RSU puts all of ``p_max`` on one beam (renormalisation), and the exact rate
    ``log2(1 + sum_w a_w^2 r_w / (p N))`` has zero derivative in every beam it does not
    use (``a_w = 0``) while the renormalisation removes the used beam's direction: the
    exact gradient reaching the feedback is zero. The forward value is kept exact; the
    backward pass uses the amplitude-share surrogate of :func:`single_vehicle_rates`
    (``straight_through=True``): moving amplitude from the used beam to beam ``j`` is
    worth ``r_j - r_used``, which through GBA-RSU's straight-through softmax becomes the
    gradient of the soft mask's expected RSS.

The weight of the rate term. Eq. 19 divides the rate regulariser by K, the vehicles of
    the federation (``num_vehicles``). For the dominant modality ``q`` the loss favours
    dropping it only while ``alpha / (|Q| - 1) * sum_{j != q} 1 / R_j > beta / K``
    (roughly): with ``alpha = beta = 1``, K = 1 and rates of a few bit/s/Hz the rate term
    wins and the branch learns to keep everything. A modality whose uni-modal rate does
    not depend on its mask (pure noise) leaves the loss indifferent to its drop rate.

Masks per sample, not per mini-batch. The paper's mask is one 0/1 vector per modality
    for the whole mini-batch. Here the branch gives one keep probability per modality
    (from the vehicle's ``phi``, the same for all samples of the mini-batch) and every
    sample draws its own mask from it: the share of dropped samples tracks the keep
    probability smoothly and the harmonious gradient averages over many draws.
    Alternative: one draw per modality shared by the whole mini-batch (``keep_logits``
    of shape (1, M) sampled with ``available`` of one row, then broadcast).

Never dropping everything. A sample whose draw drops every modality it has keeps the one
    whose draw came closest to keeping it (largest ``p_q - u_q`` for uniform ``u_q``):
    random, favours the modalities with a higher keep probability, and favours no column
    order. Alternatives: restore all its modalities (as the centralised modality dropout
    does) or redraw.

Dropped blocks are pruned. In the fused prediction a dropped modality's fusion block is
    left out like a missing sensor (its bias too); the paper's literal ``M (.) f`` keeps
    the bias ``b_q`` (with ``fusion="sum"`` the two differ only by that bias). In the
    uni-modal prediction the dropped modality's block still runs on zero features (its
    bias gives a feature-free prediction), ``fuse({q: m_q f_q})``.

The phi floor. Eq. 16 divides by rates that can be 0 (a useless modality);
    :func:`contribution_ratios` uses ``R + floor`` (``floor = 0.01`` bit/s/Hz), smooth
    and always finite. Alternative: ``max(R, floor)`` (no gradient below the floor).

When the BCE gradient is applied. ``bce_step="batch"`` (default) steps GBA-Vehicle's
    optimiser after every mini-batch, as the FedAvg baselines do; ``bce_step="epoch"``
    sums the BCE gradients of all mini-batches and steps once at the end of the epoch
    (Algorithm 2, line 25, read literally).

The harmonious branch's input. ``log(1 + phi)`` rather than ``phi`` itself: the same
    information, bounded growth when a floored rate makes a ratio large.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from v2xsim.models.gba_rsu import GBARSU
from v2xsim.models.gba_vehicle import MODALITIES, GBAVehicle
from v2xsim.training.vehicle import SensorSet

__all__ = ["DAMinusEpoch", "DAMinusState", "HarmoniousBranch", "INITIAL_KEEP", "PHI_FLOOR", "contribution_ratios",
           "da_minus_epoch", "expected_rate_surrogate", "harmonious_loss", "initial_phi", "make_harmonious_optimizer",
           "sample_keep_masks", "single_vehicle_rates", "unimodal_logits"]

#: rate added before the ratios of Eq. 16 [bit/s/Hz]
PHI_FLOOR = 0.01
#: keep probability of every modality before the harmonious branch has learned anything
INITIAL_KEEP = 0.9


def single_vehicle_rates(allocation: torch.Tensor, rss_mw: torch.Tensor, *, noise_mw: float, p_max: float,
                         straight_through: bool = True) -> torch.Tensor:
    """Rate [bit/s/Hz] of one vehicle served alone, (B,).

    ``R = log2(1 + sum_w (a_w^2 / p_max) r_w / N)``: the RSU transmits to this vehicle
    only (a one-vehicle feedback graph), so there is no interference and the received
    power on beam ``w`` is the RSS ``r_w`` measured with the whole budget on that beam,
    scaled by the share of the budget the allocation puts there. Exact for allocations
    with one non-zero entry (GBA-RSU's output); for several beams it is the incoherent
    sum of their powers (the coherent sum needs the channel's phases).

    Why one-vehicle graphs: the samples of a training mini-batch are different instants
    of one vehicle (or of vehicles not present together), not a snapshot of vehicles the
    RSU serves at once; alone, the rate follows from the RSS, which real FLASH data
    provide without channel matrices.

    Args:
        allocation: (B, W) real amplitudes per beam [square root of the unit of ``p_max``];
            squared norm = power used.
        rss_mw: (B, W) received power per beam when ``p_max`` is sent on it (0 below the
            receiver sensitivity), in the same unit as ``noise_mw`` (mW in
            :class:`~v2xsim.training.vehicle.SensorSet`).
        noise_mw: receiver noise power, same unit as ``rss_mw``.
        p_max: the power budget the RSS refers to, in the unit of ``allocation ** 2``.
        straight_through: keep the forward value exact but take the gradient of the
            amplitude-share surrogate ``(|a|^2 / p_max) * sum_w (|a_w| / sum_v |a_v|) r_w``
            (equal to the exact received power when one beam is used). The exact
            received power has zero derivative in every unused beam and GBA-RSU's
            renormalisation removes the used beam's direction, so without this no
            gradient reaches the feedback; with it, moving amplitude from the used beam to
            beam ``j`` is worth ``r_j - r_used``. False: the plain exact gradient.

    Differentiable in ``allocation``.
    """
    if allocation.shape != rss_mw.shape or allocation.dim() != 2:
        raise ValueError(f"allocation {tuple(allocation.shape)} and rss_mw {tuple(rss_mw.shape)} must both be (B, W)")
    if not noise_mw > 0 or not p_max > 0:
        raise ValueError(f"noise_mw and p_max must be > 0, got {noise_mw}, {p_max}")
    rss = rss_mw.to(allocation.dtype)
    used = (allocation * allocation).sum(dim=-1) / p_max  # share of the budget used, (B,)
    received = ((allocation * allocation) / p_max * rss).sum(dim=-1)
    if straight_through:
        # |a| with derivative +1 at 0 (torch's abs has 0 there, which would hide unused beams)
        sign = torch.where(allocation < 0, -1.0, 1.0).to(allocation.dtype).detach()
        magnitude = allocation * sign
        shares = magnitude / magnitude.sum(dim=-1, keepdim=True).clamp_min(1e-20)
        surrogate = used * (shares * rss).sum(dim=-1)
        received = received.detach() + surrogate - surrogate.detach()
    return torch.log2(1.0 + received / noise_mw)


def contribution_ratios(rates: torch.Tensor, present: torch.Tensor, *, floor: float = PHI_FLOOR) -> torch.Tensor:
    """Modality contribution ratios (Eq. 16), same shape as ``rates`` (..., M).

    ``phi_i = 1 / (n - 1) * sum_{j present, j != i} (R_i + floor) / (R_j + floor)`` over
    the ``n`` present modalities. A modality not present gets ``phi = 0`` and enters no
    other modality's sum; with one present modality its ``phi`` is 1 (nothing to compare
    with), with none all are 0. The floor [bit/s/Hz] keeps a zero rate from dividing by
    zero (``R + floor``: smooth, so rates below the floor keep their gradient). Always
    finite for finite, non-negative rates.

    Args:
        rates: (..., M) uni-modal rates [bit/s/Hz] (negative values are read as 0).
        present: (..., M) bool, the modalities that count.
    """
    if rates.shape != present.shape:
        raise ValueError(f"rates {tuple(rates.shape)} and present {tuple(present.shape)} differ")
    if not floor > 0:
        raise ValueError(f"floor must be > 0, got {floor}")
    present = present.to(torch.bool)
    r = rates.clamp_min(0.0) + floor
    m = r.shape[-1]
    ratio = r.unsqueeze(-1) / r.unsqueeze(-2)  # [..., i, j] = r_i / r_j
    others = present.unsqueeze(-2) & ~torch.eye(m, dtype=torch.bool, device=r.device)  # j present, j != i
    total = torch.where(others, ratio, torch.zeros((), dtype=r.dtype, device=r.device)).sum(dim=-1)
    count = present.sum(dim=-1, keepdim=True).to(r.dtype)
    phi = torch.where(count > 1, total / (count - 1).clamp_min(1.0), torch.ones_like(total))
    return torch.where(present, phi, torch.zeros_like(phi))


def unimodal_logits(model: GBAVehicle, features: Mapping[str, torch.Tensor], masks: torch.Tensor) -> torch.Tensor:
    """Uni-modal predictions (B, M, W): each modality's masked features through its own
    fusion block alone (pruned fusion with that one modality), ``model.fuse({q: m_q f_q})``.

    Args:
        model: GBA-Vehicle; column ``i`` of ``masks`` is ``model.modalities[i]``.
        features: ``{modality: (B, L_q)}`` (a modality missing from it gives logits 0).
        masks: (B, M) float keep masks (0 = dropped: the block runs on zero features).
    """
    columns = []
    for column, m in enumerate(model.modalities):
        if m in features:
            f = features[m]
            columns.append(model.fuse({m: f * masks[:, column:column + 1].to(f.dtype)}))
        else:
            columns.append(masks.new_zeros(masks.shape[0], model.num_beams))
    return torch.stack(columns, dim=1)


class HarmoniousBranch(nn.Module):
    """The harmonious branch (Fig. 4d): contribution ratios -> one keep logit per modality.

    Each modality becomes a token ``MLP(log(1 + phi_q)) + e_q`` (shared MLP 1 -> L_H ->
    L_H, learned modality embedding ``e_q``), the tokens attend to each other
    (multi-head self-attention across modalities, residual and LayerNorm), and one linear
    layer per modality maps that modality's token to its keep logit (separate output
    layers let each modality's gradient move its own logit; a shared layer moves all
    keep probabilities together first and separates them much more slowly).

    Initialisation: the output layer starts with zero weights and the bias
    ``logit(0.9)``, so every modality starts kept with probability 0.9 whatever ``phi``
    (a branch that drops at random before it has learned would only add noise); the
    first updates give the output weights their values.

    Args:
        modalities: the modalities, in the column order of ``phi`` and of the output.
        hidden: token size L_H (64 in seed 002).
        heads: attention heads (must divide ``hidden``).
    """

    def __init__(self, *, modalities: Sequence[str] = MODALITIES, hidden: int = 64, heads: int = 4) -> None:
        super().__init__()
        if not modalities:
            raise ValueError("modalities must not be empty")
        if hidden < 1 or heads < 1 or hidden % heads:
            raise ValueError(f"hidden must be a positive multiple of heads, got {hidden}, {heads}")
        self.modalities = tuple(modalities)
        self.project = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.embedding = nn.Parameter(0.1 * torch.randn(len(self.modalities), hidden))
        self.attention = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.norm = nn.LayerNorm(hidden)
        # one output layer per modality (token q -> keep logit of q)
        self.head_weight = nn.Parameter(torch.zeros(len(self.modalities), hidden))
        self.head_bias = nn.Parameter(torch.full((len(self.modalities),), math.log(INITIAL_KEEP / (1.0 - INITIAL_KEEP))))

    def forward(self, phi: torch.Tensor) -> torch.Tensor:
        """Keep logits, shape of ``phi`` (..., M): ``sigmoid`` = keep probability."""
        if phi.shape[-1] != len(self.modalities):
            raise ValueError(f"phi must end in {len(self.modalities)} modalities, got {tuple(phi.shape)}")
        lead = phi.shape[:-1]
        x = torch.log1p(phi.reshape(-1, len(self.modalities), 1).float().clamp_min(0.0))
        tokens = self.project(x) + self.embedding  # (N, M, L_H)
        mixed, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        tokens = self.norm(tokens + mixed)
        logits = (tokens * self.head_weight).sum(dim=-1) + self.head_bias  # (N, M)
        return logits.reshape(*lead, len(self.modalities))


def sample_keep_masks(keep_logits: torch.Tensor, available: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-sample keep masks (B, M) float, straight-through Bernoulli.

    Forward: hard 0/1 draws, ``mask[b, q] = 1`` with probability ``sigmoid(logit_q)``;
    backward: the gradient of ``sigmoid(logit)`` (the straight-through estimator).
    Modalities a sample lacks are always 0 (and pass no gradient). A sample whose draws
    drop every modality it has keeps the one whose draw came closest to keeping it
    (largest ``p_q - u_q``); a sample with no modality at all gets all zeros.

    Each sample draws its own mask (the paper draws one per mini-batch; see the module
    docstring): ``keep_logits`` (B, M) or (1, M) broadcast over the batch.

    Args:
        keep_logits: (B, M) or (1, M) keep logits (:class:`HarmoniousBranch`).
        available: (B, M) bool, the modalities each sample has.
        generator: source of the uniform draws (B * M values per call).
    """
    available = available.to(torch.bool)
    p = torch.sigmoid(keep_logits).expand(available.shape)
    u = torch.rand(available.shape, generator=generator, dtype=p.dtype, device=p.device)
    with torch.no_grad():
        keep = (u < p) & available
        lost = available.any(dim=1) & ~keep.any(dim=1)
        if bool(lost.any()):
            margin = torch.where(available, p - u, torch.full_like(p, -math.inf))
            best = nn.functional.one_hot(margin.argmax(dim=1), available.shape[1]).to(torch.bool)
            keep = keep | (best & lost.unsqueeze(1))
        hard = keep.to(p.dtype)
    weight = available.to(p.dtype)
    return hard + (p - p.detach()) * weight


def harmonious_loss(phi: torch.Tensor, rates: torch.Tensor, present: torch.Tensor, *, alpha: float = 1.0,
                    beta: float = 1.0, num_vehicles: int = 1) -> torch.Tensor:
    """Harmonious loss of one vehicle's mini-batch (Eqs. 18-19), a scalar.

    ``alpha * sum_q |1 - phi_q| + beta * (-sum_q R_q) / K`` over the present modalities:
    Eq. 18 pulls every contribution ratio to 1 (balanced modalities), the rate term of
    Eq. 19 keeps the branch from reaching balance by dropping everything. ``R_q`` is the
    vehicle's uni-modal rate (mean over the mini-batch) [bit/s/Hz]; Eq. 19 sums the
    rates over the K vehicles and divides by K, of which this is one vehicle's share.

    Args:
        phi: (M,) contribution ratios of this mini-batch (:func:`contribution_ratios`).
        rates: (M,) uni-modal rates [bit/s/Hz].
        present: (M,) bool, the modalities that count.
        alpha, beta: trade-off weights (1 and 1 in seed 002).
        num_vehicles: K, the vehicles of the federation.
    """
    if phi.shape != rates.shape or phi.shape != present.shape or phi.dim() != 1:
        raise ValueError(f"phi, rates and present must all be (M,), got {tuple(phi.shape)}, {tuple(rates.shape)}, "
                         f"{tuple(present.shape)}")
    if num_vehicles < 1:
        raise ValueError(f"num_vehicles must be >= 1, got {num_vehicles}")
    weight = present.to(phi.dtype)
    balance = ((1.0 - phi).abs() * weight).sum()
    rate = (rates * weight).sum()
    return alpha * balance - beta * rate / num_vehicles


def initial_phi(*, present: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random contribution ratios (M,) for a vehicle's first DA- epoch (seed 002,
    footnote 4): uniform in [0.5, 1.5) for the present modalities, 0 for the others."""
    present = present.to(torch.bool)
    draw = 0.5 + torch.rand(present.shape, generator=generator)
    return torch.where(present, draw, torch.zeros_like(draw))


def make_harmonious_optimizer(branch: HarmoniousBranch, *, lr: float = 1e-3) -> torch.optim.Optimizer:
    """AdamW over the harmonious branch (the optimiser :class:`DAMinusState` keeps)."""
    return torch.optim.AdamW(branch.parameters(), lr=lr)


def _unimodal_rates(model: GBAVehicle, rsu: GBARSU, features: Mapping[str, torch.Tensor], masks: torch.Tensor,
                    rss_mw: torch.Tensor, *, noise_mw: float, p_max: float) -> torch.Tensor:
    """Per-sample uni-modal rates (B, M) [bit/s/Hz]: uni-modal logits -> sigmoid -> GBA-RSU
    on one-vehicle graphs -> :func:`single_vehicle_rates` with each sample's RSS."""
    logits = unimodal_logits(model, features, masks)  # (B, M, W)
    batch, count, beams = logits.shape
    allocation = rsu(torch.sigmoid(logits).reshape(batch * count, 1, beams), p_max)[:, 0]
    rss = rss_mw.to(allocation.dtype).unsqueeze(1).expand(batch, count, beams).reshape(batch * count, beams)
    return single_vehicle_rates(allocation, rss, noise_mw=noise_mw, p_max=p_max).reshape(batch, count)


def expected_rate_surrogate(keep_logits: torch.Tensor, kept_rates: torch.Tensor, dropped_rates: torch.Tensor,
                            available: torch.Tensor, *, weights: torch.Tensor) -> torch.Tensor:
    """A scalar whose gradient in ``keep_logits`` is the exact gradient of
    ``sum_q weights_q * E[R_q]``, ``R_q`` the mean uni-modal rate over the samples that
    have modality ``q``, under independent Bernoulli masks.

    A sample's uni-modal rate for ``q`` depends only on its own mask ``m_bq``, which is
    kept with probability ``p_q = sigmoid(logit_q)``, so
    ``E[R_bq] = p_q * kept_bq + (1 - p_q) * dropped_bq`` exactly and
    ``d E[R_q] / d logit_q = p_q (1 - p_q) * mean_b (kept_bq - dropped_bq)``: no sampling
    noise from the masks and no local-slope approximation (compare the straight-through
    gradient). With ``weights = dL / dR_q`` this is the harmonious loss's gradient to
    first order in the rates. (The never-drop-everything rule of
    :func:`sample_keep_masks` is ignored: it changes ``E[m]`` by at most the chance of
    drawing all drops.)

    Args:
        keep_logits: (B, M) or (1, M) keep logits.
        kept_rates, dropped_rates: (B, M) each sample's uni-modal rate with the modality
            kept / dropped [bit/s/Hz] (no gradient needed).
        available: (B, M) bool, the sample-modalities that count.
        weights: (M,) weight of each modality's mean rate (no gradient needed).
    """
    have = available.to(kept_rates.dtype)
    gain = ((kept_rates - dropped_rates).detach() * have).sum(dim=0) / have.sum(dim=0).clamp_min(1.0)  # (M,)
    keep = torch.sigmoid(keep_logits).expand(available.shape)
    share = (keep * have).sum(dim=0) / have.sum(dim=0).clamp_min(1.0)  # mean keep probability, (M,)
    return (weights.detach() * gain * share).sum()


@dataclass
class DAMinusState:
    """What a vehicle keeps between its DA- epochs and rounds (never aggregated).

    Attributes:
        harmonious: the harmonious branch's ``state_dict()``.
        optimizer: its optimiser's ``state_dict()``.
        phi: (M,) contribution ratios of the last mini-batch (the next epoch's
            ``phi_previous``).
    """

    harmonious: dict[str, Any]
    optimizer: dict[str, Any]
    phi: torch.Tensor

    @classmethod
    def capture(cls, branch: HarmoniousBranch, optimizer: torch.optim.Optimizer, phi: torch.Tensor) -> "DAMinusState":
        """Copies of the branch's and optimiser's state and of ``phi``."""
        return cls(harmonious=copy.deepcopy(branch.state_dict()), optimizer=copy.deepcopy(optimizer.state_dict()),
                   phi=phi.detach().clone())

    def restore(self, branch: HarmoniousBranch, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        """Load the branch and optimiser state; returns ``phi`` for the next epoch."""
        branch.load_state_dict(self.harmonious)
        optimizer.load_state_dict(self.optimizer)
        return self.phi.clone()


@dataclass
class DAMinusEpoch:
    """What one DA- epoch reports.

    Attributes:
        phi_last: (M,) contribution ratios of the last mini-batch (the next epoch's
            ``phi_previous``; the input ``phi_previous`` if no batch ran).
        mean_phi: (M,) mean ratios over the epoch's mini-batches (``phi_previous`` if none).
        mean_rates: (M,) mean uni-modal rates over the mini-batches [bit/s/Hz] (zeros if
            none).
        drop_rate: (M,) per modality, the share of available sample-modalities dropped
            (0 for a modality no sample had).
        mean_bce: mean BCE of the fused prediction over the mini-batches (nan if none).
        batches: mini-batches that ran (those with fewer than 2 samples are skipped).
    """

    phi_last: torch.Tensor
    mean_phi: torch.Tensor
    mean_rates: torch.Tensor
    drop_rate: torch.Tensor
    mean_bce: float
    batches: int


MaskGradient = Literal["expected", "straight_through"]


def da_minus_epoch(model: GBAVehicle, harmonious: HarmoniousBranch, *, model_optimizer: torch.optim.Optimizer,
                   harmonious_optimizer: torch.optim.Optimizer, data: SensorSet, order: np.ndarray, batch_size: int,
                   rsu: GBARSU, noise_mw: float, p_max: float, phi_previous: torch.Tensor,
                   generator: torch.Generator, alpha: float = 1.0, beta: float = 1.0,
                   bce_step: Literal["batch", "epoch"] = "batch",
                   proximal: Callable[[GBAVehicle], torch.Tensor] | None = None,
                   num_vehicles: int = 1, mask_gradient: MaskGradient = "expected") -> DAMinusEpoch:
    """One local epoch of DA- training on one vehicle (Algorithm 2 for vehicle k).

    Per mini-batch ``rows = order[i * batch_size:(i + 1) * batch_size]``:

    1. keep masks (B, M) drawn from ``harmonious(phi_previous)`` (input detached) with
       :func:`sample_keep_masks`;
    2. branch features of the modalities the vehicle has;
    3. fused logits from the masked features, masks detached (dropped blocks pruned):
       BCE with the feedback, whose gradient reaches GBA-Vehicle only;
    4. uni-modal logits (:func:`unimodal_logits`) from the detached features and the
       masks -> sigmoid -> GBA-RSU on one-vehicle graphs (B, 1, W) per modality ->
       :func:`single_vehicle_rates` with each sample's RSS -> per-modality mean rate over
       the samples that have the modality -> ``phi`` (:func:`contribution_ratios`) ->
       :func:`harmonious_loss`, whose gradient is taken for the harmonious branch only
       (GBA-Vehicle's gradients are untouched), and its optimiser steps;
    5. this batch's ``phi`` is the next batch's ``phi_previous``.

    Args:
        model: GBA-Vehicle (set to train mode; left in train mode).
        harmonious: this vehicle's branch, columns = ``model.modalities``.
        model_optimizer: optimiser over GBA-Vehicle's parameters.
        harmonious_optimizer: optimiser over ``harmonious``'s parameters.
        data: the vehicle's samples (RSS in the unit of ``noise_mw``).
        order: the row order of this epoch (indices into ``data``).
        batch_size: samples per mini-batch; batches of fewer than 2 samples are skipped
            (BatchNorm).
        rsu: GBA-RSU, frozen: used in eval mode, its parameters get no gradient and its
            mode and ``requires_grad`` flags are restored afterwards.
        noise_mw, p_max: link budget of :func:`single_vehicle_rates`.
        phi_previous: (M,) ratios of the previous mini-batch (random in the first epoch,
            :func:`initial_phi`; then the previous epoch's ``phi_last``).
        generator: source of the mask draws (the epoch is deterministic given it, the
            parameters and ``order``).
        alpha, beta, num_vehicles: weights of :func:`harmonious_loss` (``num_vehicles``
            = K of Eq. 19, the vehicles of the federation).
        bce_step: "batch" steps ``model_optimizer`` after every mini-batch (the FedAvg
            baselines' local training); "epoch" sums the BCE gradients of all
            mini-batches and steps once at the end (Algorithm 2, line 25).
        proximal: optional extra term added to every mini-batch's BCE loss, called with
            the model (e.g. FedProx's ``mu / 2 * ||w - w_global||^2``).
        mask_gradient: how the harmonious loss reaches the keep logits (module docstring):
            "expected" (default) rates every sample with each modality kept and dropped
            and differentiates the expected rates exactly
            (:func:`expected_rate_surrogate`); "straight_through" backpropagates through
            the straight-through masks, the uni-modal fusion blocks, GBA-RSU and the rate
            surrogate of :func:`single_vehicle_rates`.
    """
    if mask_gradient not in ("expected", "straight_through"):
        raise ValueError(f"mask_gradient must be 'expected' or 'straight_through', got {mask_gradient!r}")
    if bce_step not in ("batch", "epoch"):
        raise ValueError(f"bce_step must be 'batch' or 'epoch', got {bce_step!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if tuple(harmonious.modalities) != tuple(model.modalities):
        raise ValueError(f"harmonious branch modalities {harmonious.modalities} differ from the model's "
                         f"{model.modalities}")
    modalities = model.modalities
    count = len(modalities)
    if phi_previous.shape != (count,):
        raise ValueError(f"phi_previous must have shape ({count},), got {tuple(phi_previous.shape)}")
    columns = [MODALITIES.index(m) for m in modalities]
    available_all = torch.from_numpy(np.asarray(data.available)[:, columns].astype(bool))
    feedback_all = torch.from_numpy(np.asarray(data.feedback, dtype=np.float32))
    rss_all = torch.from_numpy(np.asarray(data.rss, dtype=np.float32))
    order = np.asarray(order)
    loss_fn = nn.BCEWithLogitsLoss()
    parameters = [p for p in harmonious.parameters() if p.requires_grad]

    rsu_mode = rsu.training
    rsu_flags = [p.requires_grad for p in rsu.parameters()]
    rsu.eval()
    for p in rsu.parameters():
        p.requires_grad_(False)
    model.train()
    harmonious.train()
    phi_previous = phi_previous.detach().to(torch.float32)
    phis: list[torch.Tensor] = []
    rate_history: list[torch.Tensor] = []
    bces: list[float] = []
    dropped = torch.zeros(count)
    had = torch.zeros(count)
    if bce_step == "epoch":
        model_optimizer.zero_grad(set_to_none=True)
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            if len(rows) < 2:  # BatchNorm needs two samples
                continue
            available = available_all[rows]
            present = [m for i, m in enumerate(modalities) if bool(available[:, i].any())]
            if not present:
                continue
            has = available.any(dim=0)
            weight = available.to(torch.float32)
            keep_logits = harmonious(phi_previous.unsqueeze(0))  # (1, M)
            masks = sample_keep_masks(keep_logits, available, generator)
            hard = masks.detach()
            dropped += ((hard == 0) & available).sum(dim=0).float()
            had += weight.sum(dim=0)

            # multi-modal prediction and BCE: trains GBA-Vehicle only (masks detached; the
            # blocks of dropped and missing modalities are pruned)
            features = model.features(data.inputs(rows, present))
            fused = model.fuse({m: features[m] * hard[:, i:i + 1] for i, m in enumerate(modalities) if m in features},
                               hard)
            bce = loss_fn(fused, feedback_all[rows])
            loss = bce if proximal is None else bce + proximal(model)
            if bce_step == "batch":
                model_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if bce_step == "batch":
                model_optimizer.step()
            bces.append(float(bce.detach()))

            # uni-modal predictions -> RSU -> rates -> phi -> harmonious loss: trains the
            # harmonious branch only (features detached, gradients taken for its parameters)
            detached = {m: f.detach() for m, f in features.items()}
            rss = rss_all[rows]
            if mask_gradient == "straight_through":
                rates = _unimodal_rates(model, rsu, detached, masks, rss, noise_mw=noise_mw, p_max=p_max)
                mean_rates = (rates * weight).sum(dim=0) / weight.sum(dim=0).clamp_min(1.0)
                phi = contribution_ratios(mean_rates, has)
                h_loss = harmonious_loss(phi, mean_rates, has, alpha=alpha, beta=beta, num_vehicles=num_vehicles)
                grads = torch.autograd.grad(h_loss, parameters, allow_unused=True)
            else:
                with torch.no_grad():
                    both = _unimodal_rates(model, rsu, {m: torch.cat([f, f]) for m, f in detached.items()},
                                           torch.cat([torch.ones_like(hard), torch.zeros_like(hard)]),
                                           torch.cat([rss, rss]), noise_mw=noise_mw, p_max=p_max)
                    kept, lost = both[:len(rows)], both[len(rows):]
                    rates = hard * kept + (1.0 - hard) * lost  # what the drawn masks give
                mean_rates = ((rates * weight).sum(dim=0) / weight.sum(dim=0).clamp_min(1.0)).requires_grad_()
                phi = contribution_ratios(mean_rates, has)
                h_loss = harmonious_loss(phi, mean_rates, has, alpha=alpha, beta=beta, num_vehicles=num_vehicles)
                (slope,) = torch.autograd.grad(h_loss, mean_rates)  # dL / dR_q, (M,)
                surrogate = expected_rate_surrogate(keep_logits, kept, lost, available, weights=slope)
                grads = torch.autograd.grad(surrogate, parameters, allow_unused=True)
            harmonious_optimizer.zero_grad(set_to_none=True)
            for p, g in zip(parameters, grads):
                p.grad = torch.zeros_like(p) if g is None else g
            harmonious_optimizer.step()

            phi_previous = phi.detach()
            phis.append(phi_previous)
            rate_history.append(mean_rates.detach())
        if bce_step == "epoch" and bces:
            model_optimizer.step()
    finally:
        rsu.train(rsu_mode)
        for p, flag in zip(rsu.parameters(), rsu_flags):
            p.requires_grad_(flag)
    return DAMinusEpoch(
        phi_last=phi_previous.clone(),
        mean_phi=torch.stack(phis).mean(dim=0) if phis else phi_previous.clone(),
        mean_rates=torch.stack(rate_history).mean(dim=0) if rate_history else torch.zeros(count),
        drop_rate=torch.where(had > 0, dropped / had.clamp_min(1.0), torch.zeros_like(had)),
        mean_bce=float(np.mean(bces)) if bces else float("nan"),
        batches=len(bces),
    )
