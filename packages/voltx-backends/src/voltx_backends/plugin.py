"""Registers voltx's own backends; loaded through the ``voltx`` entry-point group."""

from __future__ import annotations

from voltx.hookspecs import RegisterBackend, hookimpl
from voltx_backends.local import LocalBackend


@hookimpl
def register_backends(register: RegisterBackend) -> None:
    """Register the ``local`` backend."""
    register("local", LocalBackend)
