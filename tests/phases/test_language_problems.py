"""The per-language problem generator of phases 5.2a/b/c: problems checked in the sandbox."""

from __future__ import annotations

import random
import shutil

import pytest

from voltx_phases.execution.sandbox import SandboxLimits, ToolchainMissingError, evaluate
from voltx_phases.scale.language_problems import LANGUAGES, generate_language_problems, render
from voltx_phases.scale.language_templates import FAMILIES

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
LIMITS = SandboxLimits(timeout_s=20.0)


@pytest.mark.slow
@pytest.mark.parametrize("language", LANGUAGES)
def test_every_family_passes_its_own_tests_and_fails_a_wrong_body(language: str) -> None:
    """One problem of each family (round 0): all kept; a body returning something else fails."""
    try:
        report = generate_language_problems(language, len(FAMILIES), seed=3, limits=LIMITS)
    except ToolchainMissingError as missing:
        pytest.skip(str(missing))
    assert len(report.problems) == len(FAMILIES), report.failure_examples
    assert not report.failed and report.candidates == len(FAMILIES)
    for index, problem in enumerate(report.problems):
        assert problem.id == f"voltx-generated/{language}/{index}"
        assert problem.language == language and len(problem.tests) == 1
    # Take the linear family's solution and break its constant: the test program must notice.
    linear = report.problems[0]
    broken = linear.solution.replace(" * ", " * 1 + 0 * ", 1)
    assert broken != linear.solution
    verdict = evaluate(broken, list(linear.tests), language_name=language, limits=LIMITS)
    assert [outcome.failure for outcome in verdict.outcomes] == ["wrong_answer"]


def test_the_same_seed_gives_the_same_problems() -> None:
    if shutil.which("node") is None:
        pytest.skip("needs node")
    first = generate_language_problems("javascript", 4, seed=7, limits=LIMITS)
    second = generate_language_problems("javascript", 4, seed=7, limits=LIMITS)
    assert first.problems == second.problems
    other = generate_language_problems("javascript", 4, seed=8, limits=LIMITS)
    assert other.problems != first.problems


def test_rendering_is_pure_text() -> None:
    for family in FAMILIES:
        task = family(random.Random(0))
        for language in LANGUAGES:
            solution, tests = render(task, language)
            assert task.name in solution and task.name in tests
            assert render(family(random.Random(0)), language) == (solution, tests)


def test_an_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="no problem templates for 'cobol'"):
        generate_language_problems("cobol", 1)
