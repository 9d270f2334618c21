"""Config of phase 3.2, certainty calibration (torch-free: `voltx plan` imports this)."""

from __future__ import annotations

import attrs

from voltx_phases._common.bounds import at_least, between, non_negative, positive, seed


@attrs.frozen
class DatasetQuota:
    """Up to `limit` problems (0: all) of one problem dataset of the store, in file order after
    the first `skip`."""

    name: str
    limit: int = attrs.field(default=0, validator=non_negative())
    skip: int = attrs.field(default=0, validator=non_negative())


@attrs.frozen
class GammaCalibrationConfig:
    """Phase 3.2: sample the model on problems with tests, run the samples, fit raw confidence to
    pass rate (`docs/phases.md`, 3.2)."""

    datasets: tuple[DatasetQuota, ...] = ()
    samples_per_problem: int = attrs.field(default=4, validator=positive())
    # Sampled, not greedy: n greedy samples of a problem are one program, with one confidence.
    temperature: float = attrs.field(default=0.8, validator=non_negative())
    top_p: float = attrs.field(default=0.95, validator=between(0.01, 1.0))
    max_tokens: int = attrs.field(default=0, validator=non_negative())  # 0: the decoder's limit
    max_iterations: int = attrs.field(default=50, validator=positive())
    # Problems held out of every fit, chosen by problem (never a sample of a fitted problem).
    held_out_problems: int = attrs.field(default=500, validator=positive())
    # Folds (by problem) of the fitting problems in which the three calibrators are compared.
    selection_folds: int = attrs.field(default=5, validator=at_least(2))
    problems_per_batch: int = attrs.field(default=16, validator=positive())
    checkpoint_every_batches: int = attrs.field(default=4, validator=positive())
    noise_floor_simulations: int = attrs.field(default=1000, validator=positive())
    test_timeout_s: float = attrs.field(default=5.0, validator=positive())
    sandbox_workers: int = attrs.field(default=0, validator=non_negative())  # 0: the job's cores
    seed: int = attrs.field(default=42, validator=seed())
    device: str = "auto"
    threads: int = attrs.field(default=0, validator=non_negative())  # 0: torch's default


GAMMA_PROFILES = {
    "tiny": GammaCalibrationConfig(
        datasets=(DatasetQuota("humaneval", 8), DatasetQuota("mbpp", 8)),
        samples_per_problem=3,
        max_tokens=32,
        max_iterations=8,
        held_out_problems=5,
        selection_folds=3,
        problems_per_batch=4,
        checkpoint_every_batches=1,
        noise_floor_simulations=200,
        test_timeout_s=2.0,
        threads=1,
    ),
    # The plan's ~2,700 problems: HumanEval, MBPP's 500 test problems, 2,000 of APPS.
    "full": GammaCalibrationConfig(
        datasets=(
            DatasetQuota("humaneval", 164),
            # MBPP's test split: task ids 11-510, after the 10 prompt examples in file order.
            DatasetQuota("mbpp", 500, skip=10),
            DatasetQuota("apps_introductory_train", 700),
            DatasetQuota("apps_interview_train", 700),
            DatasetQuota("apps_competition_train", 600),
        ),
        samples_per_problem=8,
        problems_per_batch=32,
    ),
}
