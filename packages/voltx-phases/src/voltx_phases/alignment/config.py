"""Config of phase 4.1, end-to-end fine-tuning (torch-free: `voltx plan` imports this)."""

from __future__ import annotations

import attrs

from voltx_phases._common.bounds import between, fraction, non_negative, not_below, positive, seed
from voltx_phases.alignment.rewards import RewardShaping

# The problem datasets 4.1's curriculum draws from: each needs its unified JSONL (for the tests)
# and its frames in `problem_frames` (phase 2.0 encodes them all).
E2E_DATASETS = ("humaneval", "mbpp", "apps_introductory_train", "apps_interview_train")


def _shaping_order(instance: E2eConfig, _attribute: attrs.Attribute[float], value: float) -> None:
    # The shaped rewards must rank the outcomes as CodeRL does; RewardShaping says how.
    RewardShaping(instance.compile_error_reward, instance.runtime_error_reward, value)


@attrs.frozen
class E2eStage:
    """One curriculum stage: the datasets its problems come from and its optimizer steps."""

    name: str
    datasets: tuple[str, ...]
    steps: int = attrs.field(validator=positive())


@attrs.frozen
class E2eConfig:
    """Phase 4.1: 0.7 flow matching + 0.3 REINFORCE on the problems' test results, training the
    ScaledVFN, slot attention and the diffusion controller; tokenizer, encoder and decoder frozen.
    """

    stages: tuple[E2eStage, ...] = ()
    problems_per_step: int = attrs.field(default=8, validator=positive())
    samples_per_problem: int = attrs.field(default=2, validator=positive())
    # Problem pairs of the flow-matching term per step (2.1's batch).
    flow_batch_size: int = attrs.field(default=32, validator=positive())
    lr: float = attrs.field(default=5e-5, validator=[positive(), not_below("min_lr")])
    # The cosine ends here; the plan's 5e-5 -> 1e-5.
    min_lr: float = attrs.field(default=1e-5, validator=positive())
    warmup_steps: int = attrs.field(default=500, validator=non_negative())
    weight_decay: float = attrs.field(default=0.01, validator=non_negative())
    flow_weight: float = attrs.field(default=0.7, validator=non_negative())
    reinforce_weight: float = attrs.field(default=0.3, validator=non_negative())
    # The flow-matching term is 2.1's loss, with 2.1's RAR settings.
    source: str = attrs.field(
        default="query", validator=attrs.validators.in_(("query", "gaussian"))
    )
    rar_weight: float = attrs.field(default=0.1, validator=non_negative())
    rar_steps: int = attrs.field(default=4, validator=positive())
    rar_dt: float = attrs.field(default=0.1, validator=positive())
    rar_beta: float = attrs.field(default=0.5, validator=non_negative())
    iteration_weight: float = attrs.field(default=0.01, validator=non_negative())
    validation_fraction: float = attrs.field(default=0.1, validator=between(0, 0.9))
    # The policy: the decoder's sampling at this temperature (its log-probabilities are log pi).
    temperature: float = attrs.field(default=1.0, validator=positive())
    max_tokens: int = attrs.field(default=256, validator=positive())
    # EMA baseline b <- decay * b + (1 - decay) * mean reward; advantages clipped to +-clip.
    baseline_decay: float = attrs.field(default=0.9, validator=fraction())
    advantage_clip: float = attrs.field(default=2.0, validator=positive())
    # Shaped outcome rewards of a sample that passes no test (CodeRL's values).
    compile_error_reward: float = attrs.field(default=-1.0, validator=between(-10, 0))
    runtime_error_reward: float = attrs.field(default=-0.6, validator=between(-10, 0))
    wrong_answer_reward: float = attrs.field(default=-0.3, validator=_shaping_order)
    test_timeout_s: float = attrs.field(default=4.0, validator=positive())
    # Sandboxed programs run at once; 0 means one per CPU the phase may use.
    sandbox_workers: int = attrs.field(default=0, validator=non_negative())
    # Run a batch's tests while the next batch is generated (that batch is then drawn from the
    # weights one update old; see docs/phases.md, 4.1).
    overlap_sandbox: bool = True
    seed: int = attrs.field(default=42, validator=seed())
    log_every_steps: int = attrs.field(default=50, validator=positive())
    checkpoint_every_steps: int = attrs.field(default=500, validator=positive())
    device: str = "auto"
    threads: int = attrs.field(default=0, validator=non_negative())


def _stages(steps: tuple[int, int, int]) -> tuple[E2eStage, ...]:
    # HumanEval + MBPP; + APPS introductory; + APPS interview. The plan's "MBPP easy" has no
    # difficulty label in the unified files, so stage 1 takes all of MBPP.
    return (
        E2eStage("stage1", ("humaneval", "mbpp"), steps[0]),
        E2eStage("stage2", ("humaneval", "mbpp", "apps_introductory_train"), steps[1]),
        E2eStage(
            "stage3",
            ("humaneval", "mbpp", "apps_introductory_train", "apps_interview_train"),
            steps[2],
        ),
    )


E2E_PROFILES = {
    "tiny": E2eConfig(
        stages=_stages((6, 6, 6)),
        problems_per_step=4,
        samples_per_problem=2,
        flow_batch_size=8,
        # The tiny run has 18 steps to show a learning signal; the plan's 5e-5 needs thousands.
        lr=3e-3,
        min_lr=6e-4,
        warmup_steps=2,
        rar_steps=2,
        max_tokens=24,
        test_timeout_s=2.0,
        log_every_steps=1,
        checkpoint_every_steps=3,
        threads=1,
    ),
    # 200K steps: 50K per stage and the last stage 50K more (the plan's final run on all data).
    "full": E2eConfig(stages=_stages((50_000, 50_000, 100_000)), checkpoint_every_steps=1000),
}
