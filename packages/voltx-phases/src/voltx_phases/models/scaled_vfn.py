"""ScaledVFN: the 51.7M-parameter velocity network of phase 2.1 (`docs/phases.md`, 2.1).

It acts on each slot vector independently (input [N, 256] and time [N], no mixing across slots):

    temb = concat(sin(t * freq), cos(t * freq))     freq_i = 10000^(i / (F - 1)), i < F (no 2 pi)
    h    = GELU(entry(x)) + GELU(time_proj(temb))
    h    = h + fc2(GELU(fc1(RMSNorm(h))))           repeated B times
    v    = exit(RMSNorm_final(h))

Parameters: (2F*H + H) + (256H + H) + B*(H + 2(H^2 + H)) + H + (256H + 256) = 51,685,632 for
H=2048, B=6, F=64. Tensor names are the original's (`time_proj.*`, `entry.*`, `block_{i}.norm`,
`block_{i}.fc1`, `block_{i}.fc2`, `final_norm`, `exit.*`), so its checkpoints load unchanged.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from voltx_phases.models.layers import RMSNorm, candle_linear_init

SLOT_DIM = 256


@attrs.frozen
class VfnShape:
    """Sizes of a ScaledVFN; the defaults are the original's full size."""

    hidden_dim: int = 2048
    num_blocks: int = 6
    time_freqs: int = 64
    slot_dim: int = SLOT_DIM


class _Block(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.norm = RMSNorm(hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        update: torch.Tensor = self.fc2(F.gelu(self.fc1(self.norm(h))))
        return h + update


class ScaledVFN(nn.Module):
    """Predicts the flow-matching velocity of each slot vector at time t."""

    freqs: torch.Tensor  # a buffer, declared for the type checker (register_buffer sets it)

    def __init__(self, shape: VfnShape = VfnShape()) -> None:
        super().__init__()
        self.shape = shape
        hidden = shape.hidden_dim
        exponents = torch.arange(shape.time_freqs, dtype=torch.float32)
        exponents = exponents / max(shape.time_freqs - 1, 1)
        # Not a parameter and not saved: the original's file has no such tensor.
        self.register_buffer("freqs", torch.pow(10000.0, exponents), persistent=False)
        self.time_proj = nn.Linear(2 * shape.time_freqs, hidden)
        self.entry = nn.Linear(shape.slot_dim, hidden)
        for index in range(shape.num_blocks):
            self.add_module(f"block_{index}", _Block(hidden))
        self.final_norm = RMSNorm(hidden)
        self.exit = nn.Linear(hidden, shape.slot_dim)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                # candle's linear init, as the original's weights were drawn.
                candle_linear_init(module, module.in_features, module.in_features)

    @property
    def blocks(self) -> list[_Block]:
        return [getattr(self, f"block_{i}") for i in range(self.shape.num_blocks)]

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        angles = t.to(self.freqs.dtype)[:, None] * self.freqs[None, :]
        # Concatenated, not interleaved (the original's doc comment says otherwise; its code wins).
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        time = F.gelu(self.time_proj(self.time_embedding(t).to(x.dtype)))
        h = F.gelu(self.entry(x)) + time
        for block in self.blocks:
            h = block(h)
        velocity: torch.Tensor = self.exit(self.final_norm(h))
        return velocity


def parameter_count(shape: VfnShape) -> int:
    """The closed form of the module docstring, for checks and plans."""
    h, f, b, d = shape.hidden_dim, shape.time_freqs, shape.num_blocks, shape.slot_dim
    return (2 * f * h + h) + (d * h + h) + b * (h + 2 * (h * h + h)) + h + (d * h + d)


def shape_from_tensors(tensors: dict[str, torch.Tensor]) -> VfnShape:
    """Infer H, B and F from a weights file's tensors (so a wrong width is named, not guessed)."""
    if "entry.weight" not in tensors or "time_proj.weight" not in tensors:
        raise ValueError("not a ScaledVFN file: no entry.weight or time_proj.weight tensor")
    hidden, slot_dim = tensors["entry.weight"].shape
    blocks = sum(
        1 for name in tensors if name.startswith("block_") and name.endswith(".fc1.weight")
    )
    freqs = tensors["time_proj.weight"].shape[1] // 2
    return VfnShape(hidden_dim=hidden, num_blocks=blocks, time_freqs=freqs, slot_dim=slot_dim)
