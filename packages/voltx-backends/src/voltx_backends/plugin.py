"""Registers voltx's own backends; loaded through the ``voltx`` entry-point group."""

from __future__ import annotations

from voltx.hookspecs import RegisterBackend, hookimpl
from voltx_backends.local import LocalBackend
from voltx_backends.ssh import SSHBackend
from voltx_backends.vast import VastBackend


@hookimpl
def register_backends(register: RegisterBackend) -> None:
    """Register the ``local``, ``ssh`` and ``vast`` backends."""
    register("local", LocalBackend)
    register("ssh", SSHBackend)
    register("vast", VastBackend)
