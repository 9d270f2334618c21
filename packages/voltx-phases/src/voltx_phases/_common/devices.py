"""Which torch device a phase trains on."""

from __future__ import annotations

import torch

from voltx import PhaseContext


def resolve_device(requested: str, ctx: PhaseContext | None = None) -> torch.device:
    """``auto`` means CUDA when the job was given a GPU (or, outside voltx, when one exists)."""
    if requested != "auto":
        return torch.device(requested)
    if ctx is not None and ctx.device == "cpu":
        return torch.device("cpu")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
