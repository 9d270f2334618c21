"""Learning-rate schedules: linear warmup, then cosine decay over the whole run.

    from voltx_phases._common.schedules import set_lr, warmup_cosine_lr
    lr = warmup_cosine_lr(step, max_lr=5e-4, warmup_steps=2000, total_steps=total)
    set_lr(optimizer, lr)

One optimizer and one schedule span every epoch. The original's VFN trainer restarted both at
each epoch, so its warmup never finished on the real datasets (spec Appendix A.5); the schedule
here is a pure function of the global step, so there is no scheduler state to lose on resume.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer


def warmup_cosine_lr(
    step: int, *, max_lr: float, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.01
) -> float:
    """The learning rate of optimizer step `step` (1-based), as the original's
    (`docs/phases.md`, 1.1).

    lr = max_lr * step / warmup_steps while step <= warmup_steps; then cosine from max_lr down to
    max_lr * min_lr_ratio, reached at `total_steps` and held after it.
    """
    if step <= warmup_steps:
        return max_lr * step / warmup_steps
    min_lr = max_lr * min_lr_ratio
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
