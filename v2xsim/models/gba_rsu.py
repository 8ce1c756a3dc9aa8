"""GBA-RSU: the permutation-equivariant graph network that turns W-bit feedback into beams
and powers (seed 002, Section III-B).

Graph: one vertex per vehicle with feature ``v_k`` (W bits); an edge k-i (i != k) when
the two vehicles share a candidate beam (``v_k . v_i >= 1``), edge feature ``v_k (+) v_i``.
Layers: shared edge MLP, mean over neighbours, shared self-vertex MLP, concatenation,
shared cross-vertex MLP, projection to W, then the beam projection (non-negativity, hard
argmax mask with a straight-through softmax gradient, power from the masked vector,
pruning below 0.05 % power share, renormalisation to ``P_max``).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

#: vehicles whose power share is below this are pruned (seed 002: 0.05 %)
PRUNE_SHARE = 5e-4


def mlp(sizes: list[int], *, final_activation: bool = True) -> nn.Sequential:
    """Linear layers with ReLU between them (and after the last if ``final_activation``)."""
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if final_activation or index < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class BeamProjection(nn.Module):
    """Maps raw per-vehicle scores z (B, K, W) to a feasible allocation (B, K, W).

    Args:
        temperature: softmax temperature ``tau`` of the straight-through soft mask.
        non_negative: apply ``|z|`` (ablation switch).
        renormalise: prune below :data:`PRUNE_SHARE` and scale to ``p_max`` (ablation switch;
            without it the squared norms are whatever the network produced).
    """

    def __init__(self, *, temperature: float = 0.1, non_negative: bool = True, renormalise: bool = True) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.non_negative = non_negative
        self.renormalise = renormalise

    def forward(self, z: torch.Tensor, p_max: float = 1.0, mask: torch.Tensor | None = None) -> torch.Tensor:
        if not (torch.is_grad_enabled() and z.requires_grad):
            return self._inference(z.abs() if self.non_negative else z, p_max, mask)
        if self.non_negative:
            z = torch.sqrt(z * z + 1e-12)  # |z| with a finite gradient at 0
        hard = torch.nn.functional.one_hot(z.argmax(dim=-1), z.shape[-1]).to(z.dtype)
        amplitude = (z * hard).sum(dim=-1, keepdim=True)
        soft = torch.softmax(z / self.temperature, dim=-1)
        mixed = (hard - soft).detach() + soft  # forward: hard; backward: soft
        # z_hard (.) m_mix, with the selected amplitude spread over the mixed mask so the soft
        # mask's gradient reaches the scores of the beams not chosen
        selected = amplitude * mixed
        if mask is not None:
            selected = selected * mask.unsqueeze(-1).to(selected.dtype)
        if not self.renormalise:
            return selected
        power = (selected * selected).sum(dim=-1)  # (B, K) initial powers
        total = power.sum(dim=-1, keepdim=True)
        share = power / total.clamp_min(1e-30)
        keep = (share >= PRUNE_SHARE).to(selected.dtype).detach()
        selected = selected * keep.unsqueeze(-1)
        total = (selected * selected).sum(dim=(-1, -2), keepdim=True)
        scale = torch.where(total > 0, torch.sqrt(p_max / total.clamp_min(1e-30)), torch.zeros_like(total))
        return selected * scale

    def _inference(self, z: torch.Tensor, p_max: float, mask: torch.Tensor | None) -> torch.Tensor:
        """The same forward values with fewer operations (no gradient needed): one amplitude
        per vehicle, pruned and scaled, scattered onto its argmax beam."""
        amplitude, beam = z.max(dim=-1)  # (B, K)
        if mask is not None:
            amplitude = torch.where(mask, amplitude, 0.0)
        if self.renormalise:
            power = amplitude * amplitude
            total = power.sum(dim=-1, keepdim=True)
            kept = power >= PRUNE_SHARE * total
            amplitude = torch.where(kept, amplitude, 0.0)
            total = torch.where(kept, power, 0.0).sum(dim=-1, keepdim=True)
            amplitude = amplitude * torch.where(total > 0, (p_max / total.clamp_min(1e-30)).sqrt_(), 0.0)
        return torch.zeros_like(z).scatter_(-1, beam.unsqueeze(-1), amplitude.unsqueeze(-1))


class GBARSU(nn.Module):
    """The GBA-RSU graph network.

    Args:
        num_beams: codebook size W.
        hidden: hidden size ``d_g`` (384 in seed 002).
        temperature: soft-mask temperature.
        non_negative, renormalise: beam-projection switches (Table III ablations).
        edge_chunk: vehicles per chunk in the edge computation (memory about
            ``B * edge_chunk * K * hidden`` floats); None picks chunks of about
            ``chunk_elements`` floats, small enough to stay in the CPU cache.
        dedup_threshold: above this many vehicles, edges are computed per pair of distinct
            feedback vectors (see :meth:`aggregate_edges`).
    """

    def __init__(self, *, num_beams: int = 34, hidden: int = 128, temperature: float = 0.1,
                 non_negative: bool = True, renormalise: bool = True, edge_chunk: int | None = None,
                 dedup_threshold: int = 64, chunk_elements: int = 2**18) -> None:
        super().__init__()
        if num_beams < 1 or hidden < 1:
            raise ValueError(f"num_beams and hidden must be >= 1, got {num_beams}, {hidden}")
        self.num_beams = num_beams
        self.hidden = hidden
        self.edge_chunk = edge_chunk
        self.chunk_elements = chunk_elements
        self.dedup_threshold = dedup_threshold
        # Edge MLP on v_k (+) v_i: Linear -> ReLU -> Linear. Its first layer is split so the
        # (K x K) edge tensor is built from per-vertex terms, W [v_k; v_i] + b =
        # W_self v_k + W_other v_i + b; its output layer is linear, so it commutes with the
        # neighbour mean and is applied once per vertex after aggregation (exact).
        self.edge_in_self = nn.Linear(num_beams, hidden)
        self.edge_in_other = nn.Linear(num_beams, hidden, bias=False)
        self.edge_out = nn.Linear(hidden, hidden)
        self.self_vertex = mlp([num_beams, hidden, hidden])
        self.cross_vertex = mlp([2 * hidden, hidden, hidden])
        self.project = nn.Linear(hidden, num_beams)
        self.projection = BeamProjection(temperature=temperature, non_negative=non_negative, renormalise=renormalise)

    @staticmethod
    def adjacency(v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, K, K) bool: vehicles sharing a candidate beam, no self loops, no padding."""
        shared = (v @ v.transpose(1, 2)) >= 1
        shared.diagonal(dim1=1, dim2=2).fill_(False)
        if mask is not None:
            shared = shared & mask.unsqueeze(1) & mask.unsqueeze(2)
        return shared

    def _edge_sums(self, v_rows: torch.Tensor, v_cols: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``sum_i weights[b, k, i] * relu(first_layer(v_rows[b, k] (+) v_cols[b, i]))``,
        (B, R, H), computed ``edge_chunk`` rows at a time."""
        own = self.edge_in_self(v_rows)  # (B, R, H)
        other = self.edge_in_other(v_cols)  # (B, C, H)
        chunk = self.edge_chunk or max(1, self.chunk_elements // (own.shape[0] * other.shape[1] * own.shape[2]))

        def rows(start: int, stop: int) -> torch.Tensor:
            hidden = torch.relu(own[:, start:stop, None, :] + other[:, None, :, :])  # (B, c, C, H)
            # weighted sum over the C columns as one batched (1 x C) @ (C x H) product
            return (weights[:, start:stop, None, :] @ hidden).squeeze(2)

        if chunk >= own.shape[1]:
            return rows(0, own.shape[1])
        out = own.new_empty(own.shape)
        for start in range(0, own.shape[1], chunk):
            stop = min(start + chunk, own.shape[1])
            out[:, start:stop] = rows(start, stop)
        return out

    def aggregate_edges(self, v: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        """Mean of the edge MLP over each vertex's neighbours, (B, K, hidden); 0 if none.

        For large graphs the edge MLP runs once per pair of *distinct* feedback vectors
        (vehicles with equal feedback send equal messages), weighted by how many
        neighbours carry each vector: exact, and much cheaper for feedback from a real
        codebook, where K vehicles share far fewer than K distinct W-bit patterns.
        """
        weights = adjacency.to(v.dtype)
        degree = weights.sum(dim=-1, keepdim=True)
        if v.shape[1] <= self.dedup_threshold:
            sums = self._edge_sums(v, v, weights)
        else:
            outputs = []
            for graph in v:
                patterns, inverse, counts = torch.unique(graph, dim=0, return_inverse=True, return_counts=True)
                # neighbours of a vehicle with pattern u carrying pattern u': every vehicle
                # with u' if the patterns share a beam, minus the vehicle itself when u' = u
                shares = (patterns @ patterns.T) >= 1
                multiplicity = counts.to(v.dtype)[None, :] - torch.eye(len(patterns), dtype=v.dtype)
                pattern_weights = shares.to(v.dtype) * multiplicity
                outputs.append(self._edge_sums(patterns[None], patterns[None], pattern_weights[None])[0][inverse])
            sums = torch.stack(outputs)
        # a vertex without neighbours gets 0, not the output layer's bias
        return torch.where(degree > 0, self.edge_out(sums / degree.clamp_min(1.0)), 0.0)

    def scores(self, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Raw projection output z (B, K, W) before the beam projection."""
        if mask is not None:
            v = v * mask.unsqueeze(-1).to(v.dtype)
        adjacency = self.adjacency(v, mask)
        edge_mean = self.aggregate_edges(v, adjacency)
        vertex = self.cross_vertex(torch.cat([self.self_vertex(v), edge_mean], dim=-1))
        return self.project(vertex)

    def forward(self, v: torch.Tensor, p_max: float = 1.0, *, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Allocation (B, K, W) from feedback ``v`` (B, K, W) of 0/1.

        Args:
            v: binary feedback per vehicle.
            p_max: power budget [W]; squared norms of the output sum to it (0 if nobody
                is served).
            mask: (B, K) bool, False for padded vehicles (they get all-zero rows).
        """
        if v.dim() != 3 or v.shape[-1] != self.num_beams:
            raise ValueError(f"v must have shape (B, K, {self.num_beams}), got {tuple(v.shape)}")
        batch, vehicles, _ = v.shape
        if (not torch.is_grad_enabled() and self.projection.non_negative and self.projection.renormalise
                and vehicles <= self.dedup_threshold and batch * vehicles * vehicles * self.hidden <= self.chunk_elements):
            # small graphs at inference: the same operations in one TorchScript function,
            # no Python between them (about 1.5x faster at K = 10 on one core)
            return _scripted_inference()(v, mask, self._weights(), float(p_max), PRUNE_SHARE)
        return self.projection(self.scores(v, mask), p_max, mask)

    def _weights(self) -> list[torch.Tensor]:
        """Parameters in the order :func:`_small_graph_inference` takes them, read from
        the module dictionaries directly (``Module.__getattr__`` would cost more than the
        inference of a small graph)."""
        modules = self._modules
        vertex, cross = modules["self_vertex"]._modules, modules["cross_vertex"]._modules
        weights: list[torch.Tensor] = []
        for layer in (modules["edge_in_self"], modules["edge_in_other"], modules["edge_out"], vertex["0"],
                      vertex["2"], cross["0"], cross["2"], modules["project"]):
            weights.append(layer._parameters["weight"])
            if layer._parameters.get("bias") is not None:
                weights.append(layer._parameters["bias"])
        return weights


def _small_graph_inference(v: torch.Tensor, mask: Optional[torch.Tensor], w: list[torch.Tensor], p_max: float,
                           prune_share: float) -> torch.Tensor:
    """:meth:`GBARSU.forward` without gradients, in one function TorchScript can compile:
    dense edges, then the beam projection (non-negativity, argmax beam, pruning,
    renormalisation). ``w`` = :meth:`GBARSU._weights`."""
    if mask is not None:
        v = v * mask.unsqueeze(-1).to(v.dtype)
    adjacency = torch.matmul(v, v.transpose(1, 2)) >= 1
    adjacency.diagonal(dim1=1, dim2=2).fill_(False)
    if mask is not None:
        adjacency = adjacency & mask.unsqueeze(1) & mask.unsqueeze(2)
    weights = adjacency.to(v.dtype)
    degree = weights.sum(-1, keepdim=True)
    hidden = torch.relu(torch.nn.functional.linear(v, w[0], w[1]).unsqueeze(2)
                        + torch.nn.functional.linear(v, w[2]).unsqueeze(1))  # (B, K, K, H)
    sums = torch.matmul(weights.unsqueeze(2), hidden).squeeze(2)
    edge = torch.nn.functional.linear(sums / degree.clamp_min(1.0), w[3], w[4]) * (degree > 0)
    own = torch.relu(torch.nn.functional.linear(torch.relu(torch.nn.functional.linear(v, w[5], w[6])), w[7], w[8]))
    x = torch.cat([own, edge], dim=-1)
    x = torch.relu(torch.nn.functional.linear(torch.relu(torch.nn.functional.linear(x, w[9], w[10])), w[11], w[12]))
    z = torch.nn.functional.linear(x, w[13], w[14]).abs()
    amplitude, beam = z.max(dim=-1)
    if mask is not None:
        amplitude = amplitude * mask
    power = amplitude * amplitude
    kept = power >= prune_share * power.sum(-1, keepdim=True)
    amplitude = amplitude * kept
    total = (power * kept).sum(-1, keepdim=True)
    amplitude = amplitude * (torch.sqrt(p_max / total.clamp_min(1e-30)) * (total > 0))
    return torch.zeros_like(z).scatter_(-1, beam.unsqueeze(-1), amplitude.unsqueeze(-1))


_SCRIPTED: list = []


def _scripted_inference():
    """:func:`_small_graph_inference` compiled by TorchScript (once per process).

    ``torch.jit.script`` is deprecated in recent PyTorch but still runs these operations
    without Python between them; if a PyTorch version cannot script it, the same function
    runs eagerly (same values, slower)."""
    if not _SCRIPTED:
        import warnings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                _SCRIPTED.append(torch.jit.script(_small_graph_inference))
        except Exception:  # noqa: BLE001 - any scripting failure: run eagerly
            _SCRIPTED.append(_small_graph_inference)
    return _SCRIPTED[0]
