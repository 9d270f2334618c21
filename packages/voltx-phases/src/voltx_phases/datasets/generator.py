"""The embedded problem set: a few hundred small Python problems the project makes itself.

`voltx run all` must work on a machine with no dataset downloads and no project file, so phase
0.2 fills every problem artifact it has no raw file for from this generator. Each problem has a
natural-language description (the query), a complete reference function (the solution) and
several assert tests, and is kept only after its tests passed against its solution in the
sandbox (`voltx_phases.execution.sandbox`); a problem whose template is wrong is dropped and
counted, never shipped.

Determinism: the same `count` and `seed` give the same problems in the same order, byte for
byte. Templates take turns in rounds (each round a seeded interleaving of all templates, so the
three difficulties are spread evenly and even a small count covers every one), each candidate
draws from its own generator seeded with ``(seed, round, template)``, duplicates of an earlier
solution are skipped, and validation runs in parallel but its results are taken in candidate
order. Only a sandbox timeout under extreme load could make a run differ, and the limit is far
above what these programs need (milliseconds).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterator

import attrs

from voltx_phases.datasets import _basic_templates, _competition_templates, _interview_templates
from voltx_phases.datasets._templates import Draft, Template
from voltx_phases.datasets.schema import Problem
from voltx_phases.execution.sandbox import SandboxLimits, run_many

TEMPLATES: tuple[Template, ...] = (
    *_basic_templates.TEMPLATES,
    *_interview_templates.TEMPLATES,
    *_competition_templates.TEMPLATES,
)
DIFFICULTIES = ("introductory", "interview", "competition")
ID_PREFIX = "voltx-generated"


@attrs.define
class GenerationReport:
    """The kept problems and what was left out on the way."""

    problems: list[Problem] = attrs.field(factory=list)
    candidates: int = 0
    duplicates: int = 0
    # Template key -> problems whose tests failed against their own solution.
    failed: Counter[str] = attrs.field(factory=Counter)
    # The first few failures, "template: reason", for the log.
    failure_examples: list[str] = attrs.field(factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "kept": len(self.problems),
            "candidates": self.candidates,
            "duplicates": self.duplicates,
            "failed": dict(sorted(self.failed.items())),
        }


def generate_problems(
    count: int,
    seed: int = 0,
    *,
    limits: SandboxLimits | None = None,
    workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> GenerationReport:
    """Generate and validate until `count` problems passed their tests (see module docstring)."""
    report = GenerationReport()
    seen: set[str] = set()
    drafts = _drafts(seed)
    # Give up only when templates keep failing or repeating: 5x the count is far beyond that.
    budget = 5 * count + len(TEMPLATES)
    while len(report.problems) < count and report.candidates < budget:
        need = count - len(report.problems)
        batch: list[tuple[Template, Draft]] = []
        while len(batch) < need + math.ceil(need * 0.1) + 2 and report.candidates < budget:
            template, draft = next(drafts)
            report.candidates += 1
            if draft.solution in seen:
                report.duplicates += 1
                continue
            seen.add(draft.solution)
            batch.append((template, draft))
        jobs = [(draft.solution, draft.tests()) for _, draft in batch]
        results = run_many(jobs, limits, workers)
        for (template, draft), result in zip(batch, results, strict=True):
            if not result.passed:
                report.failed[template.key] += 1
                if len(report.failure_examples) < 5:
                    report.failure_examples.append(f"{template.key}: {result.reason}")
            elif len(report.problems) < count:
                report.problems.append(_problem(len(report.problems), template, draft))
        if progress is not None:
            progress(len(report.problems), count)
    return report


def split_generated(problems: list[Problem]) -> tuple[list[Problem], list[Problem], list[Problem]]:
    """Split generated problems into (held-out as `humaneval`, held-out as `mbpp`, training).

    Counted per difficulty, the 4th of every 10 goes to the first, the 9th to the second and
    the rest to training, so each difficulty keeps 80% for the `apps_*_train` splits and the two
    held-out sets mix all three.
    """
    humaneval: list[Problem] = []
    mbpp: list[Problem] = []
    training: list[Problem] = []
    seen: Counter[str | None] = Counter()
    for problem in problems:
        position = seen[problem.difficulty] % 10
        seen[problem.difficulty] += 1
        (humaneval if position == 3 else mbpp if position == 8 else training).append(problem)
    return humaneval, mbpp, training


def _drafts(seed: int) -> Iterator[tuple[Template, Draft]]:
    order_rng = random.Random(seed)
    for round_index in range(1_000_000):
        for template in _interleaved(order_rng):
            # A generator per candidate, so one template's draws never shift another's.
            rng = random.Random(f"{seed}:{round_index}:{template.key}")
            yield template, template.build(rng)
    raise RuntimeError("the problem generator ran out of rounds")  # pragma: no cover


def _interleaved(rng: random.Random) -> list[Template]:
    """All templates once, each difficulty shuffled and spread evenly across the round."""
    placed: list[tuple[float, int, Template]] = []
    for rank, difficulty in enumerate(DIFFICULTIES):
        group = [t for t in TEMPLATES if t.difficulty == difficulty]
        rng.shuffle(group)
        placed += [((i + 0.5) / len(group), rank, t) for i, t in enumerate(group)]
    return [template for _, _, template in sorted(placed, key=lambda item: item[:2])]


def _problem(index: int, template: Template, draft: Draft) -> Problem:
    return Problem(
        id=f"{ID_PREFIX}/{index}",
        query=draft.query,
        solution=draft.solution,
        tests=draft.tests(),
        difficulty=template.difficulty,
    )
