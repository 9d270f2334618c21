"""The sandbox for untrusted Python: statuses, limits, isolation, and cleanup of process groups."""

from __future__ import annotations

import time
from pathlib import Path

import attrs
import pytest

from voltx_phases.execution import runner
from voltx_phases.execution.sandbox import (
    SandboxLimits,
    assemble_program,
    run_many,
    run_program,
    run_tests,
)

SOLUTION = "def add(a, b):\n    return a + b\n"


def _alive(pid: int) -> bool:
    """Whether `pid` is a running process (a zombie waiting to be reaped counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# The two tests below read the program's process ids from the host's /proc, which only the
# rlimits-only mode shares (bubblewrap gives the program its own pid namespace): they check that
# mode's process-group cleanup. Under bubblewrap the same programs are checked by
# test_sandbox_isolation.py, which finds the grandchild by a token in its command line.
HOST_PIDS = SandboxLimits(isolation="rlimits-only")
host_pids = pytest.mark.filterwarnings("ignore:the sandbox runs in the rlimits-only mode")


def _wait_dead(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_passing_tests_pass() -> None:
    result = run_tests(SOLUTION, ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"])
    assert result.passed and result.status == "passed" and result.returncode == 0
    assert result.duration_s > 0


def test_a_failing_assert_is_failed() -> None:
    result = run_tests(SOLUTION, ["assert add(1, 2) == 3", "assert add(2, 2) == 5"])
    assert result.status == "failed" and not result.passed
    assert "AssertionError" in result.reason
    assert "add(2, 2) == 5" in result.stderr_tail


@pytest.mark.parametrize(
    ("solution", "expected"),
    [("def add(a, b)\n    return a + b\n", "SyntaxError"), ("raise KeyError('x')", "KeyError")],
)
def test_crashes_are_errors(solution: str, expected: str) -> None:
    result = run_tests(solution, ["assert add(1, 2) == 3"])
    assert result.status == "error"
    assert expected in result.reason


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to see processes")
@host_pids
def test_timeout_kills_a_busy_loop_and_its_children() -> None:
    program = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "while True:\n    pass\n"
    )
    started = time.monotonic()
    result = run_program(program, attrs.evolve(HOST_PIDS, timeout_s=1.0))
    assert result.status == "timeout" and not result.passed
    assert time.monotonic() - started < 5
    assert _wait_dead(int(result.stdout.split()[0])), "the grandchild survived the timeout"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to see processes")
@host_pids
def test_processes_left_behind_after_a_normal_exit_are_killed() -> None:
    program = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
    )
    result = run_program(program, HOST_PIDS)
    assert result.passed
    assert _wait_dead(int(result.stdout.split()[0]))


def test_memory_limit_stops_a_huge_allocation() -> None:
    result = run_program("block = bytearray(8 * 2**30)\n", SandboxLimits(memory_bytes=512 << 20))
    assert result.status == "error"
    assert "MemoryError" in result.reason


def test_output_is_capped() -> None:
    limits = SandboxLimits(output_bytes=1000, file_size_bytes=64 * 1024)
    result = run_program("import sys\nsys.stdout.write('x' * 10_000_000)\n", limits)
    assert len(result.stdout) <= 1000
    # Writing past RLIMIT_FSIZE fails (EFBIG) instead of filling the disk.
    assert result.status == "error"


def test_environment_secrets_are_not_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOLTX_TEST_SECRET", "hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "also-secret")
    program = "import os\nprint(sorted(os.environ.items()))\n"
    result = run_program(program)
    assert result.passed
    assert "hunter2" not in result.stdout and "also-secret" not in result.stdout
    assert run_tests("import os", ["assert 'VOLTX_TEST_SECRET' not in os.environ"]).passed


def test_fresh_working_folder_is_deleted_afterwards() -> None:
    result = run_program("import os\nopen('left.txt', 'w').write('x')\nprint(os.getcwd())\n")
    assert result.passed
    folder = Path(result.stdout.strip())
    assert folder.name == "work"
    assert not folder.exists()


def test_runs_go_to_memory_when_it_has_room_else_where_they_are_told(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(runner.RUNS_ENV, raising=False)
    program = "import os\nopen('left.txt', 'w').write('x')\nprint(os.getcwd())\n"
    if runner.runs_folder() == "/dev/shm":
        result = run_program(program)
        assert result.passed, result.stderr_tail
        assert Path(result.stdout.strip()).parent.parent == Path("/dev/shm")
    # Too little room in memory (a container's 64 MiB /dev/shm): the system's temporary folder.
    monkeypatch.setattr(runner, "MEMORY_FOLDER_FLOOR", 1 << 62)
    assert runner.runs_folder() is None
    monkeypatch.setenv(runner.RUNS_ENV, str(tmp_path))
    result = run_program(program)
    assert result.passed, result.stderr_tail
    folder = Path(result.stdout.strip())
    assert folder.parent.parent == tmp_path and not folder.exists()
    assert list(tmp_path.iterdir()) == []


def test_only_the_standard_library_is_importable_by_default() -> None:
    # pytest is installed beside voltx, so it is importable exactly when site-packages are.
    assert run_program("import json, collections").passed
    assert not run_program("import pytest").passed
    assert run_program("import pytest", SandboxLimits(site_packages=True)).passed


def test_run_many_keeps_the_order_of_its_jobs() -> None:
    jobs = [(SOLUTION, [f"assert add({i}, 1) == {i + 1 if i % 3 else -1}"]) for i in range(12)]
    results = run_many(jobs, workers=4)
    assert [r.passed for r in results] == [i % 3 != 0 for i in range(12)]


def test_stdio_tests_run_the_solution_file_with_their_own_stdin() -> None:
    from voltx_phases.datasets.apps_tests import stdio_test

    solution = "a, b = map(int, input().split())\nprint(a + b)\n"
    tests = [stdio_test("1 2\n", "3\n"), stdio_test("10 -4\n", "6")]
    # The solution is not pasted in front: it would read the sandbox's empty stdin.
    assert solution not in assemble_program(solution, tests)
    assert run_tests(solution, tests).passed
    assert run_tests(solution, [stdio_test("1 2\n", "4\n")]).status == "failed"


@pytest.mark.parametrize(
    ("isolation", "batch"),
    [("bubblewrap", False), ("bubblewrap", True), ("rlimits-only", False)],
    ids=["one bubblewrap", "warm sandbox", "rlimits-only"],
)
@pytest.mark.filterwarnings("ignore:the sandbox runs in the rlimits-only mode")
def test_a_python_program_starts_as_python_main_py_would_start_it_with_its_limits_set(
    isolation: str, batch: bool
) -> None:
    limits = SandboxLimits(
        memory_bytes=512 << 20,
        open_files=32,
        isolation=isolation,  # type: ignore[arg-type]
    )
    program = (
        "import resource, sys\n"
        "print(__name__, __file__, sys.argv)\n"
        "print(sorted(name for name in globals() if not name.startswith('__')))\n"
        "print(resource.getrlimit(resource.RLIMIT_AS),"
        " resource.getrlimit(resource.RLIMIT_NOFILE))\n"
        "class Point: pass\n"
        "print(Point.__module__, sys.modules['__main__'].Point is Point)\n"
    )
    if batch:
        result = run_many([(program, [])], limits, workers=1)[0]
    else:
        result = run_program(program, limits)
    assert result.passed, result.stderr_tail
    main_line, names_line, limits_line, class_line = result.stdout.splitlines()
    name, path, argv = main_line.split(" ", 2)
    assert name == "__main__" and path.startswith("/") and path.endswith("work/main.py")
    assert argv == "['main.py']"
    assert names_line == "['resource', 'sys']"
    assert limits_line == f"({512 << 20}, {512 << 20}) (32, 32)"
    assert class_line == "__main__ True"
