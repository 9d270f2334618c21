"""The one harness 5.3 runs code through, and the ground-truth check of every benchmark.

A program passes when every test of its problem passes in the sandbox of the problem's
language (`voltx_phases.execution`). Python programs run as `run_many` runs them (the solution
followed by all its tests, one process, as phase 0.2 validates problems); the other languages
run one process per test through `evaluate_many`, in the runner of the language the row names.

Before any sample is scored, each benchmark's own reference solutions go through this same
harness (as EvalPlus does): a problem whose reference fails is a broken problem, not a model
failure, and is reported and left out of every score. MultiPL-E rows ship no reference (their
``solution`` is the prompt every completion continues), so they are marked unverifiable and
kept.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import attrs

from voltx_phases.datasets.schema import Problem
from voltx_phases.execution.limits import SandboxLimits
from voltx_phases.execution.results import TestOutcome
from voltx_phases.execution.sandbox import evaluate_many, run_many

PYTHON = "python"


def is_completion_problem(problem: Problem) -> bool:
    """A MultiPL-E style row: the model continues the prompt in ``solution`` until a stop token.

    Only MultiPL-E rows carry stop tokens (docs/formats.md, unified problem JSONL)."""
    return bool(problem.stop_tokens)


def candidate_program(problem: Problem, code: str) -> str:
    """The program a sample stands for: the sample itself, or for a completion problem the
    prompt followed by the sample cut at its first stop token."""
    if not is_completion_problem(problem):
        return code
    cut = min((i for token in problem.stop_tokens if (i := code.find(token)) >= 0), default=-1)
    return problem.solution + (code[:cut] if cut >= 0 else code)


@attrs.frozen
class Verdict:
    """Whether one program passed all its problem's tests, and why not."""

    passed: bool
    reason: str = ""


def run_programs(
    jobs: Sequence[tuple[Problem, str]], limits: SandboxLimits, workers: int = 0
) -> list[Verdict]:
    """Run each (problem, program) against the problem's tests; verdicts in the jobs' order.

    Jobs are grouped by language so each language's runner is resolved once."""
    verdicts: list[Verdict | None] = [None] * len(jobs)
    by_language: dict[str, list[int]] = defaultdict(list)
    for index, (problem, _) in enumerate(jobs):
        by_language[problem.language].append(index)
    for language, indices in sorted(by_language.items()):
        cases = [(jobs[i][1], jobs[i][0].tests) for i in indices]
        if language == PYTHON:
            results = run_many(cases, limits, workers)
            found = [Verdict(r.passed, "" if r.passed else r.reason) for r in results]
        else:
            reports = evaluate_many(cases, language_name=language, limits=limits, workers=workers)
            found = [
                Verdict(
                    r.all_passed,
                    "" if r.all_passed else _first_failure(r.outcomes) or "no tests",
                )
                for r in reports
            ]
        for index, verdict in zip(indices, found, strict=True):
            verdicts[index] = verdict
    return [v for v in verdicts if v is not None]


def _first_failure(outcomes: Sequence[TestOutcome]) -> str:
    for outcome in outcomes:
        if not outcome.passed:
            return f"test {outcome.index}: {outcome.detail}"
    return ""


@attrs.frozen
class BrokenProblem:
    """A problem whose own reference solution fails its tests."""

    problem_id: str
    reason: str


@attrs.frozen
class GroundTruth:
    """The outcome of running a benchmark's references: what is kept and what is not."""

    kept: tuple[Problem, ...]
    broken: tuple[BrokenProblem, ...]
    # Completion problems (MultiPL-E): no reference to run, kept as they are.
    unverifiable: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "checked": len(self.kept) - len(self.unverifiable) + len(self.broken),
            "passed": len(self.kept) - len(self.unverifiable),
            "broken": [attrs.asdict(b) for b in self.broken],
            "unverifiable": len(self.unverifiable),
        }


def check_references(
    problems: Sequence[Problem], limits: SandboxLimits, workers: int = 0
) -> GroundTruth:
    """Run every problem's reference solution through the harness (see the module docstring)."""
    verifiable = [p for p in problems if not is_completion_problem(p)]
    verdicts = run_programs([(p, p.solution) for p in verifiable], limits, workers)
    failed = {
        problem.id: verdict.reason
        for problem, verdict in zip(verifiable, verdicts, strict=True)
        if not verdict.passed
    }
    return GroundTruth(
        kept=tuple(p for p in problems if p.id not in failed),
        broken=tuple(BrokenProblem(pid, reason) for pid, reason in failed.items()),
        unverifiable=tuple(p.id for p in problems if is_completion_problem(p)),
    )
