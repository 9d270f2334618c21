"""Registers the example's backend. voltx loads this module through the ``voltx`` entry point."""

from __future__ import annotations

import voltx
from voltx.hookspecs import RegisterBackend
from voltx_example_backend.backend import LowPriorityBackend, LowPrioritySettings


@voltx.hookimpl
def register_backends(register: RegisterBackend) -> None:
    # With a settings class, voltx structures the project's [backends.lowprio] table into it
    # (every mistake reported with its key path) and calls LowPriorityBackend(work_dir, settings).
    register("lowprio", LowPriorityBackend, settings=LowPrioritySettings)
