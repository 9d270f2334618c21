"""The resumable epoch loop that 1.1, 1.2 and 5.2's decoders share.

Each epoch visits the training set in a seeded order (`epoch_order`), a whole batch at a time
(the remainder is dropped, as the original did), with warmup-then-cosine learning rates. The
phase supplies what differs: the loss of one batch, where a logged row goes, how a checkpoint is
saved (some phases keep their metric history in it), and what is measured after each epoch.

Where the loop stands lives in `TrainerState`, restored by the phase before the loop starts, so
a run killed at any point and rerun continues from its last checkpoint with the same data order
and the same learning rates: the resumed run's weights are byte-identical to an uninterrupted
one's (see `docs/concepts.md`, "Resuming").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import torch
from torch.optim import Optimizer

from voltx import PhaseContext, PhaseError, PhaseStopped
from voltx_phases._common.schedules import set_lr, warmup_cosine_lr
from voltx_phases._common.seeding import epoch_order
from voltx_phases._common.training_state import TrainerState

# The loss of one batch, and the other figures worth logging for it (tensors or numbers).
BatchStep = Callable[[Sequence[int]], tuple[torch.Tensor, Mapping[str, torch.Tensor | float]]]


class LoopConfig(Protocol):
    """The fields of a phase's config that the loop reads."""

    @property
    def seed(self) -> int: ...
    @property
    def epochs(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def lr(self) -> float: ...
    @property
    def warmup_steps(self) -> int: ...
    @property
    def min_lr_ratio(self) -> float: ...
    @property
    def log_every_steps(self) -> int: ...
    @property
    def checkpoint_every_steps(self) -> int: ...


def run_epochs(
    ctx: PhaseContext,
    config: LoopConfig,
    state: TrainerState,
    optimizer: Optimizer,
    train_size: int,
    *,
    batch_step: BatchStep,
    log_row: Callable[[int, dict[str, float]], None],
    save: Callable[[], None],
    end_epoch: Callable[[int], None],
) -> None:
    """Train from where `state` stands to the last epoch.

    `batch_step` returns a batch's loss (the loop steps the optimizer on it); `log_row(step,
    values)` records every `log_every_steps`-th step and the last; `save()` writes a checkpoint
    of the current state; `end_epoch(epoch)` runs after each epoch (validation, say), before the
    epoch's closing checkpoint. A stop request saves a checkpoint and raises `PhaseStopped`.
    """
    steps_per_epoch = train_size // config.batch_size
    total_steps = steps_per_epoch * config.epochs
    for epoch in range(state.epoch, config.epochs):
        if state.order is None or state.epoch != epoch:
            state.start_epoch(epoch, epoch_order(config.seed, epoch, train_size))
        assert state.order is not None
        while state.batch_in_epoch < steps_per_epoch:
            first = state.batch_in_epoch * config.batch_size
            indices = state.order[first : first + config.batch_size]
            lr = warmup_cosine_lr(
                state.step + 1,
                max_lr=config.lr,
                warmup_steps=config.warmup_steps,
                total_steps=total_steps,
                min_lr_ratio=config.min_lr_ratio,
            )
            set_lr(optimizer, lr)

            loss, extras = batch_step(indices)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise PhaseError(
                    ctx.phase_id,
                    f"loss is {loss_value} at step {state.step + 1} (epoch {epoch + 1}, "
                    f"lr {lr:.3g}): training diverged; lower lr or raise warmup_steps",
                )
            optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            optimizer.step()

            state.step += 1
            state.batch_in_epoch += 1
            values = {"loss": loss_value, **{name: _number(v) for name, v in extras.items()}}
            state.add(**values, batches=1.0)
            if state.step % config.log_every_steps == 0 or state.step == total_steps:
                log_row(state.step, {**values, "lr": lr})
            ctx.progress(state.step, total_steps, loss=loss_value)
            stopping = ctx.stop_requested()
            if state.step % config.checkpoint_every_steps == 0 or stopping:
                save()
            if stopping:
                raise PhaseStopped(ctx.phase_id, f"epoch {epoch + 1}, step {state.step}")

        end_epoch(epoch)
        state.epoch, state.order = epoch + 1, None
        save()


def _number(value: torch.Tensor | float) -> float:
    return value.item() if isinstance(value, torch.Tensor) else float(value)


def epoch_means(state: TrainerState, *names: str) -> dict[str, float]:
    """The epoch's running mean of each metric in `names`, as ``train_<name>``."""
    batches = state.sums.get("batches", 1.0)
    return {f"train_{name}": state.sums.get(name, math.nan) / batches for name in names}
