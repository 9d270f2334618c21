"""Self-generated mutations of solved problems, the third source of phase 4.2's problems
(`docs/phases.md`, 4.2).

A mutation renames every top-level function a problem's reference solution defines, in the
solution, in every test and in the problem text alike (`count_vowels` -> `count_vowels_m1`): a
problem with the same behaviour behind a new surface, so the policy cannot rely on recalling a
name it was trained on. A problem is "solved" when its reference solution passes all its tests
in the sandbox; a mutation is kept only if the renamed reference solution still passes all the
renamed tests there, so every mutation is verified before it is trained on. Problems whose tests
read stdin (APPS stdio tests) have no function to rename and are not mutated.

    mutations = make_mutations(problems, count=1000, limits=SandboxLimits(timeout_s=4.0))
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence

import attrs

from voltx_phases.datasets.schema import Problem
from voltx_phases.execution.limits import SandboxLimits
from voltx_phases.execution.sandbox import STDIO_MARKER, run_many


def defined_functions(solution: str) -> list[str]:
    """Names of the top-level functions of `solution`, in order (none if it does not parse)."""
    try:
        tree = ast.parse(solution)
    except (SyntaxError, ValueError):
        return []
    return [
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def rename(problem: Problem, generation: int) -> Problem | None:
    """The problem with each defined function renamed `<name>_m<generation>`; None when there is
    nothing to rename (stdio tests, a solution that does not parse, no function)."""
    if any(test.startswith(STDIO_MARKER) for test in problem.tests):
        return None
    names = defined_functions(problem.solution)
    if not names or not problem.tests:
        return None
    pattern = re.compile(r"\b(" + "|".join(re.escape(name) for name in names) + r")\b")

    def renamed(text: str) -> str:
        return pattern.sub(lambda match: f"{match.group(1)}_m{generation}", text)

    return attrs.evolve(
        problem,
        id=f"{problem.id}~m{generation}",
        query=renamed(problem.query),
        solution=renamed(problem.solution),
        tests=tuple(renamed(test) for test in problem.tests),
    )


def make_mutations(
    problems: Sequence[Problem], count: int, limits: SandboxLimits, workers: int = 0
) -> list[Problem]:
    """Up to `count` verified mutations, taking the problems in order (generation 1 of each,
    then generation 2, ... until `count` are made or a generation verifies none)."""
    if count == 0:
        return []
    kept: list[Problem] = []
    solved = _passing(problems, limits, workers)
    if not solved:
        return []
    generation = 1
    while len(kept) < count:
        candidates = [m for p in solved if (m := rename(p, generation)) is not None]
        if not candidates:
            break
        verified = _passing(candidates[: count - len(kept)], limits, workers)
        if not verified:
            break  # a generation that verifies nothing would not verify later either
        kept.extend(verified)
        generation += 1
    return kept


def _passing(problems: Sequence[Problem], limits: SandboxLimits, workers: int) -> list[Problem]:
    """The problems whose reference solution passes all their tests in the sandbox."""
    results = run_many(((p.solution, p.tests) for p in problems), limits, workers)
    return [problem for problem, result in zip(problems, results, strict=True) if result.passed]
