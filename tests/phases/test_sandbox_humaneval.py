"""HumanEval's 164 canonical solutions pass their tests in the isolated sandbox."""

from __future__ import annotations

import shutil

import pytest

from _support import REPO
from voltx_phases.datasets import readers
from voltx_phases.execution.sandbox import evaluate_many

HUMANEVAL = REPO.parent / "shared" / "data" / "humaneval.jsonl"


@pytest.mark.slow
@pytest.mark.skipif(not HUMANEVAL.is_file(), reason=f"{HUMANEVAL} is absent")
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_humaneval_canonical_solutions_pass_in_the_sandbox() -> None:
    problems = list(readers.read_humaneval(HUMANEVAL))
    reports = evaluate_many([(p.solution, p.tests) for p in problems])
    assert len(reports) == 164
    failures = [
        (p.id, r.outcomes) for p, r in zip(problems, reports, strict=True) if not r.all_passed
    ]
    assert failures == []
