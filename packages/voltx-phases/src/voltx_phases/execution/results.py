"""What a sandboxed program did, and what each of a problem's tests did (`docs/sandbox.md`).

`SandboxResult` is one process: its exit, its time and its output. `TestReport` is one problem:
one `TestOutcome` per test, so phases that need a pass rate (RLVF rewards, partial credit) read
`pass_rate` instead of one verdict per program, and each failure carries why it failed.
"""

from __future__ import annotations

from typing import Literal

import attrs

Status = Literal["passed", "failed", "timeout", "error"]

# Why a test did not pass, from the earliest stage that went wrong: the compile step (or, for
# Python, a syntax error), the program crashing, an assertion or compared output that disagreed,
# the wall clock or CPU limit, the address-space limit.
FailureReason = Literal["compile_error", "runtime_error", "wrong_answer", "timeout", "memory"]


@attrs.frozen
class SandboxResult:
    """What one sandboxed program did."""

    status: Status
    returncode: int | None
    duration_s: float
    stdout: str = ""
    stderr_tail: str = ""
    # Why it did not pass, in the terms of `FailureReason`; None when it passed.
    failure: FailureReason | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def reason(self) -> str:
        """One line saying why it did not pass (the last line of stderr, or the status)."""
        lines = [line for line in self.stderr_tail.splitlines() if line.strip()]
        return lines[-1] if lines else self.status


@attrs.frozen
class TestOutcome:
    """One test of a problem: whether it passed and, if not, why."""

    __test__ = False  # not a pytest test class, despite the name

    index: int
    passed: bool
    failure: FailureReason | None
    # The last non-empty line of stderr (or of the compiler's output), for people reading logs.
    detail: str
    duration_s: float


@attrs.frozen
class TestReport:
    """Every test of one problem's solution, in the order the tests were given."""

    __test__ = False

    language: str
    outcomes: tuple[TestOutcome, ...]
    # Seconds spent compiling (0 for interpreted languages), once per problem.
    compile_s: float = 0.0

    @property
    def total(self) -> int:
        return len(self.outcomes)

    @property
    def passed_count(self) -> int:
        return sum(outcome.passed for outcome in self.outcomes)

    @property
    def pass_rate(self) -> float:
        """The fraction of tests passed; a problem with no tests passes nothing."""
        return self.passed_count / self.total if self.outcomes else 0.0

    @property
    def all_passed(self) -> bool:
        return bool(self.outcomes) and self.passed_count == self.total

    @property
    def failures(self) -> dict[FailureReason, int]:
        """How many tests failed for each reason."""
        counts: dict[FailureReason, int] = {}
        for outcome in self.outcomes:
            if outcome.failure is not None:
                counts[outcome.failure] = counts.get(outcome.failure, 0) + 1
        return counts
