"""Small problems in JavaScript, Java, Rust and Go, generated and checked in the sandbox.

    from voltx_phases.scale.language_problems import generate_language_problems
    report = generate_language_problems("java", count=8, seed=0)
    report.problems                      # unified `Problem`s, language "java"

The per-language counterpart of phase 0.2's Python generator (`voltx_phases.datasets.generator`)
for phases 5.2a/b/c when no problems in the language are given. Each problem comes from a task
family of `language_templates` written in the language's MultiPL-E layout: the solution is the
commented signature and body, the one test is the program that follows it (asserts in
JavaScript, Java and Rust, a table-driven ``testing`` function in Go). A problem is kept only
after its test program passed against its solution in the sandbox's runner for that language;
one that fails is dropped and counted, never shipped.

Determinism: families take turns in a fixed order; each candidate draws from its own generator
seeded with ``(seed, language, round, family)``; duplicates of an earlier solution are skipped;
validation runs in parallel but its results are taken in candidate order. The same language,
count and seed give the same problems, byte for byte.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator

import attrs

from voltx_phases.datasets.schema import Problem
from voltx_phases.execution.sandbox import SandboxLimits, evaluate_many
from voltx_phases.scale.language_templates import DIALECTS, FAMILIES, Task

ID_PREFIX = "voltx-generated"
LANGUAGES = tuple(DIALECTS)


@attrs.define
class LanguageGeneration:
    """The kept problems of one language and what was left out on the way."""

    language: str
    problems: list[Problem] = attrs.field(factory=list)
    candidates: int = 0
    duplicates: int = 0
    # Task family -> problems whose test program failed against their own solution.
    failed: Counter[str] = attrs.field(factory=Counter)
    # The first few failures, "family: reason", for the log and the error message.
    failure_examples: list[str] = attrs.field(factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "language": self.language,
            "kept": len(self.problems),
            "candidates": self.candidates,
            "duplicates": self.duplicates,
            "failed": dict(sorted(self.failed.items())),
        }


def render(task: Task, language: str) -> tuple[str, str]:
    """(solution, test program) of `task` in `language`."""
    dialect = DIALECTS[language]
    return dialect.solution(task, dialect), dialect.tests(task, dialect)


def generate_language_problems(
    language: str,
    count: int,
    seed: int = 0,
    *,
    limits: SandboxLimits | None = None,
    workers: int = 0,
) -> LanguageGeneration:
    """Generate and validate until `count` problems in `language` passed their tests."""
    if language not in DIALECTS:
        raise ValueError(f"no problem templates for {language!r} (have: {', '.join(LANGUAGES)})")
    report = LanguageGeneration(language)
    seen: set[str] = set()
    tasks = _tasks(seed, language)
    # Give up only when families keep failing or repeating: 5x the count is far beyond that.
    budget = 5 * count + len(FAMILIES)
    while len(report.problems) < count and report.candidates < budget:
        batch: list[tuple[Task, str, str]] = []
        while len(batch) < count - len(report.problems) and report.candidates < budget:
            task = next(tasks)
            report.candidates += 1
            solution, tests = render(task, language)
            if solution in seen:
                report.duplicates += 1
                continue
            seen.add(solution)
            batch.append((task, solution, tests))
        jobs = [(solution, [tests]) for _, solution, tests in batch]
        results = evaluate_many(jobs, language_name=language, limits=limits, workers=workers)
        for (task, solution, tests), result in zip(batch, results, strict=True):
            if not result.all_passed:
                report.failed[task.family] += 1
                if len(report.failure_examples) < 5:
                    detail = result.outcomes[0].detail if result.outcomes else "no outcome"
                    report.failure_examples.append(f"{task.family}: {detail}")
            elif len(report.problems) < count:
                report.problems.append(
                    _problem(language, len(report.problems), task, solution, tests)
                )
    return report


def _tasks(seed: int, language: str) -> Iterator[Task]:
    for round_index in range(1_000_000):
        for family in FAMILIES:
            # A generator per candidate, so one family's draws never shift another's.
            rng = random.Random(f"{seed}:{language}:{round_index}:{family.__name__}")
            yield family(rng)
    raise RuntimeError("the language problem generator ran out of rounds")  # pragma: no cover


def _problem(language: str, index: int, task: Task, solution: str, tests: str) -> Problem:
    return Problem(
        id=f"{ID_PREFIX}/{language}/{index}",
        query=f"Write a {_DISPLAY[language]} function `{task.name}` that {task.description}.",
        solution=solution,
        tests=(tests,),
        language=language,
    )


_DISPLAY = {"javascript": "JavaScript", "java": "Java", "rust": "Rust", "go": "Go"}
