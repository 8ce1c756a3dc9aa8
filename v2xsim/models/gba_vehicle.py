"""GBA-Vehicle: W-bit feedback predicted on the vehicle from GPS, camera and LiDAR
(seed 002, Sections III-A and III-D, Eqs. 4, 5 and 14).

Three extraction branches map each modality to a feature vector (GPS 256, RGB 256,
LiDAR 512 by default, as in the paper); a fusion MLP maps the features to W logits (one
per codebook beam; feedback bit = logit > 0). The first fusion layer is split into one
linear block per modality (Eq. 14):

    hidden = ReLU( sum_{q in Q_k} (W_q f_q + b_q) )          (fusion="sum", default)
    hidden = ReLU( (1 / |Q_k|) sum_{q in Q_k} (W_q f_q + b_q) )   (fusion="mean")
    hidden = ReLU( sum_{q in Q_k} BN_q(W_q f_q) )             (fusion="bn_sum", opt-in)

A vehicle without a sensor leaves its block out ("pruning-based" deployment, Q_k = its
sensors). The two baseline deployments of Table V are also here: "sensor-based" (the
missing modality's features are zeros: its block still adds its bias b_q, and with
"mean" it still counts in |Q_k|) and "model-based" (the missing modality's raw input is
zeros and its branch still runs). With "sum", pruning and sensor-based differ only by
the missing blocks' biases.

``fusion="bn_sum"`` follows the companion GFL4BS paper (seed 001, Section II-A), whose
network has a BatchNorm layer after every convolutional and fully connected layer and
fuses by concatenating the modality features. A concatenation followed by one linear
layer is the sum of the per-modality blocks, so GFL4BS's BatchNorm after the first fusion
layer would normalise that sum; here each modality's block gets its own BatchNorm
(:class:`NormalisedBlock`, the Linear without bias, then BatchNorm whose shift beta_q
takes the bias's place) *before* the sum. Normalising after the sum would give one set
of statistics for sums of one, two or three blocks, which a pruned car (fewer blocks)
would not match; per-block statistics stay valid for any sensor subset. Each block's
BatchNorm normalises over the samples of the batch that have (and fuse) the modality
only (:class:`MaskedBatchNorm1d`), so modality dropout and cars without a sensor do not
pull a block's statistics towards zero. Under "sensor-based" deployment a missing block
of ``bn_sum`` adds the constant beta_q - gamma_q mu_q / sigma_q (the normalised zero
feature) instead of a bias. The rest of the fusion MLP and the extraction branches'
heads are as in the other rules (no BatchNorm after the hidden fusion layer: its input
mixes sums of different numbers of blocks). The state dicts of "sum" and "mean" are
unchanged by this option.

Inputs use the FLASH data-set conventions (:mod:`v2xsim.data.flash`):
``gps`` (B, 2) [m], ``image`` (B, 90, 160, 3) uint8 or [0, 1] float, ``lidar``
(B, 20, 20, 20) with 0 empty, 1 obstacle, -1 RSU, -2 ego vehicle.
"""

from __future__ import annotations

from typing import Literal, Mapping, Sequence

import torch
from torch import nn

from v2xsim.formats import (
    IMAGE_SHAPE,
    LIDAR_BASE_STATION,
    LIDAR_OBSTACLE,
    LIDAR_RECEIVER,
    LIDAR_SHAPE,
    MODALITIES,
    SAMPLE_SHAPES,
)

__all__ = ["DEPLOYMENTS", "FUSIONS", "GBAVehicle", "IMAGE_SHAPE", "LIDAR_SHAPE", "MODALITIES", "MaskedBatchNorm1d",
           "NormalisedBlock", "PAPER_FEATURES", "predict_feedback", "zero_input"]

#: feature sizes L_G, L_R, L_L of seed 002 (Section V-A)
PAPER_FEATURES: dict[str, int] = {"gps": 256, "image": 256, "lidar": 512}
DEPLOYMENTS: tuple[str, ...] = ("pruning", "sensor", "model")
Deployment = Literal["pruning", "sensor", "model"]
#: fusion rules of the first fusion layer: "sum" (Eq. 14), "mean", "bn_sum" (BatchNorm per block, then sum)
FUSIONS: tuple[str, ...] = ("bn_sum", "mean", "sum")
#: LiDAR cell codes, one input channel each
LIDAR_CODES = (float(LIDAR_OBSTACLE), float(LIDAR_BASE_STATION), float(LIDAR_RECEIVER))


class GPSBranch(nn.Module):
    """CNN on the 2-D position: (B, 2) [m] -> (B, features).

    Positions are standardised with buffers ``shift`` / ``scale`` [m] that training sets
    from its data (they travel with the state dict).
    """

    def __init__(self, *, features: int = 256, channels: int = 32) -> None:
        super().__init__()
        self.register_buffer("shift", torch.zeros(2))
        self.register_buffer("scale", torch.ones(2))
        self.conv = nn.Sequential(
            nn.Conv1d(1, channels, kernel_size=2, padding=1), nn.BatchNorm1d(channels), nn.ReLU(),
            nn.Conv1d(channels, 2 * channels, kernel_size=2, padding=1), nn.BatchNorm1d(2 * channels), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Linear(2 * channels * 4, features), nn.ReLU())

    def forward(self, gps: torch.Tensor) -> torch.Tensor:
        x = (gps.float() - self.shift) / self.scale
        return self.head(self.conv(x[:, None, :]).flatten(1))


class _ResidualBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, *, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(channels_out), nn.ReLU(),
            nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False), nn.BatchNorm2d(channels_out),
        )
        self.skip = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 1, stride=stride, bias=False), nn.BatchNorm2d(channels_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class ImageBranch(nn.Module):
    """ResNet-style CNN on the RGB view: (B, 90, 160, 3) -> (B, features).

    A strided stem and three residual stages (stride 2 each) reduce the image to a
    64 x 6 x 10 map; a small adaptive pool keeps where things are in the view (left /
    right of the RSU, near / far), then a linear layer gives the features.
    """

    def __init__(self, *, features: int = 256, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 5, stride=2, padding=2, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU())
        self.stages = nn.Sequential(
            _ResidualBlock(width, 2 * width, stride=2),
            _ResidualBlock(2 * width, 4 * width, stride=2),
            _ResidualBlock(4 * width, 4 * width, stride=2),
        )
        self.pool = nn.AdaptiveAvgPool2d((3, 5))
        self.head = nn.Sequential(nn.Linear(4 * width * 15, features), nn.ReLU())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).float()
        if image.dtype == torch.uint8:
            x = x / 255.0
        return self.head(self.pool(self.stages(self.stem(x))).flatten(1))


class LidarBranch(nn.Module):
    """CNN on the FLASH LiDAR grid: (B, 20, 20, 20) -> (B, features).

    The cell codes (obstacle 1, RSU -1, ego -2) become three binary maps per height
    layer; the 3 x 20 height layers are the channels of a 2-D CNN over the ground plane
    (as the FLASH reference models do), which costs a fraction of a 3-D convolution.
    """

    def __init__(self, *, features: int = 512, channels: int = 32) -> None:
        super().__init__()
        self.register_buffer("codes", torch.tensor(LIDAR_CODES))
        depth = LIDAR_SHAPE[2]
        self.conv = nn.Sequential(
            nn.Conv2d(3 * depth, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.BatchNorm2d(2 * channels), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Linear(2 * channels * 25, features), nn.ReLU())

    def forward(self, lidar: torch.Tensor) -> torch.Tensor:
        grid = lidar.float()  # (B, X, Y, Z)
        onehot = (grid[:, None] == self.codes.view(1, 3, 1, 1, 1)).float()  # (B, 3, X, Y, Z)
        return self.forward_onehot(onehot)

    def forward_onehot(self, onehot: torch.Tensor) -> torch.Tensor:
        """Features (B, features) from the cell-code maps (B, 3, X, Y, Z): channel c is 1
        where the cell holds ``codes[c]`` (obstacle, RSU, ego), all zero for an empty cell.
        Differentiable in ``onehot`` (soft or straight-through maps may be fed)."""
        x = onehot.permute(0, 1, 4, 2, 3).flatten(1, 2)  # (B, 3 Z, X, Y)
        return self.head(self.conv(x).flatten(1))


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm over the features of (B, C) inputs that uses only the rows marked present.

    ``forward(x, present)``: in training, the batch mean and variance and the update of
    the running statistics come from the rows with ``present`` true alone (exactly what
    :class:`torch.nn.BatchNorm1d` computes on ``x[present]``, momentum or cumulative
    average alike); absent rows are returned as zeros and add nothing to the statistics
    or the gradients. With fewer than two present rows the batch has no variance: the
    present row is normalised with the running statistics, which are left unchanged. In
    eval mode every row uses the running statistics and does not depend on the others;
    absent rows are zeros. ``present=None`` means every row is present (plain BatchNorm).
    It is a ``_BatchNorm``, so code that resets or recalibrates BatchNorm layers treats
    it like the others.
    """

    def forward(self, x: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        if present is None:
            return super().forward(x)
        present = present.reshape(-1).to(torch.bool)
        if present.shape[0] != x.shape[0]:
            raise ValueError(f"present has {present.shape[0]} rows, the input {x.shape[0]}")
        if bool(present.all()):
            return super().forward(x)
        rows = torch.nonzero(present).flatten()
        out = x.new_zeros(x.shape)
        if len(rows) == 0:
            return out
        selected = x.index_select(0, rows)
        if self.training and len(rows) < 2 and self.track_running_stats:
            normalised = nn.functional.batch_norm(selected, self.running_mean, self.running_var, self.weight,
                                                  self.bias, False, 0.0, self.eps)
        else:
            normalised = super().forward(selected)
        return out.index_put((rows,), normalised)


class NormalisedBlock(nn.Module):
    """One modality's block of the first fusion layer under ``fusion="bn_sum"``:
    ``BN_q(W_q f_q)`` — a Linear without bias (BatchNorm's shift replaces it) followed by a
    :class:`MaskedBatchNorm1d` over the samples that fuse this modality.

    (B, features) -> (B, hidden); ``present`` (B,) bool or None (all present).
    """

    def __init__(self, features: int, hidden: int) -> None:
        super().__init__()
        self.linear = nn.Linear(features, hidden, bias=False)
        self.norm = MaskedBatchNorm1d(hidden)

    def forward(self, x: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        return self.norm(self.linear(x), present)


class GBAVehicle(nn.Module):
    """The vehicle-side network of GBA.

    Args:
        num_beams: codebook size W (output logits).
        features: feature size per modality (default: the paper's 256 / 256 / 512).
        hidden: width of the fusion MLP.
        modalities: which branches exist (a subset of :data:`MODALITIES`).
        image_width: channels of the image branch's first stage (ResNet width).
        fusion: "sum" adds the per-modality fusion blocks (Eq. 14), "mean" averages them
            over the modalities fused, "bn_sum" normalises each block with its own
            BatchNorm (over the samples that have the modality) and adds them
            (GFL4BS-style; see the module docstring).
    """

    def __init__(self, *, num_beams: int = 34, features: Mapping[str, int] | None = None, hidden: int = 256,
                 modalities: Sequence[str] = MODALITIES, image_width: int = 16, fusion: str = "sum") -> None:
        super().__init__()
        unknown = [m for m in modalities if m not in MODALITIES]
        if unknown or not modalities:
            raise ValueError(f"modalities must be a non-empty subset of {', '.join(MODALITIES)}, got {list(modalities)}")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
        self.fusion = fusion
        if num_beams < 1 or hidden < 1:
            raise ValueError(f"num_beams and hidden must be >= 1, got {num_beams}, {hidden}")
        sizes = dict(PAPER_FEATURES)
        sizes.update(features or {})
        self.num_beams = int(num_beams)
        self.modalities = tuple(m for m in MODALITIES if m in modalities)
        builders = {"gps": GPSBranch, "image": lambda features: ImageBranch(features=features, width=image_width),
                    "lidar": LidarBranch}
        self.branches = nn.ModuleDict({m: builders[m](features=int(sizes[m])) for m in self.modalities})
        # first fusion layer, one block (W_q, b_q) per modality (Eq. 14)
        if fusion == "bn_sum":
            blocks: dict[str, nn.Module] = {m: NormalisedBlock(int(sizes[m]), hidden) for m in self.modalities}
        else:  # the state dict of "sum" / "mean" keeps its layout (fusion_blocks.<m>.weight / .bias)
            blocks = {m: nn.Linear(int(sizes[m]), hidden) for m in self.modalities}
        self.fusion_blocks = nn.ModuleDict(blocks)
        self.fusion_head = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_beams))
        self.feature_sizes = {m: int(sizes[m]) for m in self.modalities}

    def features(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Branch features ``{modality: (B, L_q)}`` for the modalities present in ``inputs``."""
        return {m: self.branches[m](inputs[m]) for m in self.modalities if m in inputs}

    def fuse(self, features: Mapping[str, torch.Tensor], available: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, W) from branch features; ``available`` (B, M) bool masks out the
        blocks of modalities a sample lacks (pruning), one column per :attr:`modalities`.
        The blocks of the modalities in ``features`` (and available) are fused: summed, and
        with ``fusion="mean"`` divided by how many there are per sample; with
        ``fusion="bn_sum"`` each block is batch-normalised over the samples that have its
        modality before the sum."""
        total = None
        count = None
        for column, m in enumerate(self.modalities):
            if m not in features:
                continue
            mask = None if available is None else available[:, column]
            if self.fusion == "bn_sum":
                block = self.fusion_blocks[m](features[m], mask)
            else:
                block = self.fusion_blocks[m](features[m])
            present = torch.ones(block.shape[0], 1, dtype=block.dtype, device=block.device)
            if mask is not None:
                present = mask[:, None].to(block.dtype)
                block = block * present
            total = block if total is None else total + block
            count = present if count is None else count + present
        if total is None:
            raise ValueError("no modality available: GBA-Vehicle needs at least one sensor input")
        if self.fusion == "mean":
            total = total / count.clamp_min(1.0)
        return self.fusion_head(total)

    def forward(self, inputs: Mapping[str, torch.Tensor], *, available: torch.Tensor | None = None,
                deployment: Deployment = "pruning") -> torch.Tensor:
        """Feedback logits (B, W).

        Args:
            inputs: ``{modality: tensor}``; a modality absent from the dict is missing for
                every sample, ``available`` (B, M) marks per-sample losses.
            deployment: how missing modalities are handled — "pruning" drops their fusion
                blocks, "sensor" feeds zero features, "model" feeds zero inputs.
        """
        if deployment not in DEPLOYMENTS:
            raise ValueError(f"deployment must be one of {', '.join(DEPLOYMENTS)}, got {deployment!r}")
        batch = _batch_size(inputs)
        if deployment == "pruning":
            return self.fuse(self.features(inputs), available)
        if deployment == "model":
            filled = {}
            for column, m in enumerate(self.modalities):
                x = inputs.get(m)
                if x is None:
                    x = zero_input(m, batch, device=self._device())
                elif available is not None:
                    keep = available[:, column].view(-1, *([1] * (x.dim() - 1)))
                    x = torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))
                filled[m] = x
            return self.fuse(self.features(filled))
        # sensor-based: zero features for what is missing
        features = self.features(inputs)
        for column, m in enumerate(self.modalities):
            if m not in features:
                features[m] = torch.zeros(batch, self.feature_sizes[m], device=self._device())
            elif available is not None:
                features[m] = features[m] * available[:, column:column + 1].to(features[m].dtype)
        return self.fuse(features)

    def _device(self) -> torch.device:
        return next(self.parameters()).device


def zero_input(modality: str, batch: int, *, device: torch.device | None = None) -> torch.Tensor:
    """An all-zero raw input of ``modality`` for ``batch`` samples (model-based padding)."""
    shape = SAMPLE_SHAPES[modality]
    return torch.zeros(batch, *shape, device=device)


def _batch_size(inputs: Mapping[str, torch.Tensor]) -> int:
    for x in inputs.values():
        return int(x.shape[0])
    raise ValueError("inputs is empty: GBA-Vehicle needs at least one sensor input")


def predict_feedback(logits: torch.Tensor) -> torch.Tensor:
    """0/1 feedback (B, W) from logits: bit = predicted probability > 1/2."""
    return (logits > 0).to(torch.float32)
