"""Helpers for testing voltx plugins: an in-process backend, memory stores, plugin registration,
and contract suites that third-party backends and phases subclass.

    from voltx.testing import InProcessBackend, memory_store_url, registered_plugin
    from voltx.testing.backend_contract import BackendContract   # needs pytest
    from voltx.testing.phase_contract import PhaseContract       # needs pytest
"""

from voltx.plugins import registered as registered_plugin
from voltx.testing.inprocess import InProcessBackend, memory_store_url, phase_plugin

__all__ = ["InProcessBackend", "memory_store_url", "phase_plugin", "registered_plugin"]
