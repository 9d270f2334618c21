"""One sandboxed run: a private folder, the process started in it, what came out.

A `Workspace` is the run's host-side folder: ``work`` (the program's working folder) is shown
to the program, while its stdin, stdout and stderr are files beside it that it cannot see.
Output goes to files rather than pipes: RLIMIT_FSIZE caps them, and nothing has to drain pipes
while the program runs. A compiled language runs twice in one workspace (compile, then run).
Closing the workspace deletes everything, whatever the program did to the permissions of what
it wrote.

Where the folder is made (`runs_folder`): ``$VOLTX_SANDBOX_RUNS`` when set, else ``/dev/shm``
when it is writable with at least `MEMORY_FOLDER_FLOOR` free, else the system's temporary folder.
A run creates, writes and deletes a handful of small files; on a disk filesystem shared with
other work that costs milliseconds per program (journal commits), in memory about 0.1 ms
(`docs/sandbox.md` has the measurements).
"""

from __future__ import annotations

import math
import os
import select
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from contextlib import ExitStack, suppress
from pathlib import Path
from types import TracebackType
from typing import Protocol

import attrs

from voltx_phases.execution.isolation import (
    WorkFolder,
    as_root,
    bwrap_command,
    bwrap_executable,
    check_namespaces,
    find_on_path,
    resolve_mode,
    uid_pool,
)
from voltx_phases.execution.languages import WORK_FOLDER, Language, Toolchain
from voltx_phases.execution.limits import (
    ISOLATED_MAX_PROCESSES,
    SandboxLimits,
    limiter,
    prlimit_prefix,
    rlimit_settings,
)
from voltx_phases.execution.results import FailureReason, SandboxResult, Status


@attrs.frozen
class Step:
    """One process of a run: its command (in the program's view) and its budget."""

    argv: tuple[str, ...]
    timeout_s: float
    memory_bytes: int
    # None: the limits' own; a compiler writes binaries far larger than a program's output.
    file_size_bytes: int | None = None
    # A compile step writes its output into the working folder, for the run step to find.
    compiles: bool = False


class Space(Protocol):
    """A run's working space: `Workspace` (one bubblewrap per process), or a warm sandbox's
    (`voltx_phases.execution.warm.WarmWorkspace`)."""

    limits: SandboxLimits
    toolchain: Toolchain

    def write(self, name: str, text: str) -> None: ...

    def execute(self, step: Step, stdin: str = "") -> tuple[int | None, bool, float]: ...

    def output(self) -> tuple[str, str, str]: ...


# How much of the end of stdout `output` keeps beside its head: classifying reads the last
# lines (the warm sandbox's launcher keeps the same, `launcher_main.STDOUT_TAIL_BYTES`).
STDOUT_TAIL_BYTES = 4096
RUNS_ENV = "VOLTX_SANDBOX_RUNS"
MEMORY_FOLDER = Path("/dev/shm")
# Free space /dev/shm needs before runs go there: a compile step may write a binary of up to
# 256 MiB (a language's `compile_file_size_bytes`), and a container's /dev/shm is often 64 MiB.
MEMORY_FOLDER_FLOOR = 1 << 30


def runs_folder() -> str | None:
    """The folder each run's folder is made in (module docstring); None: tempfile's default."""
    configured = os.environ.get(RUNS_ENV)
    if configured:
        return configured
    try:
        space = os.statvfs(MEMORY_FOLDER)
    except OSError:
        return None
    roomy = space.f_bavail * space.f_frsize >= MEMORY_FOLDER_FLOOR
    return str(MEMORY_FOLDER) if roomy and os.access(MEMORY_FOLDER, os.W_OK | os.X_OK) else None


def step_limits(step: Step, limits: SandboxLimits, processes: int | None) -> list[tuple[int, int]]:
    """The rlimits of one step: its own time and memory, the run's other limits."""
    return rlimit_settings(
        timeout_s=step.timeout_s,
        memory_bytes=step.memory_bytes,
        file_size_bytes=step.file_size_bytes or limits.file_size_bytes,
        open_files=limits.open_files,
        processes=processes,
    )


class Workspace:
    """The host folder of one sandboxed run, and the uid it runs as (see module docstring)."""

    def __init__(self, limits: SandboxLimits, toolchain: Toolchain) -> None:
        self.limits = limits
        self.toolchain = toolchain
        self.isolated = resolve_mode(limits.isolation) == "bubblewrap"
        self._stack = ExitStack()
        self.bwrap = ""
        self.uid = 0
        if self.isolated:
            self.bwrap = bwrap_executable()
            check_namespaces(self.bwrap)
            if as_root():
                self.uid = self._stack.enter_context(uid_pool.lease())
        self.root = Path(tempfile.mkdtemp(prefix="voltx-sandbox-", dir=runs_folder()))
        self._stack.callback(_remove_tree, self.root)
        self.work = self.root / "work"
        self.work.mkdir(mode=0o700)
        if self.uid:
            os.chown(self.work, self.uid, self.uid)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    def write(self, name: str, text: str) -> None:
        path = self.work / name
        path.write_text(text, encoding="utf-8")
        if self.uid:
            os.chown(path, self.uid, self.uid)

    def execute(self, step: Step, stdin: str = "") -> tuple[int | None, bool, float]:
        """Run `step`; the exit code in the program's terms, whether it timed out, seconds."""
        if stdin:
            (self.root / "stdin").write_text(stdin, encoding="utf-8")
        settings = step_limits(step, self.limits, self._processes())
        argv = list(step.argv)
        if self.isolated:
            # The program writes into a capped tmpfs where its files are shown read-only; only
            # a compile step writes into the host folder (the compiler's output, for the run).
            work = WorkFolder(str(self.work), self.work)
            if not step.compiles:
                files = tuple(sorted(path.name for path in self.work.iterdir()))
                work = attrs.evolve(work, tmpfs_bytes=self.limits.work_bytes, files=files)
            argv = bwrap_command(
                self.bwrap,
                argv=argv,
                uid=self.uid,
                work=work,
                tmp_bytes=self.limits.tmp_bytes,
                mounts=self.toolchain.mounts,
                env={"PATH": "/usr/bin:/bin", **dict(self.toolchain.env)},
            )
        preexec = None
        prlimit = find_on_path("prlimit")
        if prlimit:
            argv = prlimit_prefix(prlimit, settings) + argv
        else:
            preexec = limiter(settings)
        with (
            open(self.root / "stdin" if stdin else os.devnull, "rb") as stdin_file,
            open(self.root / "stdout", "wb") as stdout_file,
            open(self.root / "stderr", "wb") as stderr_file,
        ):
            started = time.monotonic()
            process = subprocess.Popen(
                argv,
                cwd=self.work,
                env={} if self.isolated else self._host_env(),
                stdin=stdin_file,
                stdout=stdout_file,
                stderr=stderr_file,
                start_new_session=True,
                preexec_fn=preexec,
                close_fds=True,
            )
            timed_out = not _exits_within(process, step.timeout_s)
            # On a timeout this kills the sandbox; after a normal exit, whatever the program
            # left running in its group (under bubblewrap the pid namespace already took
            # everything with it).
            _kill_group(process.pid)
            returncode: int | None = process.wait()
            duration = time.monotonic() - started
        if self.isolated and returncode is not None and returncode > 128:
            # bubblewrap reports a program killed by signal N as the exit code 128 + N.
            returncode = -(returncode - 128)
        return returncode, timed_out, duration

    def _host_env(self) -> dict[str, str]:
        # The rlimits-only mode: the toolchain's variables with the working folder filled in,
        # and the system's PATH (gcc finds the linker through it), nothing of the caller's.
        env = {"PATH": "/usr/bin:/bin"} if self.toolchain.compile_argv else {}
        for name, value in self.toolchain.env:
            env[name] = value.replace(WORK_FOLDER, str(self.work))
        return env

    def _processes(self) -> int | None:
        if not self.isolated:
            return self.limits.max_processes
        allowed = self.limits.max_processes or ISOLATED_MAX_PROCESSES
        if as_root():
            return allowed
        # In a user namespace the sandbox shares the caller's uid, whose processes and threads
        # count against the limit too.
        return allowed + _tasks_of(os.getuid())

    def output(self) -> tuple[str, str, str]:
        """The head of stdout, its tail and the tail of stderr, `output_bytes` of each."""
        size = self.limits.output_bytes
        head, tail = _read_head_and_tail(self.root / "stdout", size, STDOUT_TAIL_BYTES)
        return head, tail, _read_head_and_tail(self.root / "stderr", 0, size)[1]


def result_of(
    language: Language,
    returncode: int | None,
    timed_out: bool,
    duration: float,
    outputs: tuple[str, str, str],
    *,
    compile_step: bool = False,
) -> SandboxResult:
    stdout, stdout_tail, stderr = outputs
    failure = classify(language, returncode, timed_out, stdout_tail, stderr, compile_step)
    return SandboxResult(_STATUS[failure], returncode, duration, stdout, stderr, failure)


_STATUS: dict[FailureReason | None, Status] = {
    None: "passed",
    "wrong_answer": "failed",
    "timeout": "timeout",
    "compile_error": "error",
    "runtime_error": "error",
    "memory": "error",
}


def classify(
    language: Language,
    returncode: int | None,
    timed_out: bool,
    stdout_tail: str,
    stderr: str,
    compile_step: bool = False,
) -> FailureReason | None:
    """Why a process did not pass, from its exit and the last of its output."""
    if timed_out or returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        # SIGXCPU and then SIGKILL are how the kernel enforces RLIMIT_CPU.
        return "timeout"
    if returncode == 0:
        return None
    if compile_step:
        return "compile_error"
    lines = [line for line in stderr.splitlines() if line.strip()]
    if language.name == "python":
        # Only the exception that ended the program counts, not text printed before it.
        text = lines[-1] if lines else ""
    else:
        text = stderr + "\n" + stdout_tail
    if any(marker in text for marker in language.memory_markers):
        return "memory"
    if any(text.startswith(marker) or f"\n{marker}" in text for marker in language.syntax_markers):
        return "compile_error"
    wrong = any(marker in text for marker in language.wrong_answer_markers)
    if wrong and (language.name != "python" or text.startswith("AssertionError")):
        return "wrong_answer"
    return "runtime_error"


def _tasks_of(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with suppress(OSError):
                if entry.stat().st_uid == uid:
                    count += sum(1 for _ in Path(entry.path, "task").iterdir())
    return count


def _exits_within(process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Whether `process` exits within `timeout_s`, woken the moment it does.

    `Popen.wait(timeout=...)` polls with sleeps that grow to 50 ms, which costs a short program
    most of its run time; a pidfd (Linux 5.3) becomes readable exactly when the process exits.
    """
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if poller.poll(max(1, math.ceil(left * 1000))):
                return True
        return process.poll() is not None
    finally:
        os.close(pidfd)


def _kill_group(pgid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _remove_tree(root: Path) -> None:
    """Delete a run's folder, whatever the program did to the permissions inside it."""

    def unlock(function: object, name: str, error: object) -> None:
        # The program may have made what it wrote unreadable or unwritable: undo and retry.
        path = Path(name)
        with suppress(OSError):
            path.parent.chmod(stat.S_IRWXU)
            path.chmod(stat.S_IRWXU)
        with suppress(FileNotFoundError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()

    shutil.rmtree(root, onerror=unlock)


def _read_head_and_tail(path: Path, head_bytes: int, tail_bytes: int) -> tuple[str, str]:
    """The first `head_bytes` of a file and its last `tail_bytes`, through one open."""
    with suppress(FileNotFoundError), open(path, "rb") as stream:
        head = stream.read(head_bytes) if head_bytes else b""
        size = stream.seek(0, os.SEEK_END)
        stream.seek(max(0, size - tail_bytes))
        tail = stream.read()
        return head.decode("utf-8", errors="replace"), tail.decode("utf-8", errors="replace")
    return "", ""


__all__ = ["Space", "Step", "Workspace", "classify", "result_of", "step_limits"]
