"""A warm sandbox (one bubblewrap per worker for a batch): nothing of a program meets the next.

`run_many` and `evaluate_many` run each worker's programs one after the other in the same
namespaces (`voltx_phases.execution.warm`, docs/sandbox.md "Batches"). These tests run two or
more programs on one worker and check that the later ones find nothing of the earlier ones:
no process, no file in /tmp, /dev/shm or the working folder, no System V IPC object or POSIX
message queue; and that
a launcher that dies or hangs costs its program, not the batch or the caller.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from voltx_phases.execution import warm
from voltx_phases.execution.languages import language
from voltx_phases.execution.runner import Step, result_of
from voltx_phases.execution.sandbox import SandboxLimits, SandboxUnavailableError, run_many

pytestmark = [
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap"),
    pytest.mark.skipif(os.geteuid() != 0, reason="warm sandboxes are root's (docs/sandbox.md)"),
]

SMALL = SandboxLimits(timeout_s=3.0, memory_bytes=512 << 20)

LEAVE_TRACES = """
import os, subprocess, sys
open('/tmp/left-in-tmp', 'w').write('x')
try:
    open('/dev/shm/left-in-shm', 'w').write('x')
except PermissionError:
    pass  # bubblewrap's /dev/shm is not writable; if it ever becomes so, the check below holds
open('left-in-work', 'w').write('x')
os.makedirs('/tmp/folder/inner')
subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True)
subprocess.run(['ipcmk', '--shmem', '4096'], check=True, stdout=subprocess.DEVNULL)
import ctypes
rt = ctypes.CDLL('librt.so.1', use_errno=True)
assert rt.mq_open(b'/left-queue', os.O_CREAT | os.O_RDWR, 0o666, None) >= 0
print('left traces as', os.getuid())
"""

LOOK_FOR_TRACES = """
import os
me = os.getpid()
mine = []
for name in os.listdir('/proc'):
    if name.isdigit() and int(name) != me:
        status = open(f'/proc/{name}/status').read()
        uid = int(status.split('Uid:')[1].split()[0])
        if uid == os.getuid():
            mine.append(name)
print('uid', os.getuid())
print('processes', mine)
print('tmp', sorted(os.listdir('/tmp')))
print('shm', sorted(os.listdir('/dev/shm')))
print('work', sorted(os.listdir('.')))
print('sysv', len(open('/proc/sysvipc/shm').read().splitlines()) - 1)
import ctypes
rt = ctypes.CDLL('librt.so.1', use_errno=True)
print('queue', rt.mq_open(b'/left-queue', os.O_RDWR), ctypes.get_errno() == 2)
"""


def test_the_next_program_finds_nothing_of_the_one_before() -> None:
    first, second = run_many([(LEAVE_TRACES, []), (LOOK_FOR_TRACES, [])], SMALL, workers=1)
    assert first.passed, first.stderr_tail
    assert second.passed, second.stderr_tail
    seen = dict(line.split(" ", 1) for line in second.stdout.splitlines())
    # Same worker, same uid: exactly the case where leftovers would be found.
    assert first.stdout.split()[-1] == seen["uid"]
    assert seen["processes"] == "[]"
    assert seen["tmp"] == "[]" and seen["shm"] == "[]"
    assert seen["work"] == "['main.py', 'solution.py']"
    assert seen["sysv"] == "0"
    assert seen["queue"] == "-1 True"  # ENOENT: the POSIX message queue is gone too


def test_many_programs_over_several_workers_keep_their_order_and_verdicts() -> None:
    identity = "def f(x):\n    return x\n"
    jobs = [(identity, [f"assert f({i}) == {i if i % 4 else -1}"]) for i in range(24)]
    results = run_many(jobs, SMALL, workers=3)
    assert [result.passed for result in results] == [i % 4 != 0 for i in range(24)]
    assert {result.failure for result in results if not result.passed} == {"wrong_answer"}


def test_a_timeout_kills_the_program_and_the_next_one_runs() -> None:
    hang = "import time\nwhile True:\n    time.sleep(0.01)\n"
    started = time.monotonic()
    hung, after = run_many([(hang, []), ("print('next')", [])], SMALL, workers=1)
    assert hung.failure == "timeout"
    assert after.passed and after.stdout == "next\n"
    assert time.monotonic() - started < SMALL.timeout_s + 5


def _launcher(limits: SandboxLimits) -> tuple[warm.LauncherPool, warm.Launcher]:
    python = language("python")
    pool = warm.LauncherPool(limits, python.resolve(limits, True))
    return pool, pool.for_this_thread()


def _run(launcher: warm.Launcher, limits: SandboxLimits, source: str) -> bool:
    python = language("python")
    toolchain = python.resolve(limits, True)
    with launcher.workspace(limits, toolchain) as space:
        space.write("main.py", source)
        step = Step(toolchain.run_argv, limits.timeout_s, limits.memory_bytes)
        outcome = space.execute(step)
        return result_of(python, *outcome, space.output()).passed


def _launcher_pids(launcher: warm.Launcher) -> list[int]:
    """The host pids of `launcher`'s Python: the descendants of its bubblewrap that are not
    bubblewrap (other tests' launchers may run at the same time)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(status.split("PPid:")[1].split()[0])

    def descends(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == launcher.pid:
                return True
        return False

    found = []
    for pid in parents:
        try:
            program = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if descends(pid) and not program.endswith(b"bwrap"):
            found.append(pid)
    return found


def test_a_launcher_that_dies_fails_its_program_in_one_line_and_the_pool_starts_another() -> None:
    pool, launcher = _launcher(SMALL)
    try:
        assert _run(launcher, SMALL, "print('first')")
        assert _launcher_pids(launcher)
        for pid in _launcher_pids(launcher):
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(SandboxUnavailableError, match="launcher exited") as raised:
            _run(launcher, SMALL, "print('second')")
        assert "\n" not in str(raised.value)
        fresh = pool.for_this_thread()
        assert fresh is not launcher
        assert _run(fresh, SMALL, "print('third')")
    finally:
        pool.close()
    assert not Path(f"/proc/{launcher.pid}").exists()


def test_a_launcher_that_does_not_answer_is_killed_and_its_program_timed_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(warm, "ANSWER_GRACE_S", 0.5)
    limits = SandboxLimits(timeout_s=0.5)
    pool, launcher = _launcher(limits)
    try:
        assert _run(launcher, limits, "print('ready')")
        pids = _launcher_pids(launcher)
        assert pids
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        assert not _run(launcher, limits, "print('never')")
        assert time.monotonic() - started < 5
        assert not launcher.alive
    finally:
        pool.close()
    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
