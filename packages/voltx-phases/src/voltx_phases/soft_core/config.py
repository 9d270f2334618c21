"""Configs of phases 2.0 and 2.1 (torch-free: `voltx plan` imports this)."""

from __future__ import annotations

import attrs

from voltx_phases._common.bounds import between, fraction, non_negative, positive, seed

# The problem datasets phase 0.2 produces; a curriculum stage may train on any of them.
PROBLEM_DATASETS = (
    "humaneval",
    "mbpp",
    "code_training_combined",
    "apps_introductory_train",
    "apps_interview_train",
    "apps_competition_train",
)


@attrs.frozen
class FrameCacheConfig:
    """Phase 2.0: encode every problem dataset once with the frozen encoder."""

    batch_size: int = attrs.field(default=64, validator=positive())
    device: str = "auto"


FRAME_CACHE_PROFILES = {"tiny": FrameCacheConfig(batch_size=32), "full": FrameCacheConfig()}


@attrs.frozen
class Stage:
    """One curriculum stage: its datasets, its own optimizer schedule, and its output artifact."""

    name: str
    datasets: tuple[str, ...]
    output: str
    lr: float = attrs.field(validator=positive())
    warmup_steps: int = attrs.field(validator=non_negative())
    epochs: int = attrs.field(default=10, validator=positive())
    batch_size: int = attrs.field(default=32, validator=positive())


@attrs.frozen
class VfnTrainingConfig:
    """Phase 2.1 (with 2.2 and 2.3): curriculum flow matching of the ScaledVFN, jointly with slot
    attention and the diffusion controller through an unrolled RAR loop."""

    hidden_dim: int = attrs.field(default=2048, validator=positive())
    num_blocks: int = attrs.field(default=6, validator=positive())
    time_freqs: int = attrs.field(default=64, validator=positive())
    stages: tuple[Stage, ...] = ()
    min_lr_ratio: float = attrs.field(
        default=0.01, validator=fraction()
    )  # cosine ends at lr * 0.01, as the original's min_lr
    weight_decay: float = attrs.field(default=0.01, validator=non_negative())
    validation_fraction: float = attrs.field(default=0.1, validator=between(0, 0.9))
    # "query": x0 is the problem frame (the original). "gaussian": standard conditional flow
    # matching from N(0, I).
    source: str = "query"
    rar_weight: float = attrs.field(default=0.1, validator=non_negative())
    rar_steps: int = attrs.field(default=4, validator=positive())
    rar_dt: float = attrs.field(default=0.1, validator=positive())
    rar_beta: float = attrs.field(default=0.5, validator=non_negative())
    iteration_weight: float = attrs.field(default=0.01, validator=non_negative())
    seed: int = attrs.field(default=42, validator=seed())
    log_every_steps: int = attrs.field(default=50, validator=positive())
    checkpoint_every_steps: int = attrs.field(default=200, validator=positive())
    keep_checkpoints: int = attrs.field(default=3, validator=positive())
    # Halve the micro-batch (with gradient accumulation, same effective batch) this many times.
    micro_batch_halvings: int = attrs.field(default=0, validator=between(0, 16))
    bf16: bool = False
    device: str = "auto"
    threads: int = attrs.field(
        default=0, validator=non_negative()
    )  # 0: torch's default; fixed counts make CPU runs reproducible
    legacy_epoch_restart: bool = False  # reproduce the original's per-epoch optimizer restart


def _stages(epochs: int, batch: int, warmups: tuple[int, int, int]) -> tuple[Stage, ...]:
    return (
        Stage(
            "stage1",
            ("code_training_combined",),
            "scaled_vfn_stage1",
            1e-4,
            warmups[0],
            epochs,
            batch,
        ),
        Stage(
            "stage2",
            ("code_training_combined", "apps_introductory_train", "apps_interview_train"),
            "scaled_vfn_stage2",
            5e-5,
            warmups[1],
            epochs,
            batch,
        ),
        Stage(
            "stage3",
            (
                "code_training_combined",
                "apps_introductory_train",
                "apps_interview_train",
                "apps_competition_train",
            ),
            "scaled_vfn",
            2e-5,
            warmups[2],
            epochs,
            batch,
        ),
    )


VFN_PROFILES = {
    "tiny": VfnTrainingConfig(
        hidden_dim=64,
        num_blocks=1,
        time_freqs=4,
        stages=_stages(epochs=3, batch=8, warmups=(2, 2, 2)),
        log_every_steps=5,
        checkpoint_every_steps=10,
        rar_steps=2,
        threads=1,
    ),
    "full": VfnTrainingConfig(stages=_stages(epochs=10, batch=32, warmups=(2000, 1000, 500))),
}
