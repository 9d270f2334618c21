"""Rewards from running samples' tests in the sandbox (`docs/phases.md`, 4.1), torch-free.

A sample that passes some tests earns its pass rate, in (0, 1]. One that passes none earns a
shaped outcome reward by how far it got, as CodeRL scores outcomes, so that a model that cannot
yet pass a test still learns to write code that compiles, then code that runs:

    compile error  -1.0     (Python: a syntax error; every test fails at the first stage)
    runtime error  -0.6     (it compiled, but no test got to compare an answer: a crash,
                             a timeout or the memory limit)
    wrong answer   -0.3     (at least one test ran to its comparison and got another answer)

`ScoringPool` runs a batch's tests on a background thread while the caller generates the next
batch; results come back keyed by the batch's step, in the samples' order, never in order of
completion, so training is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Literal

import attrs

from voltx_phases.execution.limits import SandboxLimits
from voltx_phases.execution.results import TestReport
from voltx_phases.execution.sandbox import evaluate_many

Outcome = Literal["passed", "partial", "wrong_answer", "runtime_error", "compile_error"]


@attrs.frozen
class RewardShaping:
    """The rewards of samples that pass no test; each must rank above the one before."""

    compile_error: float = -1.0
    runtime_error: float = -0.6
    wrong_answer: float = -0.3

    def __attrs_post_init__(self) -> None:
        if not self.compile_error < self.runtime_error < self.wrong_answer <= 0:
            raise ValueError(
                "shaped rewards must satisfy compile_error < runtime_error < wrong_answer <= 0, "
                f"got {self.compile_error}, {self.runtime_error}, {self.wrong_answer}"
            )


@attrs.frozen
class ScoredSample:
    """What one sample's tests gave: its reward and the figures logged every step."""

    reward: float
    outcome: Outcome
    pass_rate: float
    compiled: bool


def score_report(report: TestReport, shaping: RewardShaping) -> ScoredSample:
    """The shaped reward of one sample's `TestReport`."""
    failures = report.failures
    compiled = report.total > 0 and "compile_error" not in failures
    if report.all_passed:
        return ScoredSample(1.0, "passed", 1.0, compiled)
    if report.passed_count:
        return ScoredSample(report.pass_rate, "partial", report.pass_rate, compiled)
    if "wrong_answer" in failures:
        return ScoredSample(shaping.wrong_answer, "wrong_answer", 0.0, compiled)
    if compiled:
        return ScoredSample(shaping.runtime_error, "runtime_error", 0.0, compiled)
    return ScoredSample(shaping.compile_error, "compile_error", 0.0, compiled)


def score_samples(
    jobs: Sequence[tuple[str, Sequence[str]]],
    shaping: RewardShaping,
    limits: SandboxLimits,
    workers: int = 0,
) -> list[ScoredSample]:
    """Run each (code, tests) in the sandbox, one process per test, and score it; in order."""
    reports = evaluate_many(jobs, limits=limits, workers=workers)
    return [score_report(report, shaping) for report in reports]


class ScoringPool:
    """Scores batches in the background: `submit` returns at once, `result` waits for a batch.

    One background thread runs a whole batch at a time (itself over `workers` sandboxed
    processes), so batches are scored in submission order and a batch's results do not depend
    on timing.
    """

    def __init__(self, shaping: RewardShaping, limits: SandboxLimits, workers: int = 0) -> None:
        self._shaping = shaping
        self._limits = limits
        self._workers = workers
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voltx-scoring")
        self._pending: dict[int, Future[list[ScoredSample]]] = {}

    def submit(self, key: int, jobs: Sequence[tuple[str, Sequence[str]]]) -> None:
        if key in self._pending:
            raise ValueError(f"batch {key} is already being scored")
        self._pending[key] = self._executor.submit(
            score_samples, list(jobs), self._shaping, self._limits, self._workers
        )

    def result(self, key: int) -> list[ScoredSample]:
        """The scores of batch `key`, in the order its jobs were given."""
        return self._pending.pop(key).result()

    def __enter__(self) -> ScoringPool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for future in self._pending.values():
            future.cancel()
        self._executor.shutdown(wait=True)
