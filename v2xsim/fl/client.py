"""A vehicle as an FL client: its local data, its local GBA-Vehicle and optimiser (both
persist between rounds), and one round of local work as a :class:`FitInstruction` asks:
take (part of) the global model, train, upload (part of) the local model.

Local training is the centralised recipe of :mod:`v2xsim.training.vehicle` on the local
data (BCE, AdamW, random RGB / LiDAR drops so the pruned fusion learns any sensor subset),
so every strategy trains the same way and only the federation differs. DA- replaces the
random drops by the harmonious branch's masks (:mod:`v2xsim.fl.da_minus`); DA+ adds
synthetic samples of under-represented label combinations and trains only the decision
layers (:mod:`v2xsim.fl.da_plus`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from v2xsim.fl.aggregation import parameter_group, payload_bytes, select_entries
from v2xsim.fl.base import ClientUpdate, State
from v2xsim.formats import MODALITIES
from v2xsim.models.gba_rsu import GBARSU
from v2xsim.models.gba_vehicle import GBAVehicle
from v2xsim.training.vehicle import SensorSet, modality_dropout_mask

BCE_STEPS = ("batch", "epoch")


@dataclass(frozen=True, kw_only=True)
class LocalTraining:
    """Local training of every client.

    Attributes:
        epochs: local epochs per round (the paper: 5).
        batch_size: samples per step (the paper: 256).
        lr: AdamW learning rate (the paper: 1e-4 over 120-250 rounds; 1e-3 fits the CPU budget).
        weight_decay: AdamW decay of weight matrices and kernels.
        modality_dropout: per-sample probability of hiding RGB / LiDAR (as in centralised
            training); DA- replaces it by the harmonious branch's masks.
    """

    epochs: int = 1
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    modality_dropout: float = 0.25

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0 or not np.isfinite(self.lr):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        if not 0 <= self.modality_dropout < 1:
            raise ValueError(f"modality_dropout must be in [0, 1), got {self.modality_dropout}")


@dataclass(frozen=True, kw_only=True)
class DAOptions:
    """Options of DA- and DA+ (seed 002, Section IV).

    Attributes:
        alpha, beta: weights of the balance and rate terms of the harmonious loss (Eq. 19; 1, 1).
        harmonious_hidden: L_H, the harmonious branch's projection size (64).
        harmonious_lr: its AdamW learning rate (1e-2: with 1e-3 the branch barely moves
            within the few local epochs of a CPU run).
        bce_step: "batch" (GBA-Vehicle steps every mini-batch) or "epoch" (the BCE gradients
            of an epoch are summed and applied once, Algorithm 2 read literally).
        top_labels: under-represented label combinations per vehicle (3).
        synthetic_cap: at most this many synthetic samples per combination (the paper's
            count max - own can be hundreds; generation cost grows with it).
        synthesis_steps, synthesis_lr, synthesis_batch: the generator's optimiser (batch 32).
    """

    alpha: float = 1.0
    beta: float = 1.0
    harmonious_hidden: int = 64
    harmonious_lr: float = 1e-2
    bce_step: str = "batch"
    top_labels: int = 3
    synthetic_cap: int = 16
    synthesis_steps: int = 100
    synthesis_lr: float = 0.1
    synthesis_batch: int = 32

    def __post_init__(self) -> None:
        if self.bce_step not in BCE_STEPS:
            raise ValueError(f"bce_step must be one of {', '.join(BCE_STEPS)}, got {self.bce_step!r}")
        for name in ("harmonious_hidden", "top_labels", "synthetic_cap", "synthesis_steps", "synthesis_batch"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class ServerContext:
    """What the RSU contributes to local work: GBA-RSU and the link budget (the rates
    behind DA-'s contribution ratios) and the global label combinations with their rates
    (DA+'s ranking of under-represented labels).

    Attributes:
        rsu: trained GBA-RSU (frozen). noise_mw: noise power [mW] (the unit of ``rss``).
        p_max: RSU transmit power [W] (the allocation's total squared norm).
        global_labels: (L, W) 0/1 label combinations seen at the RSU.
        label_rates: (L,) the RSU's rate [bit/s/Hz] for each combination.
        num_vehicles: K, the vehicles of the federation (Eq. 19 divides the rate term by it).
    """

    rsu: GBARSU
    noise_mw: float
    p_max: float
    global_labels: np.ndarray
    label_rates: np.ndarray
    num_vehicles: int = 1


def client_modalities(data: SensorSet, model: GBAVehicle) -> tuple[str, ...]:
    """The sensors a vehicle has: those present in any of its samples."""
    return tuple(m for m in model.modalities if bool(data.available[:, MODALITIES.index(m)].any()))


class VehicleClient:
    """One vehicle (or, for the centralised UB, the pooled data set).

    Args:
        client: id. data: its local training samples. model: its local GBA-Vehicle (a
            copy of the initial global model). training, da: options. seed: its randomness.
    """

    def __init__(self, *, client: int, data: SensorSet, model: GBAVehicle, training: LocalTraining,
                 da: DAOptions, seed: int) -> None:
        if len(data) == 0:
            raise ValueError(f"client {client} has no training samples")
        self.client = int(client)
        self.data = data
        self.model = model
        self.training = training
        self.da = da
        self.modalities = client_modalities(data, model)
        decayed = [p for p in model.parameters() if p.dim() >= 2]
        kept = [p for p in model.parameters() if p.dim() < 2]
        self.optimizer = torch.optim.AdamW([{"params": decayed, "weight_decay": training.weight_decay},
                                            {"params": kept, "weight_decay": 0.0}], lr=training.lr)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.harmonious = None
        self.harmonious_optimizer = None
        self.phi_previous: torch.Tensor | None = None
        self.synthetic: SensorSet | None = None
        self.synthesis_report: dict[str, float] = {}

    @property
    def num_samples(self) -> int:
        return len(self.data)

    # ------------------------------------------------------------------ one round
    def fit(self, global_state: State, config: Mapping[str, Any], server: ServerContext) -> tuple[ClientUpdate, dict]:
        """Do the round's work; returns the update and its costs (bytes per link)."""
        download = select_entries(global_state.keys(), groups=config.get("download", "all"),
                                  modalities=self.modalities)
        local = self.model.state_dict()
        for key in download:
            local[key] = global_state[key].clone()
        self.model.load_state_dict(local)
        cost = {"bytes_down": payload_bytes(global_state, download), "bytes_da": 0}
        proximal_mu = float(config.get("proximal_mu", 0.0))
        anchor = {n: p.detach().clone() for n, p in self.model.named_parameters()} if proximal_mu > 0 else None
        trainable = self._set_trainable(config.get("train", "all"))
        metrics: dict[str, float] = {}
        try:
            if config.get("da_minus"):
                metrics.update(self._da_minus(server, cost, proximal_mu=proximal_mu, anchor=anchor))
            else:
                data = self.data
                if config.get("da_plus"):
                    data = self._with_synthetic(server)
                    metrics.update(self.synthesis_report)
                metrics["bce"] = self._train(data, proximal_mu=proximal_mu, anchor=anchor)
        finally:
            for parameter in self.model.parameters():
                parameter.requires_grad_(True)
        metrics["trainable_parameters"] = float(trainable)
        upload = select_entries(self.model.state_dict().keys(), groups=config.get("upload", "all"),
                                modalities=self.modalities)
        state = self.model.state_dict()
        uploaded = {key: state[key].detach().clone() for key in upload}
        cost["bytes_up"] = payload_bytes(uploaded)
        return ClientUpdate(client=self.client, state=uploaded, num_samples=self.num_samples, metrics=metrics), cost

    def _set_trainable(self, train: Any) -> int:
        names = [name for name, _ in self.model.named_parameters()]
        if train == "all":
            chosen = set(names)
        elif train == "decision":
            from v2xsim.fl.da_plus import decision_parameter_names

            chosen = set(decision_parameter_names(self.model))
        else:
            groups = set(train)
            chosen = {name for name in names if parameter_group(name) in groups}
        count = 0
        for name, parameter in self.model.named_parameters():
            parameter.requires_grad_(name in chosen)
            count += parameter.numel() if name in chosen else 0
        return count

    def _batches(self, size: int) -> list[np.ndarray]:
        order = torch.randperm(size, generator=self.generator).numpy()
        step = self.training.batch_size
        return [np.sort(order[i:i + step]) for i in range(0, size, step)]

    def _train(self, data: SensorSet, *, proximal_mu: float = 0.0, anchor: dict | None = None) -> float:
        """Plain local epochs on ``data``; returns the mean BCE of the last epoch."""
        model = self.model
        columns = [MODALITIES.index(m) for m in model.modalities]
        available = torch.from_numpy(data.available[:, columns])
        feedback = torch.from_numpy(data.feedback)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        model.train()
        mean = 0.0
        for _ in range(self.training.epochs):
            total, steps = 0.0, 0
            for rows in self._batches(len(data)):
                if len(rows) < 2:  # BatchNorm needs two samples
                    continue
                mask = modality_dropout_mask(model, available[rows], self.training.modality_dropout, self.generator)
                logits = model(data.inputs(rows, self.modalities), available=mask)
                loss = loss_fn(logits, feedback[rows])
                if anchor is not None:
                    loss = loss + proximal_mu / 2 * sum(((p - anchor[n]) ** 2).sum()
                                                        for n, p in model.named_parameters() if p.requires_grad)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                total += float(loss.detach())
                steps += 1
            mean = total / max(steps, 1)
        model.eval()
        return mean

    # ------------------------------------------------------------------ DA- / DA+
    def _da_minus(self, server: ServerContext, cost: dict, *, proximal_mu: float = 0.0,
                  anchor: dict | None = None) -> dict[str, float]:
        from v2xsim.fl import da_minus

        proximal = None
        if anchor is not None:
            def proximal(model: GBAVehicle) -> torch.Tensor:
                return proximal_mu / 2 * sum(((p - anchor[n]) ** 2).sum()
                                             for n, p in model.named_parameters() if p.requires_grad)

        if self.harmonious is None:
            self.harmonious = da_minus.HarmoniousBranch(modalities=self.model.modalities,
                                                        hidden=self.da.harmonious_hidden)
            self.harmonious_optimizer = torch.optim.AdamW(self.harmonious.parameters(), lr=self.da.harmonious_lr)
            # footnote 4 of seed 002: the first epoch starts from random ratios
            present = torch.tensor([m in self.modalities for m in self.model.modalities])
            self.phi_previous = da_minus.initial_phi(present=present, generator=self.generator)
        result = None
        drops = []
        for _ in range(self.training.epochs):
            order = torch.randperm(len(self.data), generator=self.generator).numpy()
            result = da_minus.da_minus_epoch(
                self.model, self.harmonious, model_optimizer=self.optimizer,
                harmonious_optimizer=self.harmonious_optimizer, data=self.data, order=order,
                batch_size=self.training.batch_size, rsu=server.rsu, noise_mw=server.noise_mw, p_max=server.p_max,
                phi_previous=self.phi_previous, generator=self.generator, alpha=self.da.alpha, beta=self.da.beta,
                bce_step=self.da.bce_step, num_vehicles=server.num_vehicles, proximal=proximal)
            self.phi_previous = result.phi_last.detach().clone()
            drops.append(result.drop_rate)
            # per mini-batch: uni-modal predictions up (M x B x W), phi and their gradient down
            m, w = len(self.model.modalities), self.data.num_beams
            cost["bytes_da"] += 4 * (2 * m * w * len(self.data) + m * result.batches)
        self.model.eval()
        out = {"bce": float(result.mean_bce)}
        for column, modality in enumerate(self.model.modalities):
            out[f"drop_{modality}"] = float(result.drop_rate[column])
            out[f"phi_{modality}_local"] = float(result.mean_phi[column])
        return out

    def _with_synthetic(self, server: ServerContext) -> SensorSet:
        """Own data plus the synthetic samples, generated once from the global model the
        vehicle holds when its DA+ stage starts (kept for the later DA+ rounds)."""
        if self.synthetic is None:
            from v2xsim.fl import da_plus

            rate_of = {label.astype(np.uint8).tobytes(): float(rate)
                       for label, rate in zip(server.global_labels, server.label_rates)}
            wanted = da_plus.underrepresented_labels(
                self.data.feedback, global_labels=list(server.global_labels),
                label_rate=lambda label: rate_of.get(np.asarray(label).astype(np.uint8).tobytes(), 0.0),
                top=self.da.top_labels, cap=self.da.synthetic_cap)
            targets = [np.tile(label, (count, 1)) for label, count in wanted if count > 0]
            if not targets:
                self.synthetic = self.data.subset(np.zeros(0, dtype=int))
                self.synthesis_report = {"synthetic_samples": 0.0}
                return self.data
            targets = np.concatenate(targets).astype(np.float32)
            result = da_plus.synthesize(self.model, targets, modalities=self.modalities,
                                        steps=self.da.synthesis_steps, lr=self.da.synthesis_lr,
                                        batch_size=self.da.synthesis_batch, generator=self.generator)
            self.synthetic = _synthetic_set(result, targets, self.data, self.modalities)
            self.synthesis_report = {"synthetic_samples": float(len(targets)),
                                     "synthetic_bn_loss_start": float(result.bn_loss_start),
                                     "synthetic_bn_loss_end": float(result.bn_loss_end),
                                     "synthetic_target_match": float(result.target_exact_match)}
        if len(self.synthetic) == 0:
            return self.data
        return concatenate(self.data, self.synthetic)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        out = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
               "generator": self.generator.get_state(), "phi_previous": self.phi_previous,
               "synthesis_report": dict(self.synthesis_report),
               "synthetic": None if self.synthetic is None else dict(self.synthetic.__dict__)}
        if self.harmonious is not None:
            out["harmonious"] = self.harmonious.state_dict()
            out["harmonious_optimizer"] = self.harmonious_optimizer.state_dict()
        return out

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.phi_previous = state["phi_previous"]
        self.synthesis_report = dict(state["synthesis_report"])
        self.synthetic = None if state["synthetic"] is None else SensorSet(**state["synthetic"])
        if "harmonious" in state:
            from v2xsim.fl import da_minus

            self.harmonious = da_minus.HarmoniousBranch(modalities=self.model.modalities,
                                                        hidden=self.da.harmonious_hidden)
            self.harmonious.load_state_dict(state["harmonious"])
            self.harmonious_optimizer = torch.optim.AdamW(self.harmonious.parameters(), lr=self.da.harmonious_lr)
            self.harmonious_optimizer.load_state_dict(state["harmonious_optimizer"])


def _synthetic_set(result: Any, targets: np.ndarray, own: SensorSet, modalities: tuple[str, ...]) -> SensorSet:
    """A :class:`SensorSet` of generated samples (no RSS: they only carry labels)."""
    n = len(targets)
    arrays = {}
    for name in ("gps", "image", "lidar"):
        value = getattr(result, name, None)
        template = getattr(own, name)
        arrays[name] = (np.asarray(value).astype(template.dtype) if value is not None
                        else np.zeros((n, *template.shape[1:]), dtype=template.dtype))
    available = np.array([[m in modalities for m in MODALITIES]] * n, dtype=bool)
    return SensorSet(**arrays, rss=np.zeros_like(targets, dtype=np.float32), feedback=targets.astype(np.float32),
                     available=available, episode=np.full(n, -1), category=np.zeros(n, dtype=own.category.dtype))


def concatenate(*sets: SensorSet) -> SensorSet:
    """Samples of several sets, in order."""
    return SensorSet(**{name: np.concatenate([getattr(s, name) for s in sets])
                        for name in SensorSet.__dataclass_fields__})
