"""Hostile programs against the bubblewrap sandbox: each is contained and leaves nothing behind.

Every test runs twice: through `run_program` (one bubblewrap for the program) and through
`run_many` (a warm sandbox whose launcher starts the program; as root). Every test checks
afterwards that no process runs as a sandbox uid, and that no folder of a run is left in the
temporary folder (the `contained` fixture). The limits are small so that each test takes
seconds. How the same programs fare as an ordinary user is in test_sandbox_unprivileged.py;
what a warm sandbox keeps from one program to the next is in test_sandbox_warm.py.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from voltx_phases.execution import isolation
from voltx_phases.execution.runner import RUNS_ENV
from voltx_phases.execution.sandbox import (
    SandboxLimits,
    SandboxResult,
    SandboxUnavailableError,
    run_many,
    run_program,
)

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")

SMALL = SandboxLimits(timeout_s=2.0, memory_bytes=512 << 20, file_size_bytes=1 << 20)
# The uids `isolation.uid_pool` hands out to this process's sandboxes (as root).
_POOL = range(200_000 + (os.getpid() % 4096) * 256, 200_000 + (os.getpid() % 4096 + 1) * 256)


def _sandbox_processes() -> list[str]:
    """Processes running as one of this process's sandbox uids (zombies included)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid in _POOL:
                    found.append(entry.name)
            except FileNotFoundError:
                continue
    return found


def _in_a_warm_sandbox(source: str, limits: SandboxLimits | None = None) -> SandboxResult:
    return run_many([(source, [])], limits, workers=1)[0]


@pytest.fixture(autouse=True, params=["one bubblewrap", "warm sandbox"])
def sandbox_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which way the test's `run_program` calls go (module docstring)."""
    if request.param == "warm sandbox":
        monkeypatch.setitem(globals(), "run_program", _in_a_warm_sandbox)
    return str(request.param)


@pytest.fixture(autouse=True)
def contained(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    # The runs' folders go to a folder of this test's own, so other sandboxes on the machine
    # (another test session) cannot be mistaken for leftovers.
    runs = tmp_path_factory.mktemp("runs")
    monkeypatch.setattr(tempfile, "tempdir", str(runs))
    monkeypatch.setenv(RUNS_ENV, str(runs))
    yield
    deadline = time.monotonic() + 5
    while _sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _sandbox_processes(), "a sandboxed process outlived its run"
    assert not list(runs.iterdir()), "a run's folder was left behind"


def test_the_program_sees_only_its_own_world() -> None:
    program = (
        "import os, socket\n"
        "print(os.getuid(), os.getgid())\n"
        "print(sorted(os.listdir('/')))\n"
        "print(sorted(p for p in os.listdir('/proc') if p.isdigit()))\n"
        "print(sorted(os.environ))\n"
        "print([name for _, name in socket.if_nameindex()])\n"
    )
    result = run_program(program)
    assert result.passed, result.stderr_tail
    uid_line, root_line, pids_line, env_line, interfaces = result.stdout.splitlines()
    assert uid_line.split()[0] not in ("0", str(os.getuid()))
    assert "root" not in root_line and "home" not in root_line and "etc" not in root_line
    assert len(eval(pids_line)) <= 3  # bubblewrap's init and the program (and its shell)
    assert set(eval(env_line)) <= {"PATH", "PWD", "LD_LIBRARY_PATH", "LC_CTYPE"}
    assert eval(interfaces) == ["lo"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid drop without a user namespace is root's")
def test_the_dropped_uid_holds_no_capability_and_cannot_gain_one() -> None:
    # What docs/sandbox.md promises of the uid drop: no capability in any set (the bounding set
    # included, so nothing can be regained) and no_new_privs, whatever runs the drop.
    program = (
        "fields = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
        "for name in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs'):\n"
        "    print(name, fields[name].strip())\n"
    )
    result = run_program(program)
    assert result.passed, result.stderr_tail
    status = dict(line.split() for line in result.stdout.splitlines())
    assert status.pop("NoNewPrivs") == "1"
    assert status == dict.fromkeys(("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"), "0" * 16)


@pytest.mark.skipif(os.geteuid() != 0, reason="as root RLIMIT_NPROC holds only after the uid drop")
def test_the_process_limit_holds_after_the_uid_drop() -> None:
    program = (
        "import os, time\n"
        "children = 0\n"
        "try:\n"
        "    for _ in range(40):\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(5)\n"
        "            os._exit(0)\n"
        "        children += 1\n"
        "except OSError as error:\n"
        "    print('refused after', children, error.errno)\n"
    )
    result = run_program(program, SandboxLimits(timeout_s=3.0, max_processes=8))
    assert "refused after" in result.stdout, result.stderr_tail
    assert int(result.stdout.split()[2]) < 8


def test_fork_bomb_is_contained() -> None:
    program = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    started = time.monotonic()
    result = run_program(program, SMALL)
    assert not result.passed
    assert time.monotonic() - started < 10


def test_a_10_gb_allocation_is_killed_for_memory() -> None:
    result = run_program("block = bytearray(10 * 2**30)\n", SMALL)
    assert result.failure == "memory" and result.status == "error"


def test_an_infinite_loop_times_out() -> None:
    started = time.monotonic()
    result = run_program("while True:\n    pass\n", SandboxLimits(timeout_s=1.0))
    assert result.failure == "timeout" and result.status == "timeout"
    assert time.monotonic() - started < 5


def test_a_busy_loop_inside_c_code_times_out() -> None:
    # Catastrophic backtracking: the regex engine never returns to the interpreter.
    program = "import re\nre.match(r'(a+)+$', 'a' * 64 + 'b')\n"
    started = time.monotonic()
    result = run_program(program, SandboxLimits(timeout_s=1.0))
    assert result.failure == "timeout"
    assert time.monotonic() - started < 5


def test_a_gigabyte_of_output_is_cut_off() -> None:
    program = (
        "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n"
    )
    started = time.monotonic()
    result = run_program(program, SMALL)
    assert result.status == "error"  # EFBIG at RLIMIT_FSIZE
    assert len(result.stdout) <= SMALL.output_bytes
    assert time.monotonic() - started < 10


def test_filling_the_working_folder_stops_at_its_size() -> None:
    # Each file is under RLIMIT_FSIZE; their sum meets the working folder's own cap (a tmpfs),
    # so a program cannot fill the host's disk or memory (docs/sandbox.md).
    limits = SandboxLimits(timeout_s=5.0, work_bytes=16 << 20)
    program = (
        "written = 0\n"
        "try:\n"
        "    for i in range(1000):\n"
        "        with open(f'fill-{i}', 'wb') as out:\n"
        "            out.write(b'x' * (1 << 20))\n"
        "        written += 1 << 20\n"
        "except OSError as error:\n"
        "    print('stopped', error.errno, written)\n"
    )
    result = run_program(program, limits)
    assert result.stdout.startswith("stopped 28 "), result.stderr_tail  # ENOSPC
    assert int(result.stdout.split()[-1]) <= 16 << 20


def test_the_host_loopback_is_unreachable() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        program = (
            "import socket\n"
            "s = socket.socket()\ns.settimeout(1)\n"
            "try:\n"
            f"    s.connect(('127.0.0.1', {port}))\n"
            "    print('CONNECTED')\n"
            "except OSError as error:\n"
            "    print('blocked', error)\n"
        )
        result = run_program(program, SMALL)
        assert "blocked" in result.stdout and "CONNECTED" not in result.stdout
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_secrets_in_the_home_folder_and_environment_stay_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = secrets.token_hex(8)
    planted = Path.home() / f".voltx-test-secret-{secret}"
    planted.write_text(secret)
    monkeypatch.setenv("VOLTX_PLANTED_SECRET", secret)
    try:
        program = (
            "import os\n"
            f"for path in [{str(planted)!r}, os.path.expanduser('~/{planted.name}')]:\n"
            "    try:\n"
            "        print(open(path).read())\n"
            "    except OSError as error:\n"
            "        print('hidden', type(error).__name__)\n"
            "print(dict(os.environ))\n"
        )
        result = run_program(program, SMALL)
    finally:
        planted.unlink()
    assert result.passed, result.stderr_tail
    assert secret not in result.stdout and result.stdout.count("hidden") == 2


def test_writes_outside_the_working_folder_fail(tmp_path: Path) -> None:
    targets = [tmp_path / "escaped", Path("/usr/escaped"), Path("/escaped"), Path("/opt/escaped")]
    program = (
        "import os\n"
        f"for path in {[str(t) for t in targets]!r} + [os.path.join(os.getcwd(), '..', 'x')]:\n"
        "    try:\n"
        "        open(path, 'w').write('x')\n"
        "        print('WROTE', path)\n"
        "    except OSError:\n"
        "        pass\n"
        "open('/tmp/private', 'w').write('x')\n"
    )
    result = run_program(program, SMALL)
    assert result.passed and "WROTE" not in result.stdout, result.stdout
    assert not any(target.exists() for target in targets)


def test_rm_rf_home_leaves_the_canary(tmp_path: Path) -> None:
    canary = Path.home() / f"voltx-canary-{secrets.token_hex(4)}"
    canary.mkdir()
    (canary / "alive").write_text("yes")
    try:
        program = f"import os\nos.system('rm -rf ~')\nos.system('rm -rf {canary}')\n"
        run_program(program, SMALL)
        assert (canary / "alive").read_text() == "yes"
    finally:
        shutil.rmtree(canary)


def test_killing_the_parent_is_not_possible() -> None:
    program = (
        "import os, signal\n"
        f"for pid in (os.getppid(), 1, {os.getpid()}, -1):\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGKILL)\n"
        "    except OSError as error:\n"
        "        print(pid, type(error).__name__)\n"
        "print('still here')\n"
    )
    result = run_program(program, SMALL)
    # This test process is alive to assert; the run came back with the program's own verdict.
    assert result.status in ("passed", "timeout", "error")


def test_a_setsid_grandchild_is_gone_after_the_run() -> None:
    token = secrets.token_hex(8)
    program = (
        "import subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', "
        f"{token!r}], start_new_session=True)\n"
        "print('spawned')\n"
    )
    result = run_program(program, SMALL)
    assert result.passed and "spawned" in result.stdout
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _cmdlines_with(token):
        time.sleep(0.05)
    assert not _cmdlines_with(token)


def _cmdlines_with(token: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if token.encode() in (entry / "cmdline").read_bytes():
                    found.append(entry.name)
            except OSError:
                continue
    return found


def test_the_sandbox_dies_with_its_parent(tmp_path: Path, sandbox_path: str) -> None:
    token = secrets.token_hex(8)
    program = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', {token!r}])\n"
        "time.sleep(60)\n"
    )
    call = f"run_program({program!r})"
    if sandbox_path == "warm sandbox":
        call = f"run_many([({program!r}, [])], workers=1)"
    driver = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from voltx_phases.execution.sandbox import run_many, run_program\n{call}",
        ],
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    try:
        deadline = time.monotonic() + 20
        while not _cmdlines_with(token) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _cmdlines_with(token), "the sandboxed program never started"
    finally:
        driver.kill()
        driver.wait()
    deadline = time.monotonic() + 5
    while _cmdlines_with(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _cmdlines_with(token), "the sandbox outlived the process that started it"


def test_catching_base_exception_does_not_survive_the_timeout() -> None:
    program = (
        "import signal, time\n"
        "for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU):\n"
        "    signal.signal(sig, signal.SIG_IGN)\n"
        "while True:\n"
        "    try:\n"
        "        while True:\n"
        "            time.sleep(0.01)\n"
        "    except BaseException:\n"
        "        pass\n"
    )
    started = time.monotonic()
    result = run_program(program, SandboxLimits(timeout_s=1.0))
    assert result.failure == "timeout"
    assert time.monotonic() - started < 5


def test_rlimits_only_must_be_asked_for_by_name_and_warns_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(isolation, "_warned_weaker_mode", False)
    monkeypatch.setenv(isolation.ISOLATION_ENV, "rlimits-only")
    with pytest.warns(RuntimeWarning, match="rlimits-only"):
        first = run_program("import os\nprint(os.getuid())\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = run_program("print('again')\n")
    assert first.passed and second.passed
    # In this mode the program runs as the caller.
    assert first.stdout.strip() == str(os.getuid())
    monkeypatch.setenv(isolation.ISOLATION_ENV, "none")
    with pytest.raises(SandboxUnavailableError, match="unknown sandbox isolation"):
        run_program("pass\n")


def test_where_namespaces_are_forbidden_it_refuses_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\necho 'bwrap: Creating new namespace failed: Operation not permitted' >&2\n"
        "exit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.delenv(isolation.ISOLATION_ENV, raising=False)
    with pytest.raises(SandboxUnavailableError) as raised:
        run_program("print('never')\n")
    message = str(raised.value)
    assert "\n" not in message
    assert "Operation not permitted" in message
    assert f"{isolation.ISOLATION_ENV}=rlimits-only" in message


def test_without_bubblewrap_it_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv(isolation.ISOLATION_ENV, raising=False)
    with pytest.raises(SandboxUnavailableError, match="bubblewrap"):
        run_program("pass\n")
