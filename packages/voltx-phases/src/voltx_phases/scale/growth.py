"""Function-preserving widening of the ScaledVFN (Net2WiderNet for its residual MLP), phase 5.1.

`widen(vfn, factor)` returns a ScaledVFN of hidden width ``factor * H`` (same B and F) whose
velocity equals `vfn`'s on every input, up to float rounding (docs/phases.md, 5.1):

- every hidden unit u of the wide model is a copy of unit ``u mod H``: the rows of ``time_proj``,
  ``entry``, ``fc1``, ``fc2`` and their biases, and the RMSNorm gains, are tiled ``factor``
  times, so the wide residual stream holds each old value ``factor`` times;
- RMSNorm divides by the root mean square over the width, and a stream where every value
  appears exactly ``factor`` times has the same mean square as the original: the norms agree.
  This is why the factor must be an integer (a stream with some units copied once and some
  twice would change the mean square, and no gain can correct that for every input);
- each layer reading the wide stream (``fc1``, ``fc2``, ``exit``) splits each old weight
  ``W[i, j]`` among the ``factor`` copies of input j with shares that sum to 1. Equal shares
  (Net2Net's 1/k) would make the copies identical forever, since identical units receive
  identical gradients; random shares summing to 1 (`split_noise`) keep the function exactly and
  give each copy its own gradient.

Parameters (the ScaledVFN formula): H=4096, B=6 is 204,034,304; H=6144, B=6 is 457,046,272.
"""

from __future__ import annotations

import re

import attrs
import torch

from voltx_phases.models.scaled_vfn import ScaledVFN

# Tensors whose first dimension is the hidden width: tiled.
_TILED = re.compile(
    r"^(time_proj\.(weight|bias)|entry\.(weight|bias)|block_\d+\.(norm\.weight|fc[12]\.bias)"
    r"|final_norm\.weight)$"
)
# Tensors reading the hidden width (their second dimension): columns split among the copies,
# and rows tiled too when their output is the hidden width.
_HIDDEN_TO_HIDDEN = re.compile(r"^block_\d+\.fc[12]\.weight$")
_HIDDEN_TO_SLOT = "exit.weight"
_UNCHANGED = "exit.bias"


def split_shares(
    rows: int, columns: int, factor: int, noise: float, generator: torch.Generator
) -> torch.Tensor:
    """[rows, factor * columns] shares: for each (row, column j), the `factor` shares of the
    copies of j sum to 1; each is ``(1 + noise * d) / factor`` with d uniform, centred."""
    draws = torch.rand(rows, factor, columns, generator=generator) * 2 - 1
    centred = draws - draws.mean(dim=1, keepdim=True)
    shares = (1 + noise * centred) / factor
    return shares.reshape(rows, factor * columns)


def widen(vfn: ScaledVFN, factor: int, *, split_noise: float = 0.5, seed: int = 0) -> ScaledVFN:
    """A ScaledVFN `factor` times wider computing the same velocity as `vfn` (module docstring).

    `split_noise` in [0, 1) sizes the random outgoing-weight shares (0: Net2Net's equal split);
    `seed` draws them, so a growth is reproducible.
    """
    if factor < 1 or int(factor) != factor:
        raise ValueError(f"the width factor must be a positive integer, got {factor!r}")
    if not 0 <= split_noise < 1:
        raise ValueError(f"split_noise must be in [0, 1), got {split_noise!r}")
    hidden = vfn.shape.hidden_dim
    wide = ScaledVFN(attrs.evolve(vfn.shape, hidden_dim=hidden * factor))
    generator = torch.Generator().manual_seed(seed)
    grown: dict[str, torch.Tensor] = {}
    # Name order, so the shares drawn for each tensor depend only on the seed.
    for name, tensor in sorted(vfn.state_dict().items()):
        value = tensor.detach().to("cpu", torch.float32)
        if _TILED.match(name):
            grown[name] = value.repeat(factor, *([1] * (value.dim() - 1)))
        elif _HIDDEN_TO_HIDDEN.match(name):
            tiled = value.repeat(factor, factor)
            grown[name] = tiled * split_shares(
                hidden * factor, hidden, factor, split_noise, generator
            )
        elif name == _HIDDEN_TO_SLOT:
            rows = value.shape[0]
            grown[name] = value.repeat(1, factor) * split_shares(
                rows, hidden, factor, split_noise, generator
            )
        elif name == _UNCHANGED:
            grown[name] = value.clone()
        else:
            raise ValueError(f"widen does not know how to grow tensor {name!r}")
    wide.load_state_dict(grown)
    return wide
