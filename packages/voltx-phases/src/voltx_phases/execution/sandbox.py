"""Run code voltx did not write (a solution and its tests) in a sandbox (`docs/sandbox.md`).

Every phase that executes code it did not write (generated problems, reference solutions of a
downloaded dataset, model samples in RLVF and the benchmarks) goes through this module:

- `run_program`, `run_tests` and `run_many`: one Python process for a program, or for a
  solution followed by all its tests, with one verdict (`SandboxResult`);
- `evaluate` and `evaluate_many`: one process per test, in any of the languages of
  `voltx_phases.execution.languages`, with a `TestReport` saying how many tests passed and why
  each failure failed (compile error, runtime error, wrong answer, timeout, memory).

Each process is isolated with bubblewrap (`voltx_phases.execution.isolation`: no network, a
read-only view of the runtime only, private folders, its own pid namespace and uid, an empty
environment) and limited with rlimits (`voltx_phases.execution.limits`: address space, CPU
seconds, file size, open files, processes) and a wall clock. Where namespaces cannot be
created, the sandbox refuses with a `SandboxUnavailableError` unless the weaker rlimits-only
mode is asked for by name.

How a Python program is assembled from a solution and its tests (`assemble_program`): the
solution is written to ``solution.py`` in the working folder and the program is the solution
followed by every test, one after the other (HumanEval, MBPP and call-based APPS tests are
assert snippets that call the solution's functions). Tests that begin with `STDIO_MARKER` are
stdin/stdout cases (APPS): each one runs ``solution.py`` itself with a given stdin and compares
its output, so for those the solution is not pasted in front (it would read the real, empty
stdin).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from voltx_phases.execution.isolation import (
    ISOLATION_ENV,
    SandboxUnavailableError,
    ToolchainMissingError,
    resolve_mode,
)
from voltx_phases.execution.languages import Language, Toolchain, language
from voltx_phases.execution.limits import SandboxLimits
from voltx_phases.execution.results import (
    FailureReason,
    SandboxResult,
    Status,
    TestOutcome,
    TestReport,
)
from voltx_phases.execution.runner import Space, Step, Workspace, result_of
from voltx_phases.execution.warm import Launcher, WarmWorkspace, warm_sandboxes

Job = TypeVar("Job")
Outcome = TypeVar("Outcome")

# The first line of a stdin/stdout test (see the module docstring).
STDIO_MARKER = "# voltx: stdio"
SOLUTION_FILE = "solution.py"

_PYTHON = language("python")


def assemble_program(solution: str, tests: Sequence[str]) -> str:
    """The program that runs `tests` against `solution` (which lives in ``solution.py``)."""
    parts = list(tests)
    if not any(test.startswith(STDIO_MARKER) for test in tests):
        parts.insert(0, solution)
    return "\n\n".join(parts) + "\n"


def run_tests(
    solution: str, tests: Sequence[str], limits: SandboxLimits | None = None
) -> SandboxResult:
    """Run `tests` against `solution` in one sandboxed process; passed means every test did."""
    return run_program(assemble_program(solution, tests), limits, files={SOLUTION_FILE: solution})


def run_many(
    jobs: Iterable[tuple[str, Sequence[str]]],
    limits: SandboxLimits | None = None,
    workers: int = 0,
) -> list[SandboxResult]:
    """`run_tests` for each (solution, tests), `workers` programs at a time, results in order.

    Threads are enough: each one only waits on its child process. `workers` 0 means one per
    CPU this process may use. As root each worker keeps one warm sandbox for the whole batch
    (`voltx_phases.execution.warm`).
    """
    limits = limits or SandboxLimits()

    def one(case: tuple[str, Sequence[str]], launcher: Launcher | None) -> SandboxResult:
        solution, tests = case
        program = assemble_program(solution, tests)
        return _run_program(program, limits, "", {SOLUTION_FILE: solution}, launcher)

    toolchain = _PYTHON.resolve(limits, _isolated(limits))
    return _in_batch(jobs, one, limits, toolchain, workers)


def run_program(
    source: str,
    limits: SandboxLimits | None = None,
    *,
    stdin: str = "",
    files: Mapping[str, str] | None = None,
) -> SandboxResult:
    """Run Python `source` as ``main.py`` in a fresh folder holding `files`; feed it `stdin`."""
    return _run_program(source, limits or SandboxLimits(), stdin, files or {}, None)


def _run_program(
    source: str,
    limits: SandboxLimits,
    stdin: str,
    files: Mapping[str, str],
    launcher: Launcher | None,
) -> SandboxResult:
    toolchain = _PYTHON.resolve(limits, _isolated(limits))
    with _space(limits, toolchain, launcher) as space:
        for name, text in files.items():
            space.write(name, text)
        space.write("main.py", source)
        step = Step(toolchain.run_argv, limits.timeout_s, limits.memory_bytes)
        returncode, timed_out, duration = space.execute(step, stdin)
        return result_of(_PYTHON, returncode, timed_out, duration, space.output())


def evaluate(
    solution: str,
    tests: Sequence[str],
    *,
    language_name: str = "python",
    limits: SandboxLimits | None = None,
) -> TestReport:
    """Run each of `tests` against `solution` in its own sandboxed process.

    In Python a test is an assert snippet (or a stdio test, see the module docstring); in the
    other languages it is the rest of a MultiPL-E program (the code that follows the solution,
    ``main`` or the test function included). A solution that does not compile fails every test
    with ``compile_error``, and is compiled once per test.
    """
    limits = limits or SandboxLimits()
    lang = language(language_name)
    return _evaluate(solution, tests, lang, limits, lang.resolve(limits, _isolated(limits)), None)


def evaluate_many(
    jobs: Iterable[tuple[str, Sequence[str]]],
    *,
    language_name: str = "python",
    limits: SandboxLimits | None = None,
    workers: int = 0,
) -> list[TestReport]:
    """`evaluate` for each (solution, tests), `workers` problems at a time, reports in order.

    As root each worker keeps one warm sandbox for the whole batch, as in `run_many`.
    """
    limits = limits or SandboxLimits()
    lang = language(language_name)
    toolchain = lang.resolve(limits, _isolated(limits))

    def one(job: tuple[str, Sequence[str]], launcher: Launcher | None) -> TestReport:
        return _evaluate(job[0], job[1], lang, limits, toolchain, launcher)

    return _in_batch(jobs, one, limits, toolchain, workers)


def _in_batch(
    jobs: Iterable[Job],
    run_one: Callable[[Job, Launcher | None], Outcome],
    limits: SandboxLimits,
    toolchain: Toolchain,
    workers: int,
) -> list[Outcome]:
    """`run_one` for each job, `workers` at a time, each worker in its warm sandbox if any."""
    count = workers or usable_cpus()
    with (
        warm_sandboxes(limits, toolchain) as warm,
        ThreadPoolExecutor(max_workers=count, thread_name_prefix="voltx-sandbox") as pool,
    ):

        def on_this_worker(job: Job) -> Outcome:
            return run_one(job, warm.for_this_thread() if warm is not None else None)

        return list(pool.map(on_this_worker, jobs))


def _evaluate(
    solution: str,
    tests: Sequence[str],
    lang: Language,
    limits: SandboxLimits,
    toolchain: Toolchain,
    launcher: Launcher | None,
) -> TestReport:
    outcomes: list[TestOutcome] = []
    compile_s = 0.0
    for index, test in enumerate(tests):
        with _space(limits, toolchain, launcher) as space:
            result, spent = _one_test(space, lang, solution, test)
        compile_s += spent
        outcomes.append(
            TestOutcome(index, result.passed, result.failure, result.reason, result.duration_s)
        )
    return TestReport(lang.name, tuple(outcomes), compile_s)


def _space(
    limits: SandboxLimits, toolchain: Toolchain, launcher: Launcher | None
) -> Workspace | WarmWorkspace:
    """A run's space: in the worker's warm sandbox when there is one, else its own."""
    if launcher is not None:
        return launcher.workspace(limits, toolchain)
    return Workspace(limits, toolchain)


def _one_test(
    space: Space, lang: Language, solution: str, test: str
) -> tuple[SandboxResult, float]:
    limits = space.limits
    compile_s = 0.0
    if lang.name == "python":
        # Passing needs the line after the test to run, not only a zero exit: a solution that
        # calls exit(0) before the tests would otherwise pass them all.
        token = secrets.token_hex(16)
        space.write(SOLUTION_FILE, solution)
        source = assemble_program(solution, [test]) + f"print({token!r}, flush=True)\n"
    else:
        token = ""
        source = solution + "\n" + test + "\n"
    space.write(lang.source_file, source)
    toolchain = space.toolchain
    if toolchain.compile_argv is not None:
        started = time.monotonic()
        compile_limits = Step(
            toolchain.compile_argv,
            lang.compile_timeout_s,
            max(limits.memory_bytes, lang.compile_memory_bytes),
            max(limits.file_size_bytes, lang.compile_file_size_bytes),
            compiles=True,
        )
        returncode, timed_out, duration = space.execute(compile_limits)
        compile_s = time.monotonic() - started
        compiled = result_of(
            lang, returncode, timed_out, duration, space.output(), compile_step=True
        )
        if not compiled.passed:
            failure: FailureReason = "compile_error" if not timed_out else "timeout"
            return _with_failure(compiled, failure), compile_s
    step = Step(toolchain.run_argv, limits.timeout_s + lang.startup_s, limits.memory_bytes)
    returncode, timed_out, duration = space.execute(step)
    result = result_of(lang, returncode, timed_out, duration, space.output())
    if result.passed and token and token not in space.output()[1]:
        result = _with_failure(result, "runtime_error")
    return result, compile_s


def _with_failure(result: SandboxResult, failure: FailureReason) -> SandboxResult:
    status: Status = "timeout" if failure == "timeout" else "error"
    return SandboxResult(
        status, result.returncode, result.duration_s, result.stdout, result.stderr_tail, failure
    )


def _isolated(limits: SandboxLimits) -> bool:
    return resolve_mode(limits.isolation) == "bubblewrap"


def usable_cpus() -> int:
    """The CPUs this process may run on (a job's share), where the platform can tell."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


__all__ = [
    "ISOLATION_ENV",
    "STDIO_MARKER",
    "SandboxLimits",
    "SandboxResult",
    "SandboxUnavailableError",
    "TestOutcome",
    "TestReport",
    "ToolchainMissingError",
    "assemble_program",
    "evaluate",
    "evaluate_many",
    "run_many",
    "run_program",
    "run_tests",
]
