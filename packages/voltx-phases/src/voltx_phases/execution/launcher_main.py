"""The trusted process inside a warm sandbox: it starts each program of a batch in turn.

This file runs inside bubblewrap, as ``python -I -S -c <this source>`` (`warm.Launcher`), so it
imports nothing but the standard library and nothing of voltx. ``docs/sandbox.md`` ("Batches:
one bubblewrap per worker") has the design; in short, one program at a time:

1. read a request (one JSON line on stdin) from the caller, and write the files it carries into
   the working folder (a fresh one for a new run);
2. fork a child that opens the run's stdin, stdout and stderr, enters its working folder and a
   session of its own, sets the resource limits, drops to the batch's uid and executes the
   program (a failure before the ``exec`` comes back through a close-on-exec pipe, so the
   program never runs unlimited or as root);
3. wait for it, at most its wall-clock budget (a pidfd wakes the wait at the exit);
4. kill every process of the uid (``kill(-1)`` from a child that has taken that uid signals
   exactly those processes) and wait until none is left, so nothing of this program meets the
   next one;
5. empty the writable places the namespaces share between programs (``/tmp``, ``/dev/shm``
   and the POSIX message queues of ``/dev/mqueue``) and remove System V IPC objects, so
   nothing a program wrote reaches the next;
6. answer with one JSON line: the exit code (negative: killed by that signal), whether the
   wall clock ran out, the seconds the program ran, and the head and tail of its output.
"""

from __future__ import annotations

import json
import os
import resource
import select
import shutil
import signal
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

# The run's stdin, stdout and stderr (root's) and the working folder (the uid's): two tmpfs the
# caller mounted, the second capped at the run's `work_bytes`; one run at a time.
RUN = "/voltx-io"
WORK = "/voltx-work"
SHARED_WRITABLE = ("/tmp", "/dev/shm", "/dev/mqueue")
# How much of the end of stdout comes back beside its head (classifying reads the last lines).
STDOUT_TAIL_BYTES = 4096
SYSV_IPC = ("/proc/sysvipc/shm", "/proc/sysvipc/sem", "/proc/sysvipc/msg")
PR_CAPBSET_DROP = 24


def prepare(request: dict[str, Any]) -> None:
    """The run's folders (fresh for a new run) and the files the request carries."""
    uid = int(request["uid"])
    if request["fresh"]:
        for folder in (RUN, WORK):
            empty(folder)
        os.chown(WORK, uid, uid)
        Path(WORK).chmod(0o700)
    for name, text in request["files"].items():
        if "/" in name or name in (".", ".."):
            raise ValueError(f"not a file name: {name!r}")
        # Not following a link the previous step may have left under that name.
        fd = os.open(f"{WORK}/{name}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, text.encode())
            os.fchown(fd, uid, uid)
        finally:
            os.close(fd)
    with open(f"{RUN}/stdin", "w", encoding="utf-8") as stdin:
        stdin.write(request["stdin"])


def start(request: dict[str, Any]) -> int:
    """Start the program in its run's files, folder and session, limited and as the uid.

    A forked child opens the files, sets the limits and drops the uid before the ``exec``; a
    failure there comes back through a close-on-exec pipe and is raised here, so a program
    never runs unlimited or as root. (Forking this small process costs less than having the
    program's interpreter do the same before its first line: `docs/sandbox.md`.)
    """
    streams = (
        os.open(f"{RUN}/stdin", os.O_RDONLY),
        os.open(f"{RUN}/stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
        os.open(f"{RUN}/stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
    )
    try:
        return fork_and_enter(request, streams)
    finally:
        for fd in streams:
            os.close(fd)


def outputs(output_bytes: int) -> dict[str, str]:
    """The head of stdout, its last lines and the tail of stderr, as the caller's reader."""
    head, tail = _head_and_tail(f"{RUN}/stdout", output_bytes, STDOUT_TAIL_BYTES)
    return {
        "stdout": head,
        "stdout_tail": tail,
        "stderr_tail": _head_and_tail(f"{RUN}/stderr", 0, output_bytes)[1],
    }


def _head_and_tail(path: str, head_bytes: int, tail_bytes: int) -> tuple[str, str]:
    # The caller's `runner._read_head_and_tail`, which this process cannot import.
    with open(path, "rb") as stream:
        head = stream.read(head_bytes) if head_bytes else b""
        size = stream.seek(0, os.SEEK_END)
        stream.seek(max(0, size - tail_bytes))
        tail = stream.read()
    return head.decode(errors="replace"), tail.decode(errors="replace")


def fork_and_enter(request: dict[str, Any], streams: tuple[int, ...]) -> int:
    """Fork a child that enters the run and executes the request's command; its pid."""
    argv = [str(arg) for arg in request["argv"]]
    failure_read, failure_write = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(failure_read)
            for target, fd in enumerate(streams):
                os.dup2(fd, target)
            os.chdir(WORK)
            os.setsid()
            for kind, value in request["limits"]:
                resource.setrlimit(kind, (value, value))
            uid = int(request["uid"])
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os.execve(argv[0], argv, request["env"])
        except BaseException as error:  # anything before the exec is a setup failure
            os.write(failure_write, f"{type(error).__name__}: {error}".encode()[:1000])
        os._exit(127)
    os.close(failure_write)
    try:
        failure = os.read(failure_read, 1000).decode(errors="replace")
    finally:
        os.close(failure_read)
    if failure:
        os.waitpid(pid, 0)
        raise RuntimeError(failure)
    return pid


def wait(pid: int, timeout_s: float) -> tuple[int, bool]:
    """The program's wait status and whether its wall clock ran out (it is then still alive)."""
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if poller.poll(max(1, int(left * 1000) + 1)):
                return os.waitpid(pid, 0)[1], False
        return 0, True
    finally:
        os.close(pidfd)


def kill_uid(uid: int) -> None:
    """SIGKILL every process of `uid`; return when none is left (a fork bomb included)."""
    deadline = time.monotonic() + 10
    while processes_of(uid) and time.monotonic() < deadline:
        killer = os.fork()
        if killer == 0:
            try:
                os.setresuid(uid, uid, uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(killer, 0)
        time.sleep(0.001)


def processes_of(uid: int) -> bool:
    """Whether a process of `uid` is left in this pid namespace, zombies included.

    Read from each process's ``status`` (its real uid), not from the owner of its ``/proc``
    folder, which is root for a process that made itself non-dumpable.
    """
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                with (entry / "status").open("rb") as status:
                    for line in status:
                        if line.startswith(b"Uid:"):
                            if int(line.split()[1]) == uid:
                                return True
                            break
            except (FileNotFoundError, ProcessLookupError):
                continue
    return False


def empty(folder: str) -> None:
    """Remove what is in `folder`, not descending into another filesystem mounted there."""
    try:
        device = Path(folder).stat().st_dev
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.stat(follow_symlinks=False).st_dev != device:
            continue  # a mount point: not something a program wrote
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with suppress(FileNotFoundError):
                Path(entry.path).unlink()


def clean_shared_places(uid: int) -> None:
    """Empty `SHARED_WRITABLE` and remove the System V IPC objects of `uid`."""
    for place in SHARED_WRITABLE:
        empty(place)
    if any(_has_entries(table) for table in SYSV_IPC) and Path("/usr/bin/ipcrm").exists():
        # Rare (a program that made a System V segment, semaphore or queue); there is no Python
        # call to remove one, util-linux's ipcrm does it, as their owner (the bounding set is
        # empty, so an exec as root would hold no capability to remove another uid's).
        pid = os.fork()
        if pid == 0:
            try:
                devnull = os.open(os.devnull, os.O_RDWR)
                for target in (0, 1, 2):
                    os.dup2(devnull, target)
                os.setresuid(uid, uid, uid)
                os.execv("/usr/bin/ipcrm", ["ipcrm", "--all"])
            finally:
                os._exit(127)
        os.waitpid(pid, 0)


def _has_entries(table: str) -> bool:
    try:
        with Path(table).open() as lines:
            return len(lines.readlines()) > 1
    except FileNotFoundError:
        return False


def drop_bounding_set() -> None:
    """Empty the capability bounding set, which every program inherits.

    The launcher keeps its own capabilities (it needs them to change uid); programs, after the
    uid change, hold none, and with an empty bounding set (and bubblewrap's no_new_privs) no
    ``exec`` can give them one. ``ctypes`` is the only way to ``prctl`` from Python; it is
    imported once per warm sandbox, not per program.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for capability in range(last + 1):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), f"prctl(PR_CAPBSET_DROP, {capability})")


def serve() -> None:
    drop_bounding_set()
    requests = sys.stdin.buffer
    replies = sys.stdout.buffer
    for line in requests:
        request = json.loads(line)
        started = time.monotonic()
        try:
            prepare(request)
            pid = start(request)
        except Exception as error:  # reported to the caller, which raises it
            reply: dict[str, object] = {"error": f"{type(error).__name__}: {error}"}
        else:
            status, timed_out = wait(pid, float(request["timeout_s"]))
            duration = time.monotonic() - started
            if timed_out:
                os.kill(pid, signal.SIGKILL)
                status = os.waitpid(pid, 0)[1]
            # What the program left running (a setsid grandchild), before the next one starts.
            kill_uid(int(request["uid"]))
            reply = {
                "returncode": os.waitstatus_to_exitcode(status),
                "timed_out": timed_out,
                "duration_s": duration,
                **outputs(int(request["output_bytes"])),
            }
        clean_shared_places(int(request["uid"]))
        replies.write(json.dumps(reply).encode() + b"\n")
        replies.flush()


if __name__ == "__main__":
    serve()
