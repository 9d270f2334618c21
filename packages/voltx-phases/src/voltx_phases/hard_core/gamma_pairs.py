"""Phase 3.2's data: (raw confidence, pass rate) pairs, one per model sample, collected batch by
batch and checkpointed as they come (`docs/phases.md`, 3.2).

    problems = load_problems(ctx, config)                  # PhaseError when none has tests
    pairs = collect_pairs(ctx, config, model, problems)    # resumes from the latest checkpoint

Batch b of `problems_per_batch` problems is sampled with seed `seed + b`, whatever ran before it,
so a run resumed after a kill samples exactly what an uninterrupted run samples. Each sample runs
in the sandbox (`execution.sandbox.evaluate_many`, one process per test, the job's cores in
parallel); a program a problem's samples share is run once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import numpy as np

from voltx import PhaseContext, PhaseError, PhaseStopped
from voltx_phases._common.training_state import read_training_state, write_training_state
from voltx_phases.datasets.schema import Problem, read_problems
from voltx_phases.execution.limits import SandboxLimits
from voltx_phases.execution.sandbox import evaluate_many
from voltx_phases.hard_core.gamma_config import GammaCalibrationConfig

if TYPE_CHECKING:
    from voltx_phases.models.inference import VoltModel


@attrs.frozen(eq=False)
class CalibrationPairs:
    """Per sample: the index of its problem, its raw confidence and its pass rate."""

    problem: np.ndarray  # int64 [N]
    confidence: np.ndarray  # float64 [N]
    pass_rate: np.ndarray  # float64 [N]


def load_problems(ctx: PhaseContext, config: GammaCalibrationConfig) -> list[Problem]:
    """The configured datasets' problems that have tests, in config then file order."""
    if not config.datasets:
        raise PhaseError(ctx.phase_id, f"no datasets configured ({ctx.phase_id}.datasets)")
    problems: list[Problem] = []
    for quota in config.datasets:
        if quota.name not in ctx.inputs:
            raise PhaseError(
                ctx.phase_id,
                f"dataset {quota.name!r} is not in the store (run 0.2, or drop it from "
                f"{ctx.phase_id}.datasets)",
            )
        chosen = list(read_problems(ctx.input_file(quota.name, "*.jsonl")))[quota.skip :]
        problems.extend(chosen[: quota.limit] if quota.limit else chosen)
    with_tests = [problem for problem in problems if problem.tests]
    if not with_tests:
        names = ", ".join(quota.name for quota in config.datasets)
        raise PhaseError(
            ctx.phase_id,
            f"no problems with tests in {names} ({len(problems)} problem(s) read, none has a "
            "test to run its samples against)",
        )
    if len(with_tests) < 3:
        # One held-out problem and two fitting ones, so the methods can be compared out of fold.
        raise PhaseError(
            ctx.phase_id,
            f"{len(with_tests)} problem(s) with tests in "
            f"{', '.join(quota.name for quota in config.datasets)}; calibration needs at least 3",
        )
    return with_tests


def _pass_rates(
    problems: Sequence[Problem], codes: Sequence[tuple[int, str]], config: GammaCalibrationConfig
) -> list[float]:
    """The fraction of its problem's tests each (problem index, code) passes, each distinct pair
    run once, one language at a time."""
    distinct = sorted(set(codes))
    rates: dict[tuple[int, str], float] = {}
    limits = SandboxLimits(timeout_s=config.test_timeout_s)
    for language in sorted({problems[index].language for index, _ in distinct}):
        jobs = [(i, code) for i, code in distinct if problems[i].language == language]
        reports = evaluate_many(
            [(code, problems[i].tests) for i, code in jobs],
            language_name=language,
            limits=limits,
            workers=config.sandbox_workers,
        )
        rates.update(zip(jobs, (report.pass_rate for report in reports), strict=True))
    return [rates[pair] for pair in codes]


def _sample_batch(
    model: VoltModel,
    problems: Sequence[Problem],
    first: int,
    batch_index: int,
    config: GammaCalibrationConfig,
) -> tuple[list[int], list[float], list[float]]:
    from voltx_phases.models.inference import ReasoningSettings
    from voltx_phases.models.sampling import SamplingSettings

    seed = config.seed + batch_index
    chunk = problems[first : first + config.problems_per_batch]
    generated = model.generate(
        [problem.query for problem in chunk],
        config.samples_per_problem,
        SamplingSettings(
            temperature=config.temperature,
            top_p=config.top_p,
            max_tokens=config.max_tokens,
            seed=seed,
        ),
        ReasoningSettings(max_iterations=config.max_iterations, seed=seed),
    )
    owners = [first + offset for offset, result in enumerate(generated) for _ in result.samples]
    confidences = [sample.confidence for result in generated for sample in result.samples]
    codes = [
        (first + offset, sample.code)
        for offset, result in enumerate(generated)
        for sample in result.samples
    ]
    return owners, confidences, _pass_rates(problems, codes, config)


def collect_pairs(
    ctx: PhaseContext,
    config: GammaCalibrationConfig,
    model: VoltModel,
    problems: Sequence[Problem],
) -> CalibrationPairs:
    """Every problem's samples paired with their pass rates, from the latest checkpoint on; a
    checkpoint every `checkpoint_every_batches` batches and on a stop request."""
    owners: list[int] = []
    confidences: list[float] = []
    rates: list[float] = []
    done = 0
    latest = ctx.checkpoints.latest()
    ids = [problem.id for problem in problems]
    if latest is not None:
        loop = read_training_state(Path(latest.path), {}, None)
        if loop["problem_ids"] != ids:
            raise PhaseError(
                ctx.phase_id,
                f"checkpoint {latest.path} was collected over other problems; delete "
                f"checkpoints/{ctx.phase_id}/ in the store to start over",
            )
        done, owners, confidences, rates = (
            loop["batches_done"],
            loop["problem"],
            loop["confidence"],
            loop["pass_rate"],
        )
        ctx.log.info("resuming pair collection", batches_done=done, pairs=len(owners))
    total = -(-len(problems) // config.problems_per_batch)
    for batch in range(done, total):
        more = _sample_batch(model, problems, batch * config.problems_per_batch, batch, config)
        owners += more[0]
        confidences += more[1]
        rates += more[2]
        mean_pass_rate = float(np.mean(rates))
        ctx.metrics.log_metrics(batch + 1, pairs=len(owners), mean_pass_rate=mean_pass_rate)
        ctx.progress(batch + 1, total, pairs=len(owners), mean_pass_rate=mean_pass_rate)
        stopping = ctx.stop_requested()
        if (batch + 1) % config.checkpoint_every_batches == 0 or stopping or batch + 1 == total:
            with ctx.checkpoints.save(batch + 1) as folder:
                write_training_state(
                    Path(folder),
                    {},
                    None,
                    {
                        "batches_done": batch + 1,
                        "problem_ids": ids,
                        "problem": owners,
                        "confidence": confidences,
                        "pass_rate": rates,
                    },
                )
        if stopping:
            raise PhaseStopped(ctx.phase_id, f"batch {batch + 1} of {total}")
    return CalibrationPairs(
        problem=np.asarray(owners, dtype=np.int64),
        confidence=np.asarray(confidences, dtype=np.float64),
        pass_rate=np.asarray(rates, dtype=np.float64),
    )
