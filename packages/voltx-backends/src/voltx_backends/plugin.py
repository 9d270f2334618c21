"""Registers voltx's own backends; loaded through the ``voltx`` entry-point group."""

from __future__ import annotations

from voltx.hookspecs import RegisterBackend, hookimpl
from voltx_backends.local import LocalBackend
from voltx_backends.ray import RayBackend, RaySettings
from voltx_backends.ssh import SSHSettings, ssh_backend
from voltx_backends.vast import VastBackend, VastSettings


@hookimpl
def register_backends(register: RegisterBackend) -> None:
    """Register the ``local``, ``ssh``, ``vast`` and ``ray`` backends, with their settings."""
    register("local", LocalBackend)
    # One host or a pool of them, as the [backends.ssh] table says.
    register("ssh", ssh_backend, settings=SSHSettings)
    register("vast", VastBackend, settings=VastSettings)
    # Always registered: Ray is imported when the backend is first used, not here.
    register("ray", RayBackend, settings=RaySettings)
