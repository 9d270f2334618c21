"""Pieces the models share: the original's RMSNorm and its (candle's) linear initialisation."""

from __future__ import annotations

import math

import torch
from torch import nn


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * weight, without mean-centring (the original's norm)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight


def candle_linear_init(layer: nn.Linear | nn.Conv1d, fan_in: int, bias_fan_in: int) -> None:
    """Kaiming-normal weights (ReLU gain) and biases U(+-1/sqrt(in)), as candle initialises them.

    Matching it keeps freshly initialised models statistically like the original's.
    """
    nn.init.normal_(layer.weight, mean=0.0, std=math.sqrt(2.0 / fan_in))
    if layer.bias is not None:
        bound = 1.0 / math.sqrt(bias_fan_in)
        nn.init.uniform_(layer.bias, -bound, bound)
