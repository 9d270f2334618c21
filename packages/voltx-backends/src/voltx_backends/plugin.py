"""Registers voltx's own backends; loaded through the ``voltx`` entry-point group."""

from __future__ import annotations

from voltx.hookspecs import RegisterBackend, hookimpl
from voltx_backends.local import LocalBackend
from voltx_backends.ssh import SSHBackend, SSHSettings
from voltx_backends.vast import VastBackend, VastSettings


@hookimpl
def register_backends(register: RegisterBackend) -> None:
    """Register the ``local``, ``ssh`` and ``vast`` backends, with their settings classes."""
    register("local", LocalBackend)
    register("ssh", SSHBackend, settings=SSHSettings)
    register("vast", VastBackend, settings=VastSettings)
