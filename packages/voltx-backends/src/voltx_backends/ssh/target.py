"""Where an SSH connection goes and how it fails: `SSHTarget`, the errors, a command's `Result`.

`SSHTarget` is plain data: the host and the options every ssh command line to it carries
(`SSHTarget.options_argv`). Anything left as None comes from the user's ``~/.ssh/config``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NamedTuple

import attrs

from voltx.errors import BackendError

# sshd allows 10 sessions per connection (MaxSessions); stay under it so no channel is refused.
DEFAULT_MAX_SESSIONS = 8
DEFAULT_CONNECT_TIMEOUT_S = 10
DEFAULT_CONTROL_PERSIST_S = 300
HOST_KEY_POLICIES = ("yes", "accept-new")
# Remote paths travel unquoted through rsync's remote shell, so they are kept to these characters.
REMOTE_PATH_PATTERN = re.compile(r"^[A-Za-z0-9_./~+@%=,-]+$")


class TransportError(BackendError):
    """The SSH connection failed (or ssh exited 255); nothing can be said about the remote side."""

    def __init__(self, message: str, destination: str, stderr: str = "") -> None:
        self.destination = destination
        self.stderr = stderr
        super().__init__(message, "ssh")


class HostKeyError(TransportError):
    """The host's key is unknown, or differs from the one on record: the connection was refused."""


class AuthenticationError(TransportError):
    """The host refused every key offered."""


class Result(NamedTuple):
    """What a remote command printed and how it exited."""

    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        """stdout as text."""
        return self.stdout.decode(errors="replace")


def _check_host_key_policy(_instance: Any, _attribute: Any, value: str) -> None:
    if value not in HOST_KEY_POLICIES:
        raise BackendError(
            f"strict_host_key_checking must be one of {', '.join(HOST_KEY_POLICIES)}, got "
            f"{value!r}: voltx does not connect to a host whose key it cannot check",
            "ssh",
        )


def _check_host(_instance: Any, _attribute: Any, value: str) -> None:
    if not value or value.startswith("-") or any(c.isspace() for c in value):
        raise BackendError(f"invalid SSH host {value!r}", "ssh")


@attrs.frozen
class SSHTarget:
    """Where to connect and how: the options that end up on every ssh command line.

    Anything left as None comes from the user's ssh config (``~/.ssh/config``), as it would for a
    plain ``ssh host``.
    """

    host: str = attrs.field(validator=_check_host)
    user: str | None = None
    port: int | None = None
    identity_file: str | None = None
    # None: the user's known_hosts files. A path: that file only (created by accept-new).
    known_hosts: str | None = None
    strict_host_key_checking: str = attrs.field(default="yes", validator=_check_host_key_policy)
    connect_timeout_s: int = DEFAULT_CONNECT_TIMEOUT_S
    control_persist_s: int = DEFAULT_CONTROL_PERSIST_S
    max_sessions: int = DEFAULT_MAX_SESSIONS
    # Further ``-o Key=Value`` options, passed through unchanged.
    options: tuple[str, ...] = ()

    @property
    def destination(self) -> str:
        """``user@host:port`` as far as known, for messages and job refs."""
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{self.host}{port}"

    def options_argv(self) -> list[str]:
        """The ssh options (without a destination) that every connection to the target uses."""
        argv = [
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={self.connect_timeout_s}",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
            "-o",
            f"StrictHostKeyChecking={self.strict_host_key_checking}",
            # Errors still print (a changed host key among them); chatter such as
            # "Permanently added ... to the list of known hosts" does not.
            "-o",
            "LogLevel=ERROR",
        ]
        if self.port is not None:
            argv += ["-p", str(self.port)]
        if self.user:
            argv += ["-l", self.user]
        if self.identity_file:
            argv += ["-i", str(Path(self.identity_file).expanduser()), "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            known = Path(self.known_hosts).expanduser()
            argv += ["-o", f"UserKnownHostsFile={known}", "-o", "GlobalKnownHostsFile=/dev/null"]
        for option in self.options:
            argv += ["-o", option]
        return argv


def classify_ssh_failure(target: SSHTarget, stderr: str, action: str) -> TransportError:
    """The error for an ssh (or rsync over ssh) that failed while doing `action`.

    A changed or unknown host key and a refused key get errors of their own, with what to do
    about them; anything else is a plain `TransportError` with ssh's last line.
    """
    text = stderr.strip()
    where = target.destination
    known = (
        f"the known_hosts file {target.known_hosts}"
        if target.known_hosts
        else "your known_hosts (~/.ssh/known_hosts)"
    )
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or "has changed and you have" in text:
        return HostKeyError(
            f"host key of {where} has CHANGED since it was recorded in {known}: the host "
            "was reinstalled, or someone is intercepting the connection. voltx refuses to "
            "connect. If the change is expected, remove the old key (ssh-keygen -R HOST) "
            "and connect once with ssh to check the new one.",
            where,
            text,
        )
    if "Host key verification failed" in text or "host key is known for" in text:
        return HostKeyError(
            f"host key of {where} is not in {known}, and strict host key checking is on: "
            "connect once with ssh to check and accept it (or set "
            "strict_host_key_checking = 'accept-new' to trust the first key seen).",
            where,
            text,
        )
    if "Permission denied" in text:
        return AuthenticationError(
            f"{where} refused our SSH key ({text.splitlines()[-1] if text else action}); "
            "check user and identity_file",
            where,
            text,
        )
    last = text.splitlines()[-1] if text else "ssh exited 255 without a message"
    return TransportError(f"ssh to {where} failed while {action}: {last}", where, text)
