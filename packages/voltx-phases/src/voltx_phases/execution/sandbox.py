"""Run untrusted Python (a solution and its tests) in a child process with OS resource limits.

Every phase that executes code it did not write (generated problems, reference solutions of a
downloaded dataset, model samples in RLVF and the benchmarks) goes through `run_tests` or
`run_program`. The original had no Python sandbox at all (`docs/phases.md`, 0.2), and the public
harnesses either `exec` in the trainer's own process or set no memory limit, so this module
follows the common practice of the better ones:

- a fresh ``python -I -S -X utf8`` per program: isolated mode (no ``PYTHON*`` variables, no
  user site, the script's folder not on ``sys.path``) and no ``site`` (only the standard
  library is importable unless `SandboxLimits.site_packages` is set);
- a fresh temporary working folder, deleted afterwards, and an empty environment, so secrets in
  the parent's environment never reach the program;
- ``setrlimit`` in the child before ``exec``: address space (a huge allocation raises
  MemoryError), CPU seconds (the kernel kills a busy loop even if the wall clock is late), file
  size (which also caps stdout and stderr, written to files), open files, no core dumps, and
  the number of processes when asked;
- its own session (``start_new_session``), so the wall-clock timeout kills the whole process
  group, grandchildren included, and leftovers are killed after a normal exit too.

What it is not: a security boundary against a determined attacker. The program runs as the
same user (as root it can raise its own limits back), can read any file that user can read,
can reach the network (there is no network namespace; ``unshare -rn``, bubblewrap or a
container with ``--network none`` would add one), and a child that calls ``setsid`` leaves the
process group. It keeps honest mistakes and runaway programs (infinite loops, fork loops inside
the group, memory blow-ups, megabytes of output) from hurting the training process.

How a program is assembled from a solution and its tests (`assemble_program`): the solution is
written to ``solution.py`` in the working folder and the program is the solution followed by
every test, one after the other (HumanEval, MBPP and call-based APPS tests are assert snippets
that call the solution's functions). Tests that begin with `STDIO_MARKER` are stdin/stdout
cases (APPS): each one runs ``solution.py`` itself with a given stdin and compares its output,
so for those the solution is not pasted in front (it would read the real, empty stdin).
"""

from __future__ import annotations

import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Literal

import attrs

Status = Literal["passed", "failed", "timeout", "error"]

# The first line of a stdin/stdout test (see the module docstring).
STDIO_MARKER = "# voltx: stdio"
SOLUTION_FILE = "solution.py"

_MIB = 1 << 20


@attrs.frozen
class SandboxLimits:
    """Limits of one sandboxed program."""

    # Wall clock for the whole program; the process group is killed when it runs out.
    timeout_s: float = 10.0
    # RLIMIT_AS. 1 GiB is EvalPlus's order of magnitude; Python itself needs about 30 MiB.
    memory_bytes: int = 1 << 30
    # RLIMIT_FSIZE: the largest file the program may write, stdout and stderr included.
    file_size_bytes: int = 4 * _MIB
    open_files: int = 64
    # RLIMIT_NPROC counts every process of the user, not only the sandbox's, so a value that
    # suits one host breaks another (and root ignores it): off unless asked for.
    max_processes: int | None = None
    # How much of stdout `SandboxResult.stdout` keeps, and of the end of stderr.
    output_bytes: int = 64 * 1024
    # Whether site-packages are importable (``-S`` is left out); off keeps it to the stdlib.
    site_packages: bool = False
    python: str = sys.executable

    @property
    def cpu_s(self) -> int:
        """RLIMIT_CPU: the wall-clock budget plus one second, so the wall clock normally fires."""
        return max(1, math.ceil(self.timeout_s) + 1)


@attrs.frozen
class SandboxResult:
    """What one sandboxed program did."""

    status: Status
    returncode: int | None
    duration_s: float
    stdout: str = ""
    stderr_tail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def reason(self) -> str:
        """One line saying why it did not pass (the last line of stderr, or the status)."""
        lines = [line for line in self.stderr_tail.splitlines() if line.strip()]
        return lines[-1] if lines else self.status


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
    CPU this process may use.
    """
    count = workers or _usable_cpus()
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="voltx-sandbox") as pool:
        return list(pool.map(lambda case: run_tests(case[0], case[1], limits), jobs))


def run_program(
    source: str,
    limits: SandboxLimits | None = None,
    *,
    stdin: str = "",
    files: Mapping[str, str] | None = None,
) -> SandboxResult:
    """Run `source` as ``main.py`` in a fresh folder holding `files`; feed it `stdin`."""
    limits = limits or SandboxLimits()
    with tempfile.TemporaryDirectory(prefix="voltx-sandbox-") as tmp:
        root = Path(tmp)
        work = root / "work"
        work.mkdir()
        for name, text in (files or {}).items():
            (work / name).write_text(text, encoding="utf-8")
        (work / "main.py").write_text(source, encoding="utf-8")
        # Output goes to files beside (not inside) the working folder: RLIMIT_FSIZE caps them,
        # and nothing has to drain pipes while the program runs.
        (root / "stdin").write_text(stdin, encoding="utf-8")
        argv = [limits.python, "-I", "-X", "utf8"]
        if not limits.site_packages:
            argv.append("-S")
        argv.append("main.py")
        with (
            open(root / "stdin", "rb") as stdin_file,
            open(root / "stdout", "wb") as stdout_file,
            open(root / "stderr", "wb") as stderr_file,
        ):
            started = time.monotonic()
            process = subprocess.Popen(
                argv,
                cwd=work,
                env={},
                stdin=stdin_file,
                stdout=stdout_file,
                stderr=stderr_file,
                start_new_session=True,
                preexec_fn=_limiter(limits),
                close_fds=True,
            )
            timed_out = False
            try:
                returncode: int | None = process.wait(timeout=limits.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(process.pid)
                returncode = process.wait()
            else:
                # The program is done; whatever it left running in its group goes too.
                _kill_group(process.pid)
            duration = time.monotonic() - started
        stdout = _read_head(root / "stdout", limits.output_bytes)
        stderr = _read_tail(root / "stderr", limits.output_bytes)
    status = _status(returncode, timed_out, stderr)
    return SandboxResult(status, returncode, duration, stdout, stderr)


def _usable_cpus() -> int:
    # The CPUs this process may run on (a job's share), where the platform can tell (not macOS).
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _limiter(limits: SandboxLimits) -> Callable[[], None]:
    """The preexec function: only `setrlimit` calls on values computed before the fork.

    preexec functions are unsafe when the parent has threads (`run_many` has) only if they take
    locks another thread might hold, such as the import lock or logging's; this one imports
    nothing and allocates almost nothing.
    """
    settings = [
        (resource.RLIMIT_AS, limits.memory_bytes),
        (resource.RLIMIT_CPU, limits.cpu_s),
        (resource.RLIMIT_FSIZE, limits.file_size_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CORE, 0),
    ]
    if limits.max_processes is not None:
        settings.append((resource.RLIMIT_NPROC, limits.max_processes))
    setrlimit = resource.setrlimit

    def apply() -> None:
        for kind, value in settings:
            # A hard limit already lower than ours (a container's) is stricter: keep it.
            with suppress(ValueError, OSError):
                setrlimit(kind, (value, value))

    return apply


def _kill_group(pgid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _status(returncode: int | None, timed_out: bool, stderr: str) -> Status:
    if timed_out or returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        # SIGXCPU and then SIGKILL are how the kernel enforces RLIMIT_CPU.
        return "timeout"
    if returncode == 0:
        return "passed"
    last = next((line for line in reversed(stderr.splitlines()) if line.strip()), "")
    return "failed" if last.startswith("AssertionError") else "error"


def _read_head(path: Path, limit: int) -> str:
    with open(path, "rb") as stream:
        return stream.read(limit).decode("utf-8", errors="replace")


def _read_tail(path: Path, limit: int) -> str:
    with open(path, "rb") as stream:
        size = stream.seek(0, os.SEEK_END)
        stream.seek(max(0, size - limit))
        return stream.read().decode("utf-8", errors="replace")
