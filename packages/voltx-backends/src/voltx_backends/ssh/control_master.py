"""The one shared connection per host: OpenSSH's ControlMaster, started and stopped by voltx.

Every command and transfer of an `SSHTransport` goes through the master connection while it runs,
so a command costs a round trip instead of a handshake. Its socket lives in a short private folder
under ``/tmp``. Hosts reached through a proxy (ProxyJump, ProxyCommand) get no master: proxies
drop idle master connections, and every command would then fail once before reconnecting.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import structlog

from voltx.errors import BackendError
from voltx_backends.ssh.target import SSHTarget, TransportError, classify_ssh_failure

log = structlog.get_logger(__name__)


class ControlMaster:
    """The shared connection to one target (see the module docstring)."""

    def __init__(self, target: SSHTarget, ssh_binary: str = "ssh") -> None:
        self.target = target
        self._ssh_binary = ssh_binary
        self._lock = threading.Lock()
        self._control_dir: Path | None = None
        self._multiplex: bool | None = None

    @property
    def control_path(self) -> Path | None:
        """The socket while a shared connection may exist, else None."""
        return self._control_dir / "master" if self._control_dir is not None else None

    def options(self) -> list[str]:
        """The ``-o`` options that send a command through the shared connection (or none)."""
        if self.enabled() and self.control_path is not None:
            return ["-o", "ControlMaster=no", "-o", f"ControlPath={self.control_path}"]
        # A ControlMaster=auto in the user's config would make one of our commands the master,
        # which would then hold our pipes open for ControlPersist seconds.
        return ["-o", "ControlMaster=no", "-o", "ControlPath=none"]

    def enabled(self) -> bool:
        """Whether this host gets a shared connection (it is not behind a proxy)."""
        if self._multiplex is None:
            self._multiplex = not self._behind_proxy()
        return self._multiplex

    def _behind_proxy(self) -> bool:
        """Whether the user's config sends this host through ProxyJump or ProxyCommand."""
        argv = [self._ssh_binary, "-G", *self.target.options_argv(), "--", self.target.host]
        try:
            resolved = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return False
        for line in resolved.stdout.splitlines():
            key, _, value = line.partition(" ")
            if key in {"proxyjump", "proxycommand"} and value.strip() not in {"", "none"}:
                return True
        return False

    def ensure(self) -> None:
        """Start the shared connection unless it runs (its socket answers)."""
        if not self.enabled():
            return
        with self._lock:
            if self._control_dir is None:
                self._control_dir = _new_control_dir()
            control_path = self._control_dir / "master"
            if _master_listens(control_path):
                return
            # A master that was killed leaves its socket behind; ssh would then skip it and make
            # a fresh connection for every command.
            with contextlib.suppress(FileNotFoundError):
                control_path.unlink()
            self._start(control_path)

    def _start(self, control_path: Path) -> None:
        destination = self.target.destination
        argv = [
            self._ssh_binary,
            "-M",
            "-N",
            "-f",
            *self.target.options_argv(),
            "-o",
            f"ControlPath={control_path}",
            "-o",
            f"ControlPersist={self.target.control_persist_s}",
            "--",
            self.target.host,
        ]
        # stderr goes to a file, not a pipe: the master lives on in the background and would
        # keep a pipe open, so reading it to its end would wait for the master to exit.
        with tempfile.TemporaryFile() as errors:
            try:
                completed = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                    timeout=self.target.connect_timeout_s + 30,
                )
            except subprocess.TimeoutExpired as exc:
                raise TransportError(f"connecting to {destination} timed out", destination) from exc
            errors.seek(0)
            stderr = errors.read().decode(errors="replace")
        if completed.returncode != 0:
            raise classify_ssh_failure(self.target, stderr, "connecting")
        log.debug("ssh master connection started", destination=destination)

    def drop(self) -> None:
        """Forget a shared connection that failed, so that the next command opens a new one."""
        with self._lock:
            control_path = self.control_path
            if control_path is None or not control_path.exists():
                return
            self._exit(control_path)
            with contextlib.suppress(FileNotFoundError):
                control_path.unlink()

    def _exit(self, control_path: Path) -> None:
        argv = [
            self._ssh_binary,
            "-O",
            "exit",
            "-o",
            f"ControlPath={control_path}",
            *self.target.options_argv(),
            "--",
            self.target.host,
        ]
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(argv, capture_output=True, timeout=10)

    def close(self) -> None:
        """End the shared connection and remove its socket and folder."""
        with self._lock:
            control_dir, self._control_dir = self._control_dir, None
            if control_dir is None:
                return
            control_path = control_dir / "master"
            if control_path.exists():
                self._exit(control_path)
            shutil.rmtree(control_dir, ignore_errors=True)


def _new_control_dir() -> Path:
    """A private folder for one ControlMaster socket, with a short path.

    Unix socket paths are limited to about 100 bytes (104 on macOS), which a deep $TMPDIR can
    exceed, so the folder is always under /tmp.
    """
    base = Path("/tmp") / f"voltx-ssh-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    if base.stat().st_uid != os.getuid() or base.is_symlink():
        raise BackendError(f"{base} belongs to another user; cannot keep SSH sockets there")
    return Path(tempfile.mkdtemp(prefix="c", dir=base))


def _master_listens(control_path: Path) -> bool:
    """Whether a ControlMaster accepts connections on `control_path` (not just a stale file)."""
    if not control_path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(str(control_path))
        except OSError:
            return False
    return True
