"""Config of phase 5.1, VFN scaling by growth and distillation (torch-free: `voltx plan` imports
this). The choices are explained in docs/phases.md, 5.1."""

from __future__ import annotations

import attrs

from voltx_phases._common.bounds import at_least, between, fraction, non_negative, positive, seed
from voltx_phases.soft_core.config import PROBLEM_DATASETS


def _known_datasets(
    _instance: object, _attribute: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]
) -> None:
    unknown = [name for name in value if name not in PROBLEM_DATASETS]
    if unknown:
        raise ValueError(f"unknown dataset {unknown[0]!r}; known: {', '.join(PROBLEM_DATASETS)}")


@attrs.frozen
class GrowthStage:
    """One student: the input VFN widened `width_factor` times, trained `steps` optimizer steps
    on batches of `batch_size` problems (global, over all ranks), each rank's share split into
    `accumulation` micro-batches, and published as `output`."""

    output: str
    width_factor: int = attrs.field(validator=at_least(2))
    steps: int = attrs.field(validator=positive())
    batch_size: int = attrs.field(validator=positive())
    accumulation: int = attrs.field(default=1, validator=positive())
    lr: float = attrs.field(default=1e-4, validator=positive())
    warmup_steps: int = attrs.field(default=0, validator=non_negative())


@attrs.frozen
class ScalingConfig:
    """Phase 5.1: grow the VFN (function-preserving) and train each student on
    alpha * flow matching + (1 - alpha) * distillation of its teacher's velocity."""

    stages: tuple[GrowthStage, ...] = ()
    datasets: tuple[str, ...] = attrs.field(
        default=("code_training_combined", "apps_introductory_train", "apps_interview_train"),
        validator=_known_datasets,
    )
    # alpha (the flow-matching share) rises linearly from alpha_start to 1 over the first
    # alpha_ramp of each stage's steps, so the student ends on its own objective and is not
    # capped by a smaller teacher (knowledge inheritance).
    alpha_start: float = attrs.field(default=0.3, validator=fraction())
    alpha_ramp: float = attrs.field(default=0.5, validator=between(0.0, 1.0))
    min_lr_ratio: float = attrs.field(default=0.05, validator=fraction())  # 1e-4 -> 5e-6
    weight_decay: float = attrs.field(default=0.01, validator=non_negative())
    # Relative size of the random split of each copied unit's outgoing weights: the copies start
    # equal in function but not in gradient, so they can diverge (docs/phases.md, 5.1).
    split_noise: float = attrs.field(default=0.5, validator=fraction())
    seed: int = attrs.field(default=42, validator=seed())
    log_every_steps: int = attrs.field(default=50, validator=positive())
    checkpoint_every_steps: int = attrs.field(default=1000, validator=positive())
    # A rank that waits this long in a collective gives up: a dead peer ends the attempt.
    collective_timeout_s: float = attrs.field(default=300.0, validator=positive())
    device: str = "auto"
    threads: int = attrs.field(default=0, validator=non_negative())


SCALING_PROFILES = {
    "tiny": ScalingConfig(
        stages=(
            GrowthStage("vfn_200m", width_factor=2, steps=6, batch_size=4, lr=1e-3),
            GrowthStage("vfn_500m", width_factor=3, steps=6, batch_size=4, accumulation=2, lr=1e-3),
        ),
        datasets=("code_training_combined",),
        log_every_steps=1,
        checkpoint_every_steps=2,
        collective_timeout_s=60.0,
        threads=1,
    ),
    # The plan's figures: H 2048 -> 4096 (about 204M parameters), 300K steps at batch 16;
    # -> 6144 (about 457M), 500K steps at batch 16 made of micro-batches (accumulation).
    "full": ScalingConfig(
        stages=(
            GrowthStage(
                "vfn_200m", width_factor=2, steps=300_000, batch_size=16, warmup_steps=2000
            ),
            GrowthStage(
                "vfn_500m",
                width_factor=3,
                steps=500_000,
                batch_size=16,
                accumulation=2,
                warmup_steps=2000,
            ),
        ),
    ),
}
