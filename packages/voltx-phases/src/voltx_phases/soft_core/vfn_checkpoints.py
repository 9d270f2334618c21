"""Checkpoints of phase 2.1: the three modules, the stage's optimizer and schedule, the curriculum
position and every RNG, as safetensors and JSON (the format of `_common.training_state`).

A checkpoint inside a stage holds the stage's AdamW, LambdaLR and noise generator; the one
written at a stage boundary holds none (the next stage starts them fresh), so resuming there
gives the next stage the same start as an uninterrupted run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from voltx.checkpoints import Checkpoint, CheckpointManager
from voltx_phases._common.training_state import (
    read_loop_state,
    read_optimizer_state,
    read_training_state,
    write_training_state,
)
from voltx_phases.soft_core.vfn_step import Models

# Checkpoint ids grow across stages: stage s, step n is s * STAGE_STRIDE + n.
STAGE_STRIDE = 10_000_000


@attrs.frozen
class Position:
    """Where training stands; saved with every checkpoint."""

    stage: int = 0
    epoch: int = 0
    batch: int = 0  # next batch of the epoch
    step: int = 0  # optimizer steps done in this stage


@attrs.define
class StageTrainer:
    """What a stage optimises with; rebuilt per stage (and per epoch in the legacy mode)."""

    optimizer: Optimizer
    schedule: LambdaLR
    # Draws each step's flow times and RAR noise; its own stream, so data order is unaffected.
    generator: torch.Generator


def save_checkpoint(
    checkpoints: CheckpointManager,
    models: Models,
    position: Position,
    trainer: StageTrainer | None,
    metrics: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Commit a checkpoint at `position`; `trainer` None at a stage boundary.

    `metrics` (every row logged so far) travels with it, so the report of a resumed run holds
    the rows of the attempts before the resume too.
    """
    with checkpoints.save(position.stage * STAGE_STRIDE + position.step) as folder:
        write_training_state(
            Path(folder),
            models.modules(),
            None if trainer is None else trainer.optimizer,
            {"position": attrs.asdict(position), "metrics": list(metrics)},
            scheduler=None if trainer is None else trainer.schedule,
            generators=None if trainer is None else {"flow": trainer.generator},
        )


def restore_models(checkpoint: Checkpoint, models: Models) -> Position:
    """Load the modules' weights and the global RNGs of `checkpoint`; returns its position."""
    loop = read_training_state(checkpoint.path, models.modules(), None)
    return Position(**loop["position"])


def restore_metrics(checkpoint: Checkpoint) -> list[dict[str, Any]]:
    """The metrics rows logged up to `checkpoint` (none in one written before they were kept)."""
    return list(read_loop_state(checkpoint.path).get("metrics", []))


def restore_trainer(checkpoint: Checkpoint, trainer: StageTrainer) -> bool:
    """Load the stage's optimizer, schedule and generator; False at a stage boundary."""
    return read_optimizer_state(
        checkpoint.path,
        trainer.optimizer,
        scheduler=trainer.schedule,
        generators={"flow": trainer.generator},
    )
