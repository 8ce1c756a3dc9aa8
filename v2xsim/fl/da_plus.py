"""DA+ against label imbalance (seed 002, Section IV-C, Eqs. 20-21, Step B of IV-D).

Each vehicle

1. counts its label combinations (a combination = one 0/1 feedback row of W bits) and,
   with the RSU's help, picks the under-represented ones: the combinations known at the
   RSU that the vehicle holds fewer times than its most frequent one, ranked by the sum
   rate the RSU gets for them, top three kept (:func:`underrepresented_labels`);
2. synthesises ``max(own counts) - own count`` inputs per picked combination from the
   frozen global model alone: the inputs are optimised so that the activations entering
   every BatchNorm layer of the vehicle's branches have the layer's running mean and
   standard deviation (Eq. 20, :class:`BatchNormStatisticsLoss`) and so that the model
   predicts the wanted combination (BCE, Eq. 21) (:func:`synthesize`);
3. fine-tunes only the decision layers on synthetic + own data
   (:func:`freeze_all_but_decision_layers`).

Synthetic inputs keep the FLASH value conventions (:mod:`v2xsim.formats`): what the model
sees during the optimisation is exactly a valid sample (uint8 image, LiDAR grid of cell
codes), thanks to straight-through rounding / argmax.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from v2xsim.formats import IMAGE_SHAPE, LIDAR_SHAPE, LIDAR_VALUES, MODALITIES
from v2xsim.models.gba_vehicle import GBAVehicle

__all__ = [
    "BatchNormStatisticsLoss", "SynthesisResult", "batchnorm_layers", "batchnorm_statistics_loss",
    "decision_parameter_names", "expand_targets", "freeze_all_but_decision_layers", "label_counts", "label_from_key",
    "label_key", "synthesize", "underrepresented_labels",
]

#: paper (Section V-A): synthetic data generated with AdamW, batches of 32
SYNTHESIS_BATCH = 32


# ------------------------------------------------------------------ label combinations
def label_key(row: np.ndarray) -> bytes:
    """Hashable key of one label combination: the (W,) 0/1 row (bit = value > 1/2) packed
    big-endian into bytes, as :func:`v2xsim.metrics.label_overlap` does. Byte order of the
    keys = lexicographic order of the rows."""
    bits = np.asarray(row) > 0.5
    if bits.ndim != 1:
        raise ValueError(f"row must be a (W,) array, got shape {bits.shape}")
    return np.packbits(bits).tobytes()


def label_from_key(key: bytes, *, num_beams: int) -> np.ndarray:
    """The (W,) float32 0/1 row of ``key`` (W = ``num_beams``; the inverse of :func:`label_key`)."""
    bits = np.unpackbits(np.frombuffer(key, dtype=np.uint8))
    if num_beams < 1 or len(bits) < num_beams or len(bits) - num_beams >= 8:
        raise ValueError(f"key of {len(key)} bytes does not hold num_beams={num_beams} bits")
    return bits[:num_beams].astype(np.float32)


def label_counts(feedback: np.ndarray) -> dict[bytes, int]:
    """Samples per label combination ``{label_key(row): N_k^m}`` of ``feedback`` (N, W) 0/1."""
    rows = np.asarray(feedback) > 0.5
    if rows.ndim != 2:
        raise ValueError(f"feedback must be an (N, W) array, got shape {rows.shape}")
    if len(rows) == 0:
        return {}
    keys, counts = np.unique(np.packbits(rows, axis=1), axis=0, return_counts=True)
    return {key.tobytes(): int(count) for key, count in zip(keys, counts)}


def underrepresented_labels(own_feedback: np.ndarray, *, global_labels: Sequence[np.ndarray],
                            label_rate: Callable[[np.ndarray], float] | Mapping[bytes, float],
                            top: int = 3, cap: int | None = None) -> list[tuple[np.ndarray, int]]:
    """The label combinations a vehicle should synthesise, with how many samples each (Step B).

    Candidates are the distinct combinations of ``global_labels`` (known at the RSU) that
    the vehicle holds fewer times than its most frequent one; each needs
    ``max(own counts) - own count`` samples (own count 0 for a combination it never saw),
    at most ``cap`` if given (synthesis costs CPU time linear in the samples: ``cap`` bounds
    it when the own distribution is long-tailed). Candidates are ranked by the RSU's sum
    rate, highest first (ties: smaller :func:`label_key` first), and the first ``top`` kept.

    Args:
        own_feedback: (N, W) 0/1 labels of the vehicle's own samples.
        global_labels: (W,) 0/1 rows, the combinations known at the RSU (repeats ignored).
        label_rate: sum rate [bit/s/Hz] of a combination, a function of the (W,) float32
            row or a mapping from :func:`label_key`.
        top: combinations kept (the paper keeps three). cap: most samples per combination.
    Returns:
        ``[(row (W,) float32 0/1, samples to synthesise), ...]``, best rate first.
    """
    own = np.asarray(own_feedback)
    if own.ndim != 2:
        raise ValueError(f"own_feedback must be an (N, W) array, got shape {own.shape}")
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    if cap is not None and cap < 1:
        raise ValueError(f"cap must be >= 1 or None, got {cap}")
    width = own.shape[1]
    counts = label_counts(own)
    peak = max(counts.values(), default=0)
    candidates: dict[bytes, np.ndarray] = {}
    for i, row in enumerate(global_labels):
        row = np.asarray(row)
        if row.shape != (width,):
            raise ValueError(f"global_labels[{i}] must have shape ({width},), got {row.shape}")
        key = label_key(row)
        if counts.get(key, 0) < peak:
            candidates.setdefault(key, (row > 0.5).astype(np.float32))
    rated = []
    for key, row in candidates.items():
        if isinstance(label_rate, Mapping):
            if key not in label_rate:
                raise KeyError(f"label_rate has no rate for label combination {row.astype(int).tolist()}")
            rate = float(label_rate[key])
        else:
            rate = float(label_rate(row.copy()))
        rated.append((-rate, key, row))
    rated.sort(key=lambda item: (item[0], item[1]))
    chosen = []
    for _, key, row in rated[:top]:
        needed = peak - counts.get(key, 0)
        chosen.append((row, needed if cap is None else min(needed, int(cap))))
    return chosen


def expand_targets(selection: Sequence[tuple[np.ndarray, int]]) -> np.ndarray:
    """(N, W) float32 target rows from :func:`underrepresented_labels` output (each row
    repeated its count times, in order)."""
    if not selection:
        raise ValueError("selection is empty: no label combination to synthesise")
    rows = [np.repeat(np.asarray(row, dtype=np.float32)[None], int(count), axis=0) for row, count in selection]
    return np.concatenate(rows)


# ------------------------------------------------------------------ BatchNorm statistics (Eq. 20)
def batchnorm_layers(model: GBAVehicle, *, modalities: Sequence[str]) -> list[_BatchNorm]:
    """The BatchNorm layers (1d / 2d) inside ``model.branches[m]`` for ``modalities``, in
    module order (the fusion branch has none)."""
    _check_modalities(model, modalities)
    return [layer for m in model.modalities if m in modalities
            for layer in model.branches[m].modules() if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d))]


class BatchNormStatisticsLoss:
    """Eq. 20 on a model's BatchNorm layers, as a context manager.

    Inside the ``with`` block a forward pre-hook on every layer of
    :func:`batchnorm_layers` takes the layer's input x (B, C, ...) and compares its
    per-channel batch statistics with the layer's running ones:

        term_l = ||mu_l - mu_hat_l||_2 + ||sigma_l - sigma_hat_l||_2

    with mu_hat the mean over the batch and spatial axes, sigma_hat = sqrt(var_hat + eps)
    from the population (biased, 1/n) variance of those values, mu_l = running_mean and
    sigma_l = sqrt(running_var + eps) (eps = the layer's own, so both sides are the
    scale the layer divides by; it also keeps the gradient of sigma_hat finite). The
    model should be in eval mode, so the pass itself leaves the running statistics alone.

    :meth:`loss` returns the sum of the terms of the layers run since the previous call.
    """

    def __init__(self, model: GBAVehicle, *, modalities: Sequence[str]) -> None:
        self.layers = batchnorm_layers(model, modalities=modalities)
        if not self.layers:
            raise ValueError(f"the branches of {list(modalities)} have no BatchNorm layer")
        self._terms: list[torch.Tensor | None] = [None] * len(self.layers)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> "BatchNormStatisticsLoss":
        self._terms = [None] * len(self.layers)
        self._handles = [layer.register_forward_pre_hook(self._hook(i)) for i, layer in enumerate(self.layers)]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, index: int) -> Callable[[nn.Module, tuple], None]:
        def hook(layer: nn.Module, args: tuple) -> None:
            self._terms[index] = _statistics_term(layer, args[0])  # type: ignore[arg-type]
        return hook

    def loss(self) -> torch.Tensor:
        """Eq. 20 (scalar tensor, differentiable in the inputs) of the forward pass since
        the previous call."""
        missing = [i for i, term in enumerate(self._terms) if term is None]
        if missing:
            raise RuntimeError(f"{len(missing)} of {len(self.layers)} BatchNorm layers did not run since the last "
                               "loss(): run a forward pass with every hooked modality inside the with block")
        total = torch.stack([term for term in self._terms]).sum()  # type: ignore[misc]
        self._terms = [None] * len(self.layers)
        return total


def _statistics_term(layer: _BatchNorm, x: torch.Tensor) -> torch.Tensor:
    axes = [0, *range(2, x.dim())]
    # moments of x - running_mean: the mean difference directly, and a variance
    # E[d^2] - E[d]^2 without cancellation once the batch is near the target (and several
    # times faster on CPU than Tensor.var over the batch and spatial axes)
    d = x - layer.running_mean.view(1, -1, *([1] * (x.dim() - 2)))  # type: ignore[union-attr]
    shift = d.mean(dim=axes)
    variance = ((d * d).mean(dim=axes) - shift * shift).clamp_min(0.0)
    std = torch.sqrt(variance + layer.eps)
    target_std = torch.sqrt(layer.running_var + layer.eps)  # type: ignore[operator]
    return torch.linalg.vector_norm(shift) + torch.linalg.vector_norm(std - target_std)


def batchnorm_statistics_loss(model: GBAVehicle, inputs: Mapping[str, torch.Tensor], *,
                              modalities: Sequence[str] | None = None) -> torch.Tensor:
    """Eq. 20 of one batch ``inputs`` ``{modality: tensor}`` (the model's usual input
    conventions) on the branches of ``modalities`` (default: those in ``inputs``); runs
    the (pruned) forward pass in whatever mode the model is in."""
    modalities = tuple(inputs) if modalities is None else tuple(modalities)
    with BatchNormStatisticsLoss(model, modalities=modalities) as statistics:
        model({m: inputs[m] for m in modalities})
        return statistics.loss()


# ------------------------------------------------------------------ synthesis (Eq. 21)
@dataclass
class SynthesisResult:
    """Synthetic samples of :func:`synthesize` (N = len(targets)).

    Attributes:
        gps: (N, 2) float32 [m]; image: (N, 90, 160, 3) uint8; lidar: (N, 20, 20, 20)
            int8 with codes 0 / 1 / -1 / -2. None for a modality not synthesised.
        targets: (N, W) float32 0/1, the label combination each sample was made for.
        bn_loss_start: Eq. 20 of the Gaussian start, mean over synthesis batches.
        bn_loss_end: Eq. 20 of the returned samples, mean over the same batches.
        target_exact_match: share of returned samples for which the frozen global model
            predicts (logit > 0) exactly the target row.
        modalities: the modalities synthesised (model order).
    """

    gps: np.ndarray | None
    image: np.ndarray | None
    lidar: np.ndarray | None
    targets: np.ndarray
    bn_loss_start: float
    bn_loss_end: float
    target_exact_match: float
    modalities: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.targets)

    def inputs(self, rows: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """Model inputs ``{modality: tensor}`` of ``rows`` (default all) for the
        synthesised modalities."""
        index = np.arange(len(self)) if rows is None else np.asarray(rows)
        return {m: torch.from_numpy(np.ascontiguousarray(getattr(self, m)[index])) for m in self.modalities}


def synthesize(model: GBAVehicle, targets: np.ndarray, *, modalities: Sequence[str], generator: torch.Generator,
               steps: int = 200, lr: float = 0.1, batch_size: int = SYNTHESIS_BATCH, bce_weight: float = 1.0,
               temperature: float = 1.0) -> SynthesisResult:
    """Synthesise one input per target row from the frozen global ``model`` (Eq. 21:
    L_gen = L_BN + bce_weight * BCE(target, prediction)), for ``modalities`` only.

    Parameterisation (every latent starts ~ N(0, 1) from ``generator``, the paper's
    Gaussian start):

    * GPS [m] = shift + scale * z with the GPS branch's standardisation buffers, free float32;
    * image = round(255 * sigmoid(z)) as uint8; the rounding is straight-through (the
      forward pass sees the rounded image, the gradient is that of 255 * sigmoid);
    * LiDAR: per cell, logits z over the four codes (0, 1, -1, -2); the forward pass sees
      the one-hot of the argmax (exactly a valid grid, through
      :meth:`~v2xsim.models.gba_vehicle.LidarBranch.forward_onehot`), the backward pass
      the gradient of softmax(z / temperature). Every cell is free, including ego (-2) and
      RSU (-1) cells: nothing forces exactly one ego cell or one RSU cell per grid. The
      BatchNorm statistics constrain the grids only loosely: in the tests the returned
      grids are a third to a half empty where the data are ~98 % empty, and the LiDAR
      layers hold most of the Eq. 20 loss left at the end.

    The BCE term is summed over the W bits and averaged over the samples (Eq. 21 leaves
    the normalisation open; the per-bit mean weighs the label W times less against
    Eq. 20, and in the tests it left up to 40 % of the samples off their target at W = 8).

    Rows are dealt round-robin into ceil(N / batch_size) batches (so every batch mixes the
    target combinations, and all batches have about the same size, at least
    batch_size / 2 when N >= batch_size); each batch is optimised for ``steps`` AdamW
    steps (no weight decay: it would pull images to grey and LiDAR logits to a tie) at a
    constant learning rate ``lr`` on unit-scale latents (0.1 moves a latent by at most
    about 0.1 per step, so a LiDAR cell can change code within ~10 steps; 0.05 and 0.2
    did about as well in the tests). The returned samples are those of the
    last step. The model is put in eval mode with gradients off and restored afterwards;
    modalities absent from ``modalities`` are left out of the forward pass (pruned fusion).

    Args:
        targets: (N, W) 0/1 label combinations wanted (W = model.num_beams).
        modalities: the vehicle's sensors (a subset of model.modalities).
        temperature: softmax temperature of the LiDAR straight-through gradient.
    """
    modalities = _check_modalities(model, modalities)
    wanted = np.asarray(targets)
    if wanted.ndim != 2 or wanted.shape[1] != model.num_beams:
        raise ValueError(f"targets must be an (N, {model.num_beams}) array, got shape {wanted.shape}")
    if not np.isin(wanted, (0, 1)).all():
        raise ValueError("targets must hold only 0 and 1")
    if steps < 0 or batch_size < 1 or not lr > 0 or bce_weight < 0 or not temperature > 0:
        raise ValueError(f"need steps >= 0, batch_size >= 1, lr > 0, bce_weight >= 0, temperature > 0; got "
                         f"steps={steps}, batch_size={batch_size}, lr={lr}, bce_weight={bce_weight}, "
                         f"temperature={temperature}")
    wanted = wanted.astype(np.float32)
    n = len(wanted)
    out: dict[str, np.ndarray | None] = {m: None for m in MODALITIES}
    shapes = {"gps": (2,), "image": IMAGE_SHAPE, "lidar": LIDAR_SHAPE}
    dtypes = {"gps": np.float32, "image": np.uint8, "lidar": np.int8}
    for m in modalities:
        out[m] = np.zeros((n, *shapes[m]), dtype=dtypes[m])
    if n == 0:
        return SynthesisResult(**out, targets=wanted, bn_loss_start=float("nan"), bn_loss_end=float("nan"),
                               target_exact_match=float("nan"), modalities=modalities)
    batches = [np.arange(start, n, -(-n // batch_size)) for start in range(-(-n // batch_size))]
    start_losses, end_losses, matches = [], [], 0
    with _frozen(model), BatchNormStatisticsLoss(model, modalities=modalities) as statistics:
        for rows in batches:
            target = torch.from_numpy(wanted[rows])
            latents = _Latents(model, modalities, len(rows), generator=generator, temperature=temperature)
            optimizer = torch.optim.AdamW(latents.parameters(), lr=lr, weight_decay=0.0)
            for step in range(steps):
                logits = model.fuse(latents.features(model))
                bn_loss = statistics.loss()
                if step == 0:
                    start_losses.append(float(bn_loss.detach()))
                bce = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="sum") / len(rows)
                loss = bn_loss + bce_weight * bce
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            samples = latents.samples(model)
            for m, values in samples.items():
                out[m][rows] = values  # type: ignore[index]
            with torch.no_grad():
                logits = model({m: torch.from_numpy(values) for m, values in samples.items()})
                end_losses.append(float(statistics.loss()))
            if steps == 0:  # the returned samples are the start
                start_losses.append(end_losses[-1])
            matches += int(((logits > 0).float() == target).all(dim=1).sum())
    return SynthesisResult(**out, targets=wanted, bn_loss_start=float(np.mean(start_losses)),
                           bn_loss_end=float(np.mean(end_losses)), target_exact_match=matches / n,
                           modalities=modalities)


class _Latents:
    """The optimised variables of one synthesis batch (see :func:`synthesize`)."""

    def __init__(self, model: GBAVehicle, modalities: Sequence[str], batch: int, *, generator: torch.Generator,
                 temperature: float) -> None:
        self.temperature = temperature
        self.z: dict[str, torch.Tensor] = {}
        # LiDAR logits code-first (B, 4, X, Y, Z): softmax over dim 1 is ~10x faster on CPU than over a last dim of 4
        shapes = {"gps": (2,), "image": IMAGE_SHAPE, "lidar": (len(LIDAR_VALUES), *LIDAR_SHAPE)}
        for m in MODALITIES:  # fixed draw order: same generator state -> same samples
            if m in modalities:
                self.z[m] = torch.randn(batch, *shapes[m], generator=generator).requires_grad_(True)
        self.codes = torch.tensor(LIDAR_VALUES, dtype=torch.int8)
        if "lidar" in modalities and model.branches["lidar"].codes.tolist() != list(LIDAR_VALUES[1:]):
            raise ValueError("the LiDAR branch's code channels are not the non-empty codes of LIDAR_VALUES in order")

    def parameters(self) -> list[torch.Tensor]:
        return list(self.z.values())

    def _gps(self, model: GBAVehicle) -> torch.Tensor:
        branch = model.branches["gps"]
        return branch.shift + branch.scale * self.z["gps"]

    def _image_levels(self) -> torch.Tensor:
        """(B, 90, 160, 3) grey levels in [0, 255], rounded, straight-through."""
        soft = 255.0 * torch.sigmoid(self.z["image"])
        return torch.round(soft).detach() + (soft - soft.detach())

    def _lidar_hard(self) -> torch.Tensor:
        """(B, 4, X, Y, Z) one-hot of the code argmax (a tie goes to the first code)."""
        z = self.z["lidar"].detach()
        top = z == z.amax(dim=1, keepdim=True)
        return top & (top.cumsum(dim=1) == 1)

    def _lidar_onehot(self) -> torch.Tensor:
        """(B, 4, X, Y, Z) one-hot of the code argmax, softmax gradient."""
        soft = torch.softmax(self.z["lidar"] / self.temperature, dim=1)
        return self._lidar_hard().to(soft.dtype) + (soft - soft.detach())

    def features(self, model: GBAVehicle) -> dict[str, torch.Tensor]:
        """Branch features of the current (discrete) samples, differentiable in the latents."""
        features = {}
        for m in self.z:
            if m == "gps":
                features[m] = model.branches[m](self._gps(model))
            elif m == "image":
                features[m] = model.branches[m](self._image_levels() / 255.0)  # float input: already in [0, 1]
            else:
                # channels 1.. of the code one-hot are obstacle, RSU, ego = LidarBranch.codes
                features[m] = model.branches[m].forward_onehot(self._lidar_onehot()[:, 1:])
        return features

    @torch.no_grad()
    def samples(self, model: GBAVehicle) -> dict[str, np.ndarray]:
        """The current samples in the FLASH conventions (numpy)."""
        out = {}
        for m in self.z:
            if m == "gps":
                out[m] = self._gps(model).numpy().astype(np.float32)
            elif m == "image":
                out[m] = self._image_levels().numpy().astype(np.uint8)
            else:
                out[m] = self.codes[self._lidar_hard().to(torch.uint8).argmax(dim=1)].numpy()
        return out


class _frozen:
    """Eval mode and no parameter gradients for the block; every module's mode and every
    parameter's requires_grad restored after it."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> nn.Module:
        self.modes = [(module, module.training) for module in self.model.modules()]
        self.flags = [(p, p.requires_grad) for p in self.model.parameters()]
        self.model.eval()
        for p, _ in self.flags:
            p.requires_grad_(False)
        return self.model

    def __exit__(self, *exc: object) -> None:
        for module, training in self.modes:
            module.training = training
        for p, flag in self.flags:
            p.requires_grad_(flag)


def _check_modalities(model: GBAVehicle, modalities: Sequence[str]) -> tuple[str, ...]:
    if isinstance(modalities, str):
        modalities = (modalities,)
    unknown = [m for m in modalities if m not in model.modalities]
    if unknown or not modalities:
        raise ValueError(f"modalities must be a non-empty subset of the model's {list(model.modalities)}, "
                         f"got {list(modalities)}")
    return tuple(m for m in model.modalities if m in modalities)


# ------------------------------------------------------------------ decision layers (Step B)
def decision_parameter_names(model: GBAVehicle) -> list[str]:
    """Names of the parameters DA+ fine-tunes (the layers mapping features to labels):
    weight and bias of the last ``nn.Linear`` of each extraction branch's ``head``
    (``branches.<m>.head.0``, its only one), and every parameter of the fusion branch —
    all ``fusion_blocks.<m>`` (the per-modality first fusion layer of Eq. 14) and both
    Linear layers of ``fusion_head``. In ``model.named_parameters()`` order."""
    prefixes = []
    for m in model.modalities:
        head = model.branches[m].head
        last = [name for name, module in head.named_children() if isinstance(module, nn.Linear)]
        if not last:
            raise ValueError(f"the {m} branch's head has no Linear layer")
        prefixes.append(f"branches.{m}.head.{last[-1]}.")
    prefixes += ["fusion_blocks.", "fusion_head."]
    return [name for name, _ in model.named_parameters() if name.startswith(tuple(prefixes))]


def freeze_all_but_decision_layers(model: GBAVehicle) -> list[nn.Parameter]:
    """Set requires_grad on the :func:`decision_parameter_names` parameters only; returns
    them (to hand to the optimiser). BatchNorm running statistics are buffers: keep the
    branches in eval mode while fine-tuning if they must not move."""
    chosen = set(decision_parameter_names(model))
    trainable = []
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in chosen)
        if name in chosen:
            trainable.append(parameter)
    return trainable
