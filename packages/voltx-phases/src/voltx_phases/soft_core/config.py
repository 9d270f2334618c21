"""Configs of phases 2.0 and 2.1 (torch-free: `voltx plan` imports this)."""

from __future__ import annotations

import attrs

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

    batch_size: int = 64
    device: str = "auto"


FRAME_CACHE_PROFILES = {"tiny": FrameCacheConfig(batch_size=32), "full": FrameCacheConfig()}


@attrs.frozen
class Stage:
    """One curriculum stage: its datasets, its own optimizer schedule, and its output artifact."""

    name: str
    datasets: tuple[str, ...]
    output: str
    lr: float
    warmup_steps: int
    epochs: int = 10
    batch_size: int = 32


@attrs.frozen
class VfnTrainingConfig:
    """Phase 2.1 (with 2.2 and 2.3): curriculum flow matching of the ScaledVFN, jointly with slot
    attention and the diffusion controller through an unrolled RAR loop."""

    hidden_dim: int = 2048
    num_blocks: int = 6
    time_freqs: int = 64
    stages: tuple[Stage, ...] = ()
    min_lr_ratio: float = 0.01  # cosine ends at lr * 0.01, as the original's min_lr
    weight_decay: float = 0.01
    validation_fraction: float = 0.1
    # "query": x0 is the problem frame (the original). "gaussian": standard conditional flow
    # matching from N(0, I).
    source: str = "query"
    rar_weight: float = 0.1
    rar_steps: int = 4
    rar_dt: float = 0.1
    rar_beta: float = 0.5
    iteration_weight: float = 0.01
    seed: int = 42
    log_every_steps: int = 50
    checkpoint_every_steps: int = 200
    keep_checkpoints: int = 3
    # Halve the micro-batch (with gradient accumulation, same effective batch) this many times.
    micro_batch_halvings: int = 0
    bf16: bool = False
    device: str = "auto"
    threads: int = 0  # 0: torch's default; fixed counts make CPU runs reproducible
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
