"""RSU-side ablations of seed 002 (Fig. 5): an MLP for one fixed K and a Transformer over
vehicle tokens with positional encoding. Neither is permutation equivariant; both end in
the same beam projection as GBA-RSU."""

from __future__ import annotations

import math

import torch
from torch import nn

from v2xsim.models.gba_rsu import BeamProjection, mlp


class MLPRSU(nn.Module):
    """Fully connected RSU policy for exactly ``num_vehicles`` vehicles (input K*W bits)."""

    def __init__(self, *, num_beams: int = 34, num_vehicles: int, hidden: int = 128, temperature: float = 0.1) -> None:
        super().__init__()
        self.num_beams = num_beams
        self.num_vehicles = num_vehicles
        self.body = mlp([num_vehicles * num_beams, 2 * hidden, 2 * hidden])
        self.head = nn.Linear(2 * hidden, num_vehicles * num_beams)
        self.projection = BeamProjection(temperature=temperature)

    def scores(self, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, num, width = v.shape
        if num != self.num_vehicles or width != self.num_beams:
            raise ValueError(f"this MLP takes (B, {self.num_vehicles}, {self.num_beams}), got {tuple(v.shape)}")
        if mask is not None:
            v = v * mask.unsqueeze(-1).to(v.dtype)
        return self.head(self.body(v.reshape(batch, -1))).reshape(batch, num, width)

    def forward(self, v: torch.Tensor, p_max: float = 1.0, *, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.projection(self.scores(v, mask), p_max, mask)


class TransformerRSU(nn.Module):
    """Transformer encoder over vehicle tokens; the sinusoidal encoding of each vehicle's
    position in the input order makes the output depend on that order."""

    def __init__(self, *, num_beams: int = 34, hidden: int = 128, layers: int = 2, heads: int = 4,
                 temperature: float = 0.1, max_vehicles: int = 1024) -> None:
        super().__init__()
        self.num_beams = num_beams
        self.embed = nn.Linear(num_beams, hidden)
        layer = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=2 * hidden, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(hidden, num_beams)
        self.projection = BeamProjection(temperature=temperature)
        position = torch.arange(max_vehicles, dtype=torch.float32)[:, None]
        frequency = torch.exp(torch.arange(0, hidden, 2, dtype=torch.float32) * (-math.log(1e4) / hidden))
        encoding = torch.zeros(max_vehicles, hidden)
        encoding[:, 0::2] = torch.sin(position * frequency)
        encoding[:, 1::2] = torch.cos(position * frequency)[:, : hidden // 2]
        self.register_buffer("encoding", encoding, persistent=False)

    def scores(self, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            v = v * mask.unsqueeze(-1).to(v.dtype)
        tokens = self.embed(v) + self.encoding[: v.shape[1]]
        padding = None if mask is None else ~mask
        return self.head(self.encoder(tokens, src_key_padding_mask=padding))

    def forward(self, v: torch.Tensor, p_max: float = 1.0, *, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.projection(self.scores(v, mask), p_max, mask)
