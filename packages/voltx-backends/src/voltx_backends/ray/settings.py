"""The ``[backends.ray]`` settings: which Ray cluster, which namespace, what the nodes get.

    [backends.ray]
    address = "ray://head.example:10001"   # or "auto", or "host:6379"; default: $RAY_ADDRESS
    namespace = "voltx"
    runtime_env = "wheels"                 # or "inherit": the nodes already have voltx
    job_root = "~/.voltx/ray"              # where job folders go, on each node
    shared_filesystem = false              # true: a file:// store is the same folder everywhere
    data_parallel = "ray-train"            # or "torchrun": N ranks on one node

A project file's table is structured into `RaySettings` by voltx (the class is registered with
the backend); a program passes the same names as keywords, ``RayBackend(address="auto")``.
docs/ray.md describes each setting.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import attrs

from voltx.errors import BackendError
from voltx_backends._settings import settings_from_options

RUNTIME_ENV_CHOICES = ("wheels", "inherit")
DATA_PARALLEL_CHOICES = ("ray-train", "torchrun")
# What a job folder path on a node may hold: it travels inside actor arguments, never a shell
# line, but a plain path keeps a job ref readable and its folder name predictable.
JOB_ROOT_PATTERN = re.compile(r"^[A-Za-z0-9_.~/+-]+$")
NAMESPACE_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def _address(_instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is None:
        return
    if not value or any(ch.isspace() for ch in value):
        raise BackendError(
            f"{attribute.name} {value!r} is not a Ray address: use 'auto', "
            "'ray://host:10001' or 'host:port'",
            "ray",
        )


def _one_of(choices: tuple[str, ...]) -> Any:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
        if value not in choices:
            raise BackendError(
                f"{attribute.name} must be one of {', '.join(choices)}, got {value!r}", "ray"
            )

    return check


def _matches(pattern: re.Pattern[str], what: str) -> Any:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
        if not pattern.fullmatch(value):
            raise BackendError(f"{attribute.name} {value!r} must be {what}", "ray")

    return check


def _not_negative(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise BackendError(f"{attribute.name} must not be negative, got {value}", "ray")


@attrs.frozen(kw_only=True)
class RaySettings:
    """Every setting of the ray backend; all are optional."""

    # None: $RAY_ADDRESS, else "auto" (the cluster this machine is part of).
    address: str | None = attrs.field(default=None, validator=_address)
    namespace: str = attrs.field(
        default="voltx",
        validator=_matches(NAMESPACE_PATTERN, "letters, digits, '_', '.' or '-'"),
    )
    # "wheels": ship this machine's voltx packages to the nodes (voltx_backends.ray.runtime_env);
    # "inherit": the nodes' Python already has them (a cluster image with voltx installed).
    runtime_env: str = attrs.field(default="wheels", validator=_one_of(RUNTIME_ENV_CHOICES))
    # Extra pip requirements installed next to the wheels on the nodes.
    pip: tuple[str, ...] = ()
    job_root: str = attrs.field(
        default="~/.voltx/ray",
        validator=_matches(JOB_ROOT_PATTERN, "a plain path (letters, digits, _ . ~ / + -)"),
    )
    # A file:// store is only reachable from every node when it is the same shared folder there.
    shared_filesystem: bool = False
    # More variables of this machine's environment passed on to every job.
    forward_env: tuple[str, ...] = ()
    # What the cluster costs per hour while voltx uses it (plans and budgets), for each job.
    dollars_per_hour: float = attrs.field(default=0.0, validator=_not_negative)
    # How a phase of N > 1 processes runs: "ray-train", its ranks spread over the nodes by Ray
    # Train (voltx_backends.ray.train); "torchrun", all N on one node under torchrun.
    data_parallel: str = attrs.field(default="ray-train", validator=_one_of(DATA_PARALLEL_CHOICES))

    def resolved_address(self, environ: Mapping[str, str] | None = None) -> str:
        """The address to connect to: the setting, else $RAY_ADDRESS, else ``auto``."""
        environ = os.environ if environ is None else environ
        return self.address or environ.get("RAY_ADDRESS") or "auto"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> RaySettings:
        """Settings from a program's keywords; an unknown one is an error that says so."""
        return settings_from_options(cls, options, "ray")
