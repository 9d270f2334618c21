"""The OpenSSH client, driven through subprocess: commands, file transfer, one shared connection.

Every command and transfer goes through the ``ssh`` binary, so the user's ``~/.ssh/config``, agent,
certificates and ProxyJump work as they do in a terminal. One connection per host is shared by
all of them (`voltx_backends.ssh.control_master`), so a command costs a round trip instead of a
handshake.

    transport = SSHTransport(SSHTarget("gpu-box", user="me"))
    result = transport.run("echo $HOME")
    transport.put(Path("wheels"), "/home/me/.voltx/wheels")
    transport.close()

What ``ssh`` reports is read carefully: it exits 255 both when the connection fails and when the
remote command is killed by a signal or exits 255 itself, so exit status 255 is a
`TransportError` here and never the status of anything remote. Jobs record their own exit codes
in files (see `voltx_backends._jobs`).

Host keys are checked strictly by default against the user's known_hosts; `SSHTarget.known_hosts`
names a file of its own instead (with ``accept-new``, the first connection pins the key, as the
Vast backend does for each rented instance).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import tarfile
import tempfile
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import structlog

from voltx.errors import BackendError
from voltx_backends.ssh.control_master import ControlMaster
from voltx_backends.ssh.target import (
    REMOTE_PATH_PATTERN,
    AuthenticationError,
    HostKeyError,
    Result,
    SSHTarget,
    TransportError,
    classify_ssh_failure,
)

log = structlog.get_logger(__name__)

# A command that takes longer than this is stuck (a hung NFS mount, a dead link).
DEFAULT_COMMAND_TIMEOUT_S = 60.0
TRANSPORT_ERROR_RC = 255
TRANSFER_METHODS = ("auto", "rsync", "tar")

_session_limits: dict[tuple[str, str, int | None], threading.BoundedSemaphore] = {}
_session_limits_lock = threading.Lock()


def _session_limit(target: SSHTarget) -> threading.BoundedSemaphore:
    """One semaphore per host for the whole process, however many transports reach it."""
    key = (target.user or "", target.host, target.port)
    with _session_limits_lock:
        if key not in _session_limits:
            _session_limits[key] = threading.BoundedSemaphore(max(1, target.max_sessions))
        return _session_limits[key]


class SSHTransport:
    """Runs commands on one host and copies files to and from it, over one shared connection."""

    def __init__(
        self,
        target: SSHTarget,
        *,
        transfer: str = "auto",
        ssh_binary: str = "ssh",
        rsync_binary: str = "rsync",
    ) -> None:
        if transfer not in TRANSFER_METHODS:
            raise BackendError(
                f"transfer must be one of {', '.join(TRANSFER_METHODS)}, got {transfer!r}", "ssh"
            )
        self.target = target
        self._transfer = transfer
        self._ssh_binary = ssh_binary
        self._rsync_binary = rsync_binary
        self._sessions = _session_limit(target)
        self._master = ControlMaster(target, ssh_binary)
        self._remote_rsync: bool | None = None

    def __repr__(self) -> str:
        return f"SSHTransport({self.target.destination!r})"

    @property
    def destination(self) -> str:
        return self.target.destination

    @property
    def control_path(self) -> Path | None:
        """The ControlMaster socket while a shared connection may exist, else None."""
        return self._master.control_path

    # -- commands --------------------------------------------------------------------------

    def ssh_argv(self, *extra: str) -> list[str]:
        """``ssh`` with the target's options and the shared connection (destination not added)."""
        return [self._ssh_binary, *extra, *self.target.options_argv(), *self._master.options()]

    def run(
        self,
        script: str,
        *,
        input: bytes | None = None,
        timeout: float | None = DEFAULT_COMMAND_TIMEOUT_S,
        idempotent: bool = False,
    ) -> Result:
        """Run `script` with the host's POSIX ``sh`` and return its exit status and output.

        The script is sent as one quoted word, so the login shell (bash, zsh) hands it to ``sh``
        unchanged; build any value it contains with `shlex.quote`. Raises `TransportError` when
        the connection fails or ssh exits 255. An `idempotent` command is tried once more on a
        fresh connection after a transport failure (a master connection that died under it).
        """
        command = "sh -c " + shlex.quote(script)
        try:
            return self._run_once(command, input, timeout)
        except (HostKeyError, AuthenticationError):
            raise
        except TransportError:
            if not idempotent:
                raise
            self._master.drop()
            return self._run_once(command, input, timeout)

    def check(
        self,
        script: str,
        *,
        input: bytes | None = None,
        timeout: float | None = DEFAULT_COMMAND_TIMEOUT_S,
        idempotent: bool = False,
        what: str = "remote command",
    ) -> bytes:
        """Like `run`, but a non-zero exit is a `BackendError` naming `what`; returns stdout."""
        result = self.run(script, input=input, timeout=timeout, idempotent=idempotent)
        if result.returncode != 0:
            detail = result.stderr.decode(errors="replace").strip()[-2000:]
            raise BackendError(
                f"{what} on {self.destination} failed with exit code {result.returncode}"
                + (f": {detail}" if detail else ""),
                "ssh",
            )
        return result.stdout

    def _run_once(self, command: str, input_data: bytes | None, timeout: float | None) -> Result:
        self._master.ensure()
        argv = [*self.ssh_argv(), "--", self.target.host, command]
        completed = self._in_session(argv, input_data, timeout, f"ssh to {self.destination}")
        if completed.returncode == TRANSPORT_ERROR_RC:
            raise self._error(completed.stderr.decode(errors="replace"), "running a command")
        return Result(completed.returncode, completed.stdout, completed.stderr)

    def _in_session(
        self, argv: list[str], input_data: bytes | None, timeout: float | None, what: str
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a local ssh or rsync command within the host's session limit.

        A timeout or a binary that cannot start is a `TransportError` naming `what`.
        """
        with self._sessions:
            try:
                return subprocess.run(
                    argv,
                    input=input_data,
                    stdin=None if input_data is not None else subprocess.DEVNULL,
                    capture_output=True,
                    timeout=timeout,
                )
            except subprocess.TimeoutExpired as exc:
                raise TransportError(
                    f"{what} timed out after {timeout:g} s", self.destination
                ) from exc
            except OSError as exc:
                raise TransportError(f"cannot run {argv[0]}: {exc}", self.destination) from exc

    def _error(self, stderr: str, action: str) -> TransportError:
        return classify_ssh_failure(self.target, stderr, action)

    def close(self) -> None:
        """End the shared connection and remove its socket and folder."""
        self._master.close()

    # -- file transfer ---------------------------------------------------------------------

    def uses_rsync(self) -> bool:
        """Whether transfers go through rsync (both ends have it) rather than tar over ssh."""
        if self._transfer == "tar":
            return False
        if self._remote_rsync is None:
            local = shutil.which(self._rsync_binary) is not None
            remote = local and self.run("command -v rsync", idempotent=True).returncode == 0
            self._remote_rsync = remote
        if self._transfer == "rsync" and not self._remote_rsync:
            raise BackendError(
                f"transfer = 'rsync' but rsync is missing here or on {self.destination}", "ssh"
            )
        return self._remote_rsync

    def put(
        self,
        local_base: Path,
        remote_base: str,
        paths: Sequence[str] | None = None,
        *,
        timeout: float | None = None,
        every_file: bool = False,
    ) -> None:
        """Copy `paths` (relative to `local_base`; everything when None) under `remote_base`.

        Each file appears complete or not at all on the remote side, so an interrupted copy is
        never mistaken for a finished one. rsync skips a file whose size and time match the
        remote one; `every_file` copies those too (a small file rewritten within a second).
        """
        _check_remote_path(remote_base)
        relative = _relative_paths(paths)
        if relative == []:
            return
        if self.uses_rsync():
            # The remote rsync creates the destination folder first (as tar's script does).
            remote_rsync = f"mkdir -p {shell_path(remote_base)} && rsync"
            destination = f"{self._rsync_host()}:{remote_base}/"
            extra = ["--rsync-path", remote_rsync, *(["--ignore-times"] if every_file else [])]
            self._run_rsync(f"{local_base}/", destination, relative, timeout, extra)
        else:
            self._tar_put(local_base, remote_base, relative, timeout)

    def get(
        self,
        remote_base: str,
        local_base: Path,
        paths: Sequence[str] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Copy `paths` (files or folders, relative to `remote_base`) under `local_base`."""
        _check_remote_path(remote_base)
        relative = _relative_paths(paths)
        if relative == []:
            return
        local_base.mkdir(parents=True, exist_ok=True)
        if self.uses_rsync():
            source = f"{self._rsync_host()}:{remote_base}/"
            self._run_rsync(source, f"{local_base}/", relative, timeout)
        else:
            self._tar_get(remote_base, local_base, relative, timeout)

    def _rsync_host(self) -> str:
        host = self.target.host
        return f"[{host}]" if ":" in host else host

    def _run_rsync(
        self,
        source: str,
        dest: str,
        paths: list[str] | None,
        timeout: float | None,
        extra: Sequence[str] = (),
    ) -> None:
        self._master.ensure()
        remote_shell = shlex.join(self.ssh_argv())
        # -rlpt rather than -a: owners and groups are not carried between machines.
        argv = [self._rsync_binary, "-rlpt", "-e", remote_shell, *extra]
        stdin = None
        if paths is not None:
            argv.append("--files-from=-")
            stdin = "".join(f"{p}\n" for p in paths).encode()
        argv += [source, dest]
        completed = self._in_session(argv, stdin, timeout, f"rsync with {self.destination}")
        if completed.returncode != 0:
            stderr = completed.stderr.decode(errors="replace")
            if "connection unexpectedly closed" in stderr or completed.returncode in {12, 255}:
                raise self._error(stderr, "copying files with rsync")
            raise BackendError(
                f"rsync {source} -> {dest} failed (exit code {completed.returncode}): "
                f"{stderr.strip()[-2000:]}",
                "ssh",
            )

    def _tar_put(
        self, local_base: Path, remote_base: str, paths: list[str] | None, timeout: float | None
    ) -> None:
        # Unpacked into a private folder first, then each file renamed into place: a rename is
        # atomic, an unpacking tar is not.
        staging = f".voltx-put-{uuid.uuid4().hex}"
        script = f"""
set -e
base={shell_path(remote_base)}
mkdir -p "$base/{staging}"
cd "$base/{staging}"
tar -xf -
find . ! -type d | while IFS= read -r f; do
    mkdir -p "../$(dirname "$f")"
    mv -f "$f" "../$f"
done
cd .. && rm -rf {staging}
"""

        def write(stream: IO[bytes]) -> None:
            with tarfile.open(fileobj=stream, mode="w|") as archive:
                for path in paths if paths is not None else ["."]:
                    archive.add(local_base / path, arcname=path)

        self._stream(script, write, None, timeout, "copying files with tar")

    def _tar_get(
        self, remote_base: str, local_base: Path, paths: list[str] | None, timeout: float | None
    ) -> None:
        names = " ".join(shlex.quote(p) for p in (paths if paths is not None else ["."]))
        script = f"cd {shell_path(remote_base)} && tar -cf - {names}"

        def read(stream: IO[bytes]) -> None:
            with tarfile.open(fileobj=stream, mode="r|") as archive:
                # The "data" filter refuses links and paths that would leave local_base.
                if hasattr(tarfile, "data_filter"):
                    archive.extractall(local_base, filter="data")
                else:  # pragma: no cover (Python before 3.11.4)
                    archive.extractall(local_base)

        self._stream(script, None, read, timeout, "copying files with tar")

    def _stream(
        self,
        script: str,
        write: Any,
        read: Any,
        timeout: float | None,
        action: str,
    ) -> None:
        """Run `script` with `write` feeding its stdin or `read` consuming its stdout."""
        self._master.ensure()
        argv = [*self.ssh_argv(), "--", self.target.host, "sh -c " + shlex.quote(script)]
        with self._sessions, tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if write else subprocess.DEVNULL,
                stdout=subprocess.PIPE if read else subprocess.DEVNULL,
                stderr=errors,
            )
            timer = threading.Timer(timeout, process.kill) if timeout else None
            if timer:
                timer.start()
            try:
                if write:
                    assert process.stdin is not None
                    with process.stdin:
                        write(process.stdin)
                if read:
                    assert process.stdout is not None
                    with process.stdout:
                        read(process.stdout)
                returncode = process.wait()
            except (OSError, tarfile.TarError) as exc:
                process.kill()
                process.wait()
                errors.seek(0)
                stderr = errors.read().decode(errors="replace")
                raise TransportError(
                    f"{action} with {self.destination} broke off: {exc} {stderr.strip()}",
                    self.destination,
                    stderr,
                ) from exc
            finally:
                if timer:
                    timer.cancel()
            errors.seek(0)
            stderr = errors.read().decode(errors="replace")
        if returncode == TRANSPORT_ERROR_RC or returncode < 0:
            raise self._error(stderr, action)
        if returncode != 0:
            raise BackendError(
                f"{action} with {self.destination} failed (exit code {returncode}): "
                f"{stderr.strip()[-2000:]}",
                "ssh",
            )


def shell_path(path: str) -> str:
    """`path` quoted for the host's shell, with a leading ``~`` still meaning the home folder."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def _check_remote_path(path: str) -> None:
    if not REMOTE_PATH_PATTERN.fullmatch(path):
        raise BackendError(
            f"remote path {path!r} must use only letters, digits and _ . / ~ + @ % = , -", "ssh"
        )


def _relative_paths(paths: Sequence[str] | None) -> list[str] | None:
    if paths is None:
        return None
    checked = []
    for path in paths:
        parts = Path(path).parts
        if not path or path.startswith("/") or ".." in parts or "\n" in path:
            raise BackendError(f"transfer path {path!r} must be relative and stay inside", "ssh")
        checked.append(path)
    return checked
