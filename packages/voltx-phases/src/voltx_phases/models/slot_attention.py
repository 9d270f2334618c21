"""Slot attention (phase 2.2, `docs/phases.md`, 2.1): one head over the 16 slots, with a code bias.

For the active slots A: score_ij = q_i . k_j / 16 + bias[i, j], softmax over j in A,
msg_i = sum_j alpha_ij v_j. Inactive slots get a zero message. No output projection, no residual.
Q, K and V are Linear(256 -> 256) with bias (197,376 parameters), Xavier-uniform, bias 0.

The original never trained these weights and its GPU path ignored the bias; here the bias (the
artifact of phase 0.4) is always applied, and the weights are trained jointly with the VFN.
"""

from __future__ import annotations

import math

import torch
from torch import nn

SLOTS = 16
SLOT_DIM = 256


class SlotAttention(nn.Module):
    """Messages between slots, one head at full width."""

    bias: torch.Tensor  # a buffer, declared for the type checker (register_buffer sets it)

    def __init__(self, dim: int = SLOT_DIM, slots: int = SLOTS) -> None:
        super().__init__()
        self.wq = nn.Linear(dim, dim)
        self.wk = nn.Linear(dim, dim)
        self.wv = nn.Linear(dim, dim)
        # 1/16 at 256 dims: 1/sqrt(dim), as the original.
        self.scale = 1.0 / math.sqrt(dim)
        self.register_buffer("bias", torch.zeros(slots, slots))
        for layer in (self.wq, self.wk, self.wv):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def set_bias(self, bias: torch.Tensor) -> None:
        """Install the 16x16 prior (phase 0.4's `code_attention_bias`)."""
        self.bias.copy_(bias.to(self.bias.dtype))

    def forward(self, states: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """states [B, S, D], active [B, S] bool -> messages [B, S, D] (zero for inactive slots)."""
        q, k, v = self.wq(states), self.wk(states), self.wv(states)
        scores = torch.einsum("bid,bjd->bij", q, k) * self.scale + self.bias
        scores = scores.masked_fill(~active[:, None, :], float("-inf"))
        # A row whose slot set is empty would be all -inf; those rows are inactive and zeroed below.
        weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
        messages = torch.einsum("bij,bjd->bid", weights, v)
        return messages * active[:, :, None]
