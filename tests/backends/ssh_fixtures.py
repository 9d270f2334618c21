"""A real OpenSSH server on 127.0.0.1 for the SSH backend's tests (not a conftest: import it).

    from ssh_fixtures import sshd_server  # noqa: F401 (a fixture, used by name)

`sshd_server` starts ``/usr/sbin/sshd -D -e -f <config>`` once per session on a free loopback port,
with a throwaway host key and a throwaway client key in ``authorized_keys``, and kills it (and any
session process it forked) in ``finally``. Tests that have no sshd binary skip with the reason.
The recipe is the one in the backends research notes (section 3.1), which was tried as root and as
an unprivileged user.
"""

from __future__ import annotations

import atexit
import contextlib
import email.parser
import getpass
import importlib.metadata
import os
import re
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from voltx.backend import JobHandle

SSHD = Path("/usr/sbin/sshd")
START_TIMEOUT_S = 10.0

# SetEnv SHLVL=1: bash sources ~/.bashrc for an ssh command only as a top-level shell, so this
# makes it skip the rc file of whoever runs the tests (this machine's runs `pyenv init`, 0.2 s a
# command). The backend needs nothing from rc files; real hosts keep theirs.
_SSHD_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {folder}/host_key
AuthorizedKeysFile {folder}/authorized_keys
PidFile {folder}/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
SetEnv SHLVL=1
"""


@attrs.define
class SSHServer:
    """A running sshd: where it listens, and the keys and files a client needs."""

    folder: Path
    port: int
    user: str = attrs.field(factory=getpass.getuser)
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def client_key(self) -> Path:
        return self.folder / "client_key"

    @property
    def known_hosts(self) -> Path:
        """A known_hosts file that holds the server's real host key."""
        return self.folder / "known_hosts"

    @property
    def log_file(self) -> Path:
        return self.folder / "sshd.log"

    def settings(self, remote_root: Path, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for `SSHBackend` that reach this server, jobs under `remote_root`."""
        settings: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "identity_file": str(self.client_key),
            "known_hosts": str(self.known_hosts),
            "remote_root": str(remote_root),
            "bootstrap": False,
            "python": "python3",
        }
        settings.update(overrides)
        return settings

    def start(self) -> None:
        """Start sshd and wait until it listens (judged from its log, not by a probe)."""
        self.starts += 1
        log = open(self.log_file, "ab")  # noqa: SIM115 (sshd writes to it for its whole life)
        mark = self.log_file.stat().st_size
        self.process = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(self.folder / "sshd_config")],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        listening = f"Server listening on 127.0.0.1 port {self.port}".encode()
        deadline = time.monotonic() + START_TIMEOUT_S
        while listening not in self.log_file.read_bytes()[mark:]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self.log_file.read_bytes()[mark:].decode(errors="replace")
                self.stop()
                raise RuntimeError(f"sshd did not start:\n{output}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Kill sshd and every connection it serves (a dropped network, as a client sees it)."""
        process, self.process = self.process, None
        if process is None:
            return
        doomed = [process.pid, *_sshd_descendants(process.pid)]
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=10)

    def restart(self) -> None:
        """Stop and start again on the same port with the same keys."""
        self.stop()
        self.start()

    def replace_host_key(self) -> None:
        """Give the server a new host key (as a reinstalled or impostor host would have)."""
        for suffix in ("", ".pub"):
            (self.folder / f"host_key{suffix}").unlink()
        _keygen(self.folder / "host_key")


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "voltx-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )


def known_hosts_line(server: SSHServer, public_key: Path) -> str:
    """The known_hosts entry that pins `public_key` for the server's address and port."""
    key_type, key_data = public_key.read_text().split()[:2]
    return f"[{server.host}]:{server.port} {key_type} {key_data}\n"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _sshd_descendants(root: int) -> list[int]:
    """The sshd processes forked from `root` (one per client connection), not anything else."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        pid = int(entry.name)
        fields = stat[stat.rindex(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(pid)
        names[pid] = stat[stat.index("(") + 1 : stat.rindex(")")]
    found: list[int] = []
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            if names.get(child, "").startswith("sshd"):
                found.append(child)
                pending.append(child)
    return found


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """A real OpenSSH sshd on 127.0.0.1, with a client key and a known_hosts file for it."""
    if not SSHD.exists():
        pytest.skip(
            f"{SSHD} is missing: install OpenSSH's server "
            "(apt-get install openssh-server) to run the SSH backend tests"
        )
    if os.geteuid() == 0:
        # As root sshd insists on its privilege separation folder, which containers often lack.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    folder = tmp_path_factory.mktemp("sshd")
    folder.chmod(0o700)
    _keygen(folder / "host_key")
    _keygen(folder / "client_key")
    authorized = folder / "authorized_keys"
    authorized.write_text((folder / "client_key.pub").read_text())
    authorized.chmod(0o600)
    server = SSHServer(folder=folder, port=_free_port())
    (folder / "sshd_config").write_text(_SSHD_CONFIG.format(port=server.port, folder=folder))
    check = subprocess.run(
        [str(SSHD), "-t", "-f", str(folder / "sshd_config")], capture_output=True, text=True
    )
    if check.returncode != 0:
        pytest.fail(f"sshd rejected its test config: {check.stderr}")
    server.known_hosts.write_text(known_hosts_line(server, folder / "host_key.pub"))
    # A crash of the test process must not leave sshd listening.
    atexit.register(server.stop)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        atexit.unregister(server.stop)


# --- A host venv that already has voltx's dependencies (so bootstrap needs no network) ---


@pytest.fixture
def handles() -> Iterator[list[JobHandle]]:
    """Jobs a test started; any still running at the end is cancelled."""
    started: list[JobHandle] = []
    yield started
    for handle in started:
        if not handle.status().state.finished:
            handle.cancel(grace_s=1.0)


def _needed(requirements: list[str]) -> list[str]:
    """The names of the requirements that apply here (no extras, markers that hold)."""
    from packaging.requirements import Requirement

    names = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            names.append(requirement.name)
    return names


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_folder(dest: Path, wheels: list[Path]) -> Path:
    """A folder of links to what `wheels` need, as installed here (and pip), and nothing else.

    A host venv with this folder on its path has every dependency the bootstrap asks pip for, so
    ``pip install --no-index`` succeeds without any network, while the wheels themselves are still
    installed for real. The requirements are read from the wheels (the checkout as it is now), not
    from what was installed from it earlier.
    """
    shipped: set[str] = set()
    pending: list[str] = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            metadata = email.parser.BytesParser().parsebytes(archive.read(name))
        shipped.add(_normal(str(metadata["Name"])))
        pending += _needed(metadata.get_all("Requires-Dist") or [])
    wanted = {"pip"}
    while pending:
        name = _normal(pending.pop())
        if name in wanted or name in shipped:
            continue
        wanted.add(name)
        pending += _needed(importlib.metadata.distribution(name).requires or [])
    dest.mkdir(parents=True, exist_ok=True)
    for name in sorted(wanted):
        dist = importlib.metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in sorted(tops - {"__pycache__"}):
            source = Path(str(dist.locate_file(top)))
            link = dest / top
            if source.exists() and not link.exists():
                link.symlink_to(source)
    return dest


def preseed_host_venv(venv: Path, deps: Path) -> Path:
    """Create `venv` (no pip of its own) with `deps` on its path; its python is returned."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = venv / "lib" / version / "site-packages"
    (site / "voltx_test_dependencies.pth").write_text(f"{deps}\n")
    return venv / "bin" / "python"
