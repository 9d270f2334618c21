"""Config of phase 4.3, sleep consolidation (torch-free: `voltx plan` imports this)."""

from __future__ import annotations

import attrs

from voltx_phases._common.bounds import between, fraction, non_negative, positive, seed
from voltx_phases.alignment.rlvf_config import PolicySettings

# The old problems of the forgetting check: the runbook's "HumanEval + MBPP".
OLD_DATASETS = ("humaneval", "mbpp")


@attrs.frozen
class SleepConfig:
    """Phase 4.3: replay on new problems, consolidate the verified samples with rehearsal, and
    keep the result only if old problems did not get worse by more than `max_old_drop`."""

    new_datasets: tuple[str, ...] = ("apps_interview_train", "apps_competition_train")
    # Problems replayed (the plan: 5K APPS queries) and, disjoint from them, the new problems the
    # gain is measured on; both drawn in a seeded order from `new_datasets`.
    replay_problems: int = attrs.field(default=5000, validator=positive())
    gain_problems: int = attrs.field(default=500, validator=positive())
    replay_samples: int = attrs.field(default=4, validator=positive())  # samples per problem
    # Old problems scored before and after (0: every HumanEval and MBPP problem).
    old_problems: int = attrs.field(default=0, validator=non_negative())
    # A replayed sample is kept when it passes every test and scores at least this reward in the
    # RLVF table (+0.5 with any certainty): "verified, high-reward".
    min_pass_rate: float = attrs.field(default=1.0, validator=fraction())
    # Consolidation: flow matching on (problem frame -> verified sample frame) pairs, each batch
    # mixed with rehearsal pairs of the earlier data (phase 2.0's frames).
    rehearsal_datasets: tuple[str, ...] = ("code_training_combined",)
    rehearsal_fraction: float = attrs.field(default=0.5, validator=between(0.0, 0.95))
    steps: int = attrs.field(default=2000, validator=positive())
    batch_size: int = attrs.field(default=32, validator=positive())
    lr: float = attrs.field(default=1e-5, validator=positive())
    weight_decay: float = attrs.field(default=0.01, validator=non_negative())
    # The forgetting gate: the phase fails, committing nothing, when the old problems' pass rate
    # falls by more than this (absolute, in pass-rate units: 0.03 is the plan's 3%).
    max_old_drop: float = attrs.field(default=0.03, validator=fraction())
    policy: PolicySettings = PolicySettings()
    seed: int = attrs.field(default=42, validator=seed())
    log_every_steps: int = attrs.field(default=50, validator=positive())
    checkpoint_every_steps: int = attrs.field(default=200, validator=positive())
    keep_checkpoints: int = attrs.field(default=3, validator=positive())
    device: str = "auto"
    threads: int = attrs.field(default=0, validator=non_negative())


SLEEP_PROFILES = {
    "tiny": SleepConfig(
        replay_problems=4,
        gain_problems=3,
        replay_samples=2,
        old_problems=4,
        steps=6,
        batch_size=4,
        lr=1e-4,
        policy=PolicySettings(
            max_tokens=16, rar_steps=2, safety_rar_iterations=4, sandbox_workers=2
        ),
        log_every_steps=1,
        checkpoint_every_steps=2,
        threads=1,
    ),
    "full": SleepConfig(),
}
