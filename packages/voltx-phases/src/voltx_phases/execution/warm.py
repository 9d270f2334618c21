"""Batches: one bubblewrap per worker, which starts each program of the batch in turn.

Starting bubblewrap, its namespaces and mounts costs about 4.5 ms of CPU per program, a third of
what a short Python program costs on its own (`docs/sandbox.md`). `run_many` and
`evaluate_many` therefore start one *warm sandbox* per worker thread: a bubblewrap with the same
namespaces, view, environment and uid as a single run, whose process is a small trusted launcher
(`launcher_main`, running the runtime's own Python). The launcher forks each program, sets its
limits, drops it to the uid and waits for it; after the program it kills everything left of the
uid and empties ``/tmp`` and ``/dev/shm``, so programs of one worker follow each other in the
same namespaces without meeting. Each program gets a fresh working folder inside, on a tmpfs
capped at `SandboxLimits.work_bytes`: its files travel with the request, its outputs with the
answer (`WarmWorkspace`).

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
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

from voltx_phases.execution.isolation import (
    SandboxUnavailableError,
    WorkFolder,
    as_root,
    bwrap_command,
    bwrap_executable,
    check_namespaces,
    resolve_mode,
    uid_pool,
)
from voltx_phases.execution.languages import Toolchain, language
from voltx_phases.execution.limits import ISOLATED_MAX_PROCESSES, SandboxLimits
from voltx_phases.execution.runner import Step, step_limits

# Where a run's folders are inside (`launcher_main.WORK` and `RUN`): not below /tmp or
# /dev/shm, which the launcher empties after each program. The second holds stdin (the caller's)
# and stdout and stderr, each capped by RLIMIT_FSIZE: its own cap is only a ceiling.
WORK_INSIDE = "/voltx-work"
IO_INSIDE = "/voltx-io"
IO_BYTES = 1 << 30
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
        python = language("python").resolve(limits, True)
        mounts = tuple(dict.fromkeys(python.mounts + toolchain.mounts))
        env = {"PATH": "/usr/bin:/bin", **dict(python.env), **dict(toolchain.env)}
        command = bwrap_command(
            bwrap_executable(),
            argv=[python.run_argv[0], "-I", "-S", "-c", _launcher_source()],
            uid=self.uid,
            # The runs live inside, nothing of them on the host: the working folder on a tmpfs
            # of `work_bytes` (one program at a time, so the cap is each program's), its stdin,
            # stdout and stderr on another, root's (RLIMIT_FSIZE caps what a program writes).
            work=WorkFolder(WORK_INSIDE, None, tmpfs_bytes=limits.work_bytes, mode="0755"),
            tmp_bytes=limits.tmp_bytes,
            mounts=mounts,
            env=env,
            drop_uid=False,
            more=[
                *("--perms", "0700", "--size", str(IO_BYTES), "--tmpfs", IO_INSIDE),
                # POSIX message queues outlive their program in the shared IPC namespace; on
                # a queue filesystem of its own the launcher can list and remove them.
                *("--mqueue", "/dev/mqueue"),
            ],
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

    def workspace(self, limits: SandboxLimits, toolchain: Toolchain) -> WarmWorkspace:
        """A fresh run in this sandbox (one at a time)."""
        return WarmWorkspace(self, limits, toolchain)

    def run(self, request: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one request (`launcher_main`); its answer, or a timed-out one if none comes."""
        assert self._process.stdin is not None and self._process.stdout is not None
        started = time.monotonic()
        try:
            self._process.stdin.write(json.dumps({**request, "uid": self.uid}).encode() + b"\n")
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
            return {"returncode": None, "timed_out": True, "duration_s": time.monotonic() - started}
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise SandboxUnavailableError(
                f"the sandbox could not start the program: {reply['error']}"
            )
        return reply

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


class WarmWorkspace:
    """One run in a warm sandbox, with `runner.Workspace`'s calls (`runner.Space`).

    Its folder is inside the sandbox only: the files written here travel with the first
    request (and those written later with the next), and the outputs come back in the answer.
    """

    def __init__(self, launcher: Launcher, limits: SandboxLimits, toolchain: Toolchain) -> None:
        self.launcher = launcher
        self.limits = limits
        self.toolchain = toolchain
        self._files: dict[str, str] = {}
        self._fresh = True
        self._outputs = ("", "", "")

    def __enter__(self) -> WarmWorkspace:
        return self

    def __exit__(self, *exc: object) -> None:
        return None  # the launcher empties the folder when the next run starts

    def write(self, name: str, text: str) -> None:
        self._files[name] = text

    def execute(self, step: Step, stdin: str = "") -> tuple[int | None, bool, float]:
        processes = self.limits.max_processes or ISOLATED_MAX_PROCESSES
        request = {
            "argv": list(step.argv),
            "env": {"PATH": "/usr/bin:/bin", **dict(self.toolchain.env)},
            "fresh": self._fresh,
            "files": self._files,
            "stdin": stdin,
            "limits": step_limits(step, self.limits, processes),
            "timeout_s": step.timeout_s,
            "output_bytes": self.limits.output_bytes,
        }
        self._fresh, self._files = False, {}
        reply = self.launcher.run(request, step.timeout_s)
        self._outputs = (
            reply.get("stdout", ""),
            reply.get("stdout_tail", ""),
            reply.get("stderr_tail", ""),
        )
        return reply["returncode"], bool(reply["timed_out"]), float(reply["duration_s"])

    def output(self) -> tuple[str, str, str]:
        return self._outputs


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
