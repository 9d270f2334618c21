"""The ``[backends.ssh]`` settings: which host, how to reach it, what to install, what it costs.

    [backends.ssh]
    host = "gpu-box"            # anything ``ssh gpu-box`` understands; the only required key
    user = "me"
    remote_root = "~/.voltx"
    plugins = ["./my-plugin"]   # shipped to the host with voltx itself
    dollars_per_hour = 1.2      # what the host costs while voltx uses it (plans, budgets)

Several hosts form a pool (`voltx_backends.ssh.pool`): ``hosts`` lists them instead of ``host``,
each with its own connection and resources; every other key applies to all of them.

    [backends.ssh]
    hosts = [
        { host = "cpu-box", cpu_cores = 192, gpus = 0, ram_gb = 512 },
        { host = "gpu-box", user = "me", gpus = 1, dollars_per_hour = 1.2 },
    ]

A project file's table is structured into `SSHSettings` by voltx (the class is registered with
the backend), so every mistake there is reported at once with its key path; a program passes
the same names as keywords, ``SSHBackend(host="gpu-box", port=2222)``. What each setting does is
described on `voltx_backends.ssh.SSHBackend`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from voltx.errors import BackendError
from voltx_backends._settings import settings_from_options
from voltx_backends.ssh.bootstrap import DEFAULT_PACKAGES
from voltx_backends.ssh.target import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_MAX_SESSIONS,
    REMOTE_PATH_PATTERN,
    SSHTarget,
)

DEFAULT_REMOTE_ROOT = "~/.voltx"
DEFAULT_UNREACHABLE_TIMEOUT_S = 300.0
# A staged job's new checkpoints are copied back here at most this often (seconds).
DEFAULT_CHECKPOINT_PULL_S = 30.0

# The host and its key policy are checked as the connection target checks them, by its own code.
_TARGET = attrs.fields(SSHTarget)


def _not_negative(_instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value < 0:
        raise BackendError(f"{attribute.name} must not be negative, got {value}", "ssh")


def _plain_remote_path(_instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not REMOTE_PATH_PATTERN.fullmatch(value):
        raise BackendError(
            f"{attribute.name} {value!r} must use only letters, digits and _ . / ~ + - "
            "(no spaces or quotes)",
            "ssh",
        )


def _optional_host(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None:
        _TARGET.host.validator(instance, attribute, value)  # type: ignore[misc]


@attrs.frozen(kw_only=True)
class SSHHostEntry:
    """One host of a pool (an item of ``hosts``): how to reach it and what it has.

    Connection settings left as None are the table's own (`SSHSettings.user`, ...); resources
    left as None are what the host reports when probed."""

    host: str = attrs.field(validator=_TARGET.host.validator)
    user: str | None = None
    port: int | None = None
    identity_file: str | None = None
    cpu_cores: int | None = attrs.field(default=None, validator=_not_negative)
    gpus: int | None = attrs.field(default=None, validator=_not_negative)
    ram_gb: float | None = attrs.field(default=None, validator=_not_negative)
    dollars_per_hour: float | None = attrs.field(default=None, validator=_not_negative)


def _one_host_or_many(
    instance: Any, _attribute: attrs.Attribute[Any], value: tuple[SSHHostEntry, ...]
) -> None:
    # Run on its own (no instance yet) the check is only of the list; the constructor, with
    # the instance, also checks that exactly one of `host` and `hosts` is given.
    destinations = [(e.user, e.host, e.port) for e in value if isinstance(e, SSHHostEntry)]
    repeated = sorted({e[1] for e in destinations if destinations.count(e) > 1})
    if repeated:
        raise BackendError(f"hosts lists {', '.join(repeated)} more than once", "ssh")
    if instance is None:
        return
    if value and instance.host is not None:
        raise BackendError("give host (one host) or hosts (a pool), not both", "ssh")
    if not value and instance.host is None:
        raise BackendError("host is required (or hosts, a list of hosts to pool)", "ssh")


@attrs.frozen(kw_only=True)
class SSHSettings:
    """Every setting of the ssh backend; `host` (or `hosts`, for a pool) is required."""

    # -- the connection (None: from the user's ssh config) ---------------------------------
    host: str | None = attrs.field(default=None, validator=_optional_host)
    # A pool of hosts instead of `host` (`voltx_backends.ssh.pool`); other settings apply to all.
    hosts: tuple[SSHHostEntry, ...] = attrs.field(default=(), validator=_one_host_or_many)
    user: str | None = None
    port: int | None = None
    identity_file: str | None = None
    known_hosts: str | None = None
    strict_host_key_checking: str = attrs.field(
        default="yes", validator=_TARGET.strict_host_key_checking.validator
    )
    connect_timeout_s: int = DEFAULT_CONNECT_TIMEOUT_S
    max_sessions: int = DEFAULT_MAX_SESSIONS
    ssh_options: tuple[str, ...] = ()
    transfer: str = "auto"
    unreachable_timeout_s: float = DEFAULT_UNREACHABLE_TIMEOUT_S

    # -- the host's voltx -------------------------------------------------------------------
    python: str = "python3"
    remote_root: str = attrs.field(default=DEFAULT_REMOTE_ROOT, validator=_plain_remote_path)
    bootstrap: bool = True
    packages: tuple[str, ...] = DEFAULT_PACKAGES
    plugins: tuple[str, ...] = ()
    system_site_packages: bool = False
    pip_args: tuple[str, ...] = ()
    forward_env: tuple[str, ...] = ()
    checkpoint_pull_s: float = attrs.field(
        default=DEFAULT_CHECKPOINT_PULL_S, validator=_not_negative
    )

    # -- what the host has and costs (None: what it reports) -------------------------------
    cpu_cores: int | None = attrs.field(default=None, validator=_not_negative)
    gpus: int | None = attrs.field(default=None, validator=_not_negative)
    ram_gb: float | None = attrs.field(default=None, validator=_not_negative)
    dollars_per_hour: float = attrs.field(default=0.0, validator=_not_negative)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SSHSettings:
        """Settings from a program's keywords; an unknown one is an error that says so. The
        items of ``hosts`` may be `SSHHostEntry` or plain mappings of its keys."""
        options = dict(options)
        if "hosts" in options:
            options["hosts"] = tuple(
                entry
                if isinstance(entry, SSHHostEntry)
                else settings_from_options(SSHHostEntry, entry, "ssh")
                for entry in options["hosts"]
            )
        return settings_from_options(cls, options, "ssh")

    def for_host(self, entry: SSHHostEntry) -> SSHSettings:
        """The one-host settings of a pool's host: the entry's values over the table's."""

        def either(own: Any, shared: Any) -> Any:
            return shared if own is None else own

        return attrs.evolve(
            self,
            host=entry.host,
            hosts=(),
            user=either(entry.user, self.user),
            port=either(entry.port, self.port),
            identity_file=either(entry.identity_file, self.identity_file),
            cpu_cores=either(entry.cpu_cores, self.cpu_cores),
            gpus=either(entry.gpus, self.gpus),
            ram_gb=either(entry.ram_gb, self.ram_gb),
            dollars_per_hour=either(entry.dollars_per_hour, self.dollars_per_hour),
        )
