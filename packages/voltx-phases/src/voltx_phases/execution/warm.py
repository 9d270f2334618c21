"""Batches: one bubblewrap per worker, which starts each program of the batch in turn.

Starting bubblewrap, its namespaces and mounts costs about 4.5 ms of CPU per program, a third of
what a short Python program costs on its own (`docs/sandbox.md`). `run_many` and
`evaluate_many` therefore start one *warm sandbox* per worker thread: a bubblewrap with the same
namespaces, view, environment and uid as a single run, whose process is a small trusted launcher
(`launcher_main`, running the runtime's own Python). The launcher forks each program, sets its
limits, drops it to the uid and waits for it; after the program it kills everything left of the
uid and empties ``/tmp`` and ``/dev/shm``, so programs of one worker follow each other in the
same namespaces without meeting. Each program still gets a fresh working folder, made here.

Only as root: the launcher needs uid 0 inside the sandbox to drop each program to the batch's
uid. As an ordinary user (a user namespace, one uid) every program keeps a bubblewrap of its own.
"""

from __future__ import annotations

import functools
import json
import os
import select
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

from voltx_phases.execution.isolation import (
    SandboxUnavailableError,
    as_root,
    bwrap_command,
    bwrap_executable,
    check_namespaces,
    resolve_mode,
    uid_pool,
)
from voltx_phases.execution.languages import Toolchain, language
from voltx_phases.execution.limits import SandboxLimits
from voltx_phases.execution.runner import LaunchRequest, remove_tree, runs_folder

# Where the batch's runs folder appears inside: not below /tmp or /dev/shm, which the launcher
# empties after each program.
RUNS_INSIDE = "/voltx-runs"
# How long past a program's own budget the caller waits for the launcher's answer before it
# takes the launcher for hung and kills its sandbox.
ANSWER_GRACE_S = 15.0


@functools.cache
def _launcher_source() -> str:
    return Path(__file__).with_name("launcher_main.py").read_text(encoding="utf-8")


class Launcher:
    """One warm sandbox: its bubblewrap, the launcher inside, the uid its programs run as."""

    def __init__(self, limits: SandboxLimits, toolchain: Toolchain) -> None:
        self._stack = ExitStack()
        self.uid = self._stack.enter_context(uid_pool.lease())
        self.runs = Path(tempfile.mkdtemp(prefix="voltx-warm-", dir=runs_folder()))
        self._stack.callback(remove_tree, self.runs)
        # Readable by the programs' uid, writable only by root: each run's folder is made here.
        self.runs.chmod(0o755)
        self._count = 0
        python = language("python").resolve(limits, True)
        mounts = tuple(dict.fromkeys(python.mounts + toolchain.mounts))
        env = {"PATH": "/usr/bin:/bin", **dict(python.env), **dict(toolchain.env)}
        command = bwrap_command(
            bwrap_executable(),
            argv=[python.run_argv[0], "-I", "-S", "-c", _launcher_source()],
            uid=self.uid,
            work=self.runs,
            tmp_bytes=limits.tmp_bytes,
            mounts=mounts,
            env=env,
            drop_uid=False,
            work_inside=RUNS_INSIDE,
            # POSIX message queues outlive their program in the shared IPC namespace; on a
            # queue filesystem of its own the launcher can list and remove them.
            more=["--mqueue", "/dev/mqueue"],
        )
        # The launcher's own errors, for the message if it dies; a file no program can see.
        self._errors = self._stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
            start_new_session=True,
            close_fds=True,
        )
        self._stack.callback(self._stop)
        self.alive = True

    @property
    def pid(self) -> int:
        """The host pid of the warm sandbox's bubblewrap."""
        return self._process.pid

    def new_run_folder(self) -> Path:
        """A fresh run folder inside the warm sandbox's view: root's, listable by nobody else."""
        self._count += 1
        run = self.runs / f"run-{self._count}"
        run.mkdir(mode=0o711)
        return run

    def inside(self, path: Path) -> str:
        """Where `path`, below the runs folder, is in the launcher's view."""
        return str(Path(RUNS_INSIDE) / path.relative_to(self.runs))

    def run(self, request: LaunchRequest) -> tuple[int | None, bool, float]:
        """Run one program; its exit code, whether it timed out, and the seconds it ran."""
        timeout_s = request.timeout_s
        message = {
            "argv": list(request.argv),
            "env": dict(request.env),
            "run": self.inside(request.run_folder),
            "cwd": self.inside(request.cwd),
            "stdin": request.stdin,
            "limits": request.settings,
            "uid": self.uid,
            "timeout_s": timeout_s,
        }
        assert self._process.stdin is not None and self._process.stdout is not None
        started = time.monotonic()
        try:
            self._process.stdin.write(json.dumps(message).encode() + b"\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            self.alive = False
            raise SandboxUnavailableError(self._gone_message()) from None
        line = _read_line(self._process.stdout, timeout_s + ANSWER_GRACE_S)
        if line == b"":
            self.alive = False
            raise SandboxUnavailableError(self._gone_message())
        if line is None:
            # A launcher that does not answer in time is killed with its sandbox: the program
            # counts as timed out, and the worker's next program gets a fresh launcher.
            self.alive = False
            self._stop()
            return None, True, time.monotonic() - started
        reply = json.loads(line)
        if "error" in reply:
            raise SandboxUnavailableError(
                f"the sandbox could not start the program: {reply['error']}"
            )
        return reply["returncode"], bool(reply["timed_out"]), float(reply["duration_s"])

    def close(self) -> None:
        self._stack.close()

    def _gone_message(self) -> str:
        with suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=1)
        self._errors.seek(0)
        lines = self._errors.read().decode(errors="replace").strip().splitlines()
        said = f": {lines[-1]}" if lines else ""
        return (
            f"the warm sandbox's launcher exited (status {self._process.returncode}) "
            f"during a program{said}"
        )

    def _stop(self) -> None:
        process = self._process
        if process.poll() is None:
            with suppress(OSError):
                assert process.stdin is not None
                process.stdin.close()
            try:
                process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with suppress(OSError):
                    stream.close()


def _read_line(stream: object, timeout_s: float) -> bytes | None:
    """A line from the launcher's stdout; b"" if it exited, None if no line came in time."""
    fd = stream.fileno()  # type: ignore[attr-defined]
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        if poller.poll(max(1, int(left * 1000) + 1)):
            line: bytes = stream.readline()  # type: ignore[attr-defined]
            return line  # b"" when the launcher is gone
    return None


class LauncherPool:
    """The warm sandboxes of one batch, one per worker thread, closed with the batch."""

    def __init__(self, limits: SandboxLimits, toolchain: Toolchain) -> None:
        self._limits = limits
        self._toolchain = toolchain
        self._local = threading.local()
        self._all: list[Launcher] = []
        self._lock = threading.Lock()

    def for_this_thread(self) -> Launcher:
        launcher: Launcher | None = getattr(self._local, "launcher", None)
        if launcher is None or not launcher.alive:
            if launcher is not None:
                launcher.close()
            launcher = Launcher(self._limits, self._toolchain)
            self._local.launcher = launcher
            with self._lock:
                self._all.append(launcher)
        return launcher

    def close(self) -> None:
        with self._lock:
            launchers, self._all = self._all, []
        for launcher in launchers:
            launcher.close()


@contextmanager
def warm_sandboxes(limits: SandboxLimits, toolchain: Toolchain) -> Iterator[LauncherPool | None]:
    """A pool for a batch where warm sandboxes apply (bubblewrap, as root), else None."""
    if resolve_mode(limits.isolation) != "bubblewrap" or not as_root():
        yield None
        return
    check_namespaces(bwrap_executable())
    pool = LauncherPool(limits, toolchain)
    try:
        yield pool
    finally:
        pool.close()
