"""Seeding every random number generator a training loop touches.

    from voltx_phases._common.seeding import seed_everything
    seed_everything(42)

The saving and restoring of RNG states for resumption lives in `training_state`.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, NumPy's legacy global generator and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def epoch_order(seed: int, epoch: int, count: int) -> np.ndarray:
    """The shuffled order of `count` items in `epoch`, a pure function of (seed, epoch).

    The original shuffled with an LCG whose state ran on across epochs; deriving each epoch's
    order from (seed, epoch) is as deterministic and lets a resumed run recompute it.
    """
    return np.random.default_rng([seed, epoch]).permutation(count)
