"""The learned diffusion controller of phase 2.3: per-slot noise scale for the RAR loop.

An MLP (slot state 256 + iteration fraction + last step size -> 16 -> 1) with a softplus output:
sigma_i >= 0. The original only had fixed sigmas (zero by default) and an `adapt_sigma` that
mutated a copy; this controller is trained jointly with the VFN (see `rar.py` for the objective).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DiffusionController(nn.Module):
    """sigma = softplus(MLP(state, iteration / max_iterations, delta))."""

    def __init__(self, dim: int = 256, hidden: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim + 2, hidden)
        self.fc2 = nn.Linear(hidden, 1)
        # Start almost silent: a large noise at initialisation would only slow early training.
        nn.init.zeros_(self.fc2.weight)
        nn.init.constant_(self.fc2.bias, -4.0)

    def forward(self, states: torch.Tensor, progress: float, delta: torch.Tensor) -> torch.Tensor:
        """states [B, S, D], delta [B, S] -> sigma [B, S]."""
        extra = torch.stack([torch.full_like(delta, progress), delta], dim=-1)
        hidden = F.gelu(self.fc1(torch.cat([states, extra], dim=-1)))
        return F.softplus(self.fc2(hidden)).squeeze(-1)
