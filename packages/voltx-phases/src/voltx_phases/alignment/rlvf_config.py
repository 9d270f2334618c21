"""Config of phase 4.2, RLVF alignment (torch-free: `voltx plan` imports this)."""

from __future__ import annotations

import attrs

from voltx_phases._common.bounds import fraction, non_negative, positive, seed
from voltx_phases.alignment.rlvf_rewards import RewardTable


@attrs.frozen
class PolicySettings:
    """How the policy samples and how far the differentiable RAR is unrolled (shared by 4.2 and
    4.3, so that what 4.3 replays is drawn as 4.2 trained it)."""

    temperature: float = attrs.field(default=0.8, validator=positive())
    max_tokens: int = attrs.field(default=256, validator=positive())
    # RAR iterations unrolled with gradients: the context the decoder reads is the state after
    # these steps, so REINFORCE reaches the VFN, slot attention and the controller through it.
    rar_steps: int = attrs.field(default=8, validator=positive())
    rar_dt: float = attrs.field(default=0.1, validator=positive())
    rar_beta: float = attrs.field(default=0.5, validator=non_negative())
    # Iterations of the inference RAR that reads a program's frame for the safety axioms.
    safety_rar_iterations: int = attrs.field(default=50, validator=positive())
    sandbox_timeout_s: float = attrs.field(default=4.0, validator=positive())
    sandbox_workers: int = attrs.field(default=0, validator=non_negative())  # 0: one per CPU


@attrs.frozen
class RlvfConfig:
    """Phase 4.2: REINFORCE on the RLVF reward table, from 4.1's `vfn_e2e`."""

    datasets: tuple[str, ...] = ("apps_interview_train", "apps_competition_train")
    # Problems drawn (in a seeded order) from each dataset; 0 takes them all. The plan: APPS
    # interview 2,500 + competition 500.
    problems_per_dataset: tuple[int, ...] = attrs.field(default=(2500, 500))
    mutations: int = attrs.field(default=1000, validator=non_negative())
    # Held out of training, scored before and after for ECE and the overconfident-error rate.
    eval_problems: int = attrs.field(default=500, validator=positive())
    steps: int = attrs.field(default=100_000, validator=positive())
    batch_size: int = attrs.field(default=8, validator=positive())  # problems per step
    samples_per_problem: int = attrs.field(default=1, validator=positive())
    lr: float = attrs.field(default=1e-5, validator=positive())
    weight_decay: float = attrs.field(default=0.01, validator=non_negative())
    # The EMA baseline: b <- decay * b + (1 - decay) * mean reward of the step (the original's
    # RLVF uses 0.9), started at the first step's mean.
    baseline_decay: float = attrs.field(default=0.9, validator=fraction())
    # |advantage| is capped, as the original caps it at 2: one veto (-5) must not swamp a batch.
    advantage_clip: float = attrs.field(default=2.0, validator=positive())
    max_grad_norm: float = attrs.field(default=1.0, validator=positive())
    rewards: RewardTable = RewardTable()
    policy: PolicySettings = PolicySettings()
    seed: int = attrs.field(default=42, validator=seed())
    log_every_steps: int = attrs.field(default=50, validator=positive())
    checkpoint_every_steps: int = attrs.field(default=500, validator=positive())
    keep_checkpoints: int = attrs.field(default=3, validator=positive())
    device: str = "auto"
    threads: int = attrs.field(default=0, validator=non_negative())

    @problems_per_dataset.validator
    def _one_count_per_dataset(
        self, _attribute: attrs.Attribute[tuple[int, ...]], value: tuple[int, ...]
    ) -> None:
        counts = tuple(value)
        if len(counts) != len(self.datasets):
            raise ValueError(
                f"problems_per_dataset has {len(counts)} counts for {len(self.datasets)} datasets"
            )
        if any(count < 0 for count in counts):
            raise ValueError(f"problems_per_dataset must be >= 0, got {counts}")


RLVF_PROFILES = {
    "tiny": RlvfConfig(
        problems_per_dataset=(6, 6),
        mutations=4,
        eval_problems=4,
        steps=6,
        batch_size=2,
        samples_per_problem=2,
        lr=1e-3,
        policy=PolicySettings(
            max_tokens=16,
            rar_steps=2,
            safety_rar_iterations=4,
            sandbox_timeout_s=4.0,
            sandbox_workers=2,
        ),
        log_every_steps=1,
        checkpoint_every_steps=2,
        threads=1,
    ),
    "full": RlvfConfig(),
}
