"""The limits of one sandboxed program, and the ``setrlimit`` calls that enforce them.

The resource limits hold in both isolation modes (`docs/sandbox.md`): they are applied to the
process that becomes the sandbox (bubblewrap, or the program itself in the rlimits-only mode)
before it executes, and every process the program starts inherits them.
"""

from __future__ import annotations

import math
import resource
import sys
from collections.abc import Callable
from contextlib import suppress
from typing import Literal

import attrs

IsolationMode = Literal["bubblewrap", "rlimits-only"]
ISOLATION_MODES: tuple[IsolationMode, ...] = ("bubblewrap", "rlimits-only")

_MIB = 1 << 20

# RLIMIT_NPROC under bubblewrap, where each concurrent sandbox has its own uid, so the count is
# the sandbox's own processes and threads (a JVM starts about 20 threads; node about 10).
ISOLATED_MAX_PROCESSES = 96


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
    # RLIMIT_NPROC counts every process of a uid, not only the sandbox's. Under bubblewrap each
    # sandbox runs as its own uid, so None there means `ISOLATED_MAX_PROCESSES`; in the
    # rlimits-only mode the program shares the caller's uid (and root ignores the limit), so
    # None there means no limit.
    max_processes: int | None = None
    # The size of the sandbox's /tmp, a tmpfs (memory) under bubblewrap; Go's build cache
    # lives there during a compile step.
    tmp_bytes: int = 256 * _MIB
    # The size of the working folder under bubblewrap, a tmpfs too: the program's files and
    # everything it writes beside them, in all (RLIMIT_FSIZE caps each file, this the sum).
    work_bytes: int = 256 * _MIB
    # How much of stdout `SandboxResult.stdout` keeps, and of the end of stderr.
    output_bytes: int = 64 * 1024
    # Whether site-packages are importable (``-S`` is left out); off keeps it to the stdlib.
    site_packages: bool = False
    python: str = sys.executable
    # "bubblewrap" (namespaces; the default) or "rlimits-only" (the weaker mode, which must be
    # asked for by name). None reads ``VOLTX_SANDBOX_ISOLATION``, else "bubblewrap".
    isolation: IsolationMode | None = None

    @property
    def cpu_s(self) -> int:
        """RLIMIT_CPU: the wall-clock budget plus one second, so the wall clock normally fires."""
        return max(1, math.ceil(self.timeout_s) + 1)


def rlimit_settings(
    *,
    timeout_s: float,
    memory_bytes: int,
    file_size_bytes: int,
    open_files: int,
    processes: int | None,
) -> list[tuple[int, int]]:
    """(resource, value) pairs for one process; a compile step has its language's budget."""
    settings = [
        (resource.RLIMIT_AS, memory_bytes),
        (resource.RLIMIT_CPU, max(1, math.ceil(timeout_s) + 1)),
        (resource.RLIMIT_FSIZE, file_size_bytes),
        (resource.RLIMIT_NOFILE, open_files),
        (resource.RLIMIT_CORE, 0),
    ]
    if processes is not None:
        settings.append((resource.RLIMIT_NPROC, processes))
    return settings


_PRLIMIT_OPTIONS = {
    resource.RLIMIT_AS: "--as",
    resource.RLIMIT_CPU: "--cpu",
    resource.RLIMIT_FSIZE: "--fsize",
    resource.RLIMIT_NOFILE: "--nofile",
    resource.RLIMIT_CORE: "--core",
    resource.RLIMIT_NPROC: "--nproc",
}


def prlimit_prefix(prlimit: str, settings: list[tuple[int, int]]) -> list[str]:
    """util-linux's ``prlimit`` setting `settings` on itself, then executing the command.

    This replaces a Python ``preexec_fn``, which forces a full ``fork`` of the calling process
    (a trainer holding gigabytes forks slowly) where ``vfork`` is otherwise used. A hard limit
    already lower than ours (a container's) is stricter: it is kept.
    """
    args = [prlimit]
    for kind, value in settings:
        hard = resource.getrlimit(kind)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        args.append(f"{_PRLIMIT_OPTIONS[kind]}={value}:{value}")
    return [*args, "--"]


def limiter(settings: list[tuple[int, int]]) -> Callable[[], None]:
    """The preexec function where ``prlimit`` is missing: only `setrlimit` calls.

    preexec functions are unsafe when the parent has threads (`run_many` has) only if they take
    locks another thread might hold, such as the import lock or logging's; this one imports
    nothing and allocates almost nothing.
    """
    setrlimit = resource.setrlimit

    def apply() -> None:
        for kind, value in settings:
            # A hard limit already lower than ours (a container's) is stricter: keep it.
            with suppress(ValueError, OSError):
                setrlimit(kind, (value, value))

    return apply
