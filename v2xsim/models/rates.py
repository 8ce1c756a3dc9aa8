"""Differentiable sum rate in PyTorch, for training allocation networks.

Shapes: ``B`` graphs, ``K`` vehicles (padded), ``W`` beams.
"""

from __future__ import annotations

import torch


def rates_from_allocation(allocation: torch.Tensor, beam_space: torch.Tensor, noise_power: float = 1.0,
                          mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-vehicle rates [bit/s/Hz], (B, K).

    Args:
        allocation: (B, K, W) real, row k = amplitudes vehicle k's precoder puts on each beam
            (one non-zero entry for codebook precoders; squared norm = power [W]).
        beam_space: (B, K, W) complex, ``A[b, k, w] = h_k^H c_w``.
        noise_power: noise power [W], in the same units as ``|A|^2``.
        mask: (B, K) bool, True for real vehicles; padded rows get rate 0.

    Vehicle k receives from precoder i the gain ``|sum_w A[k, w] T[i, w]|^2``.
    """
    if allocation.shape != beam_space.shape:
        raise ValueError(f"allocation {tuple(allocation.shape)} and beam_space {tuple(beam_space.shape)} differ")
    gains = (beam_space @ allocation.to(beam_space.dtype).transpose(1, 2)).abs() ** 2  # (B, K, K)
    signal = torch.diagonal(gains, dim1=1, dim2=2)
    interference = gains.sum(dim=2) - signal
    rates = torch.log2(1.0 + signal / (interference + noise_power))
    if mask is not None:
        rates = rates * mask.to(rates.dtype)
    return rates


def sum_rate(allocation: torch.Tensor, beam_space: torch.Tensor, noise_power: float = 1.0,
             mask: torch.Tensor | None = None) -> torch.Tensor:
    """Sum rate per graph [bit/s/Hz], (B,)."""
    return rates_from_allocation(allocation, beam_space, noise_power, mask).sum(dim=1)
