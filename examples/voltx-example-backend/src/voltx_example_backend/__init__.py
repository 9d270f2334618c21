"""An example voltx backend plugin: `LowPriorityBackend` (registered as ``lowprio``)."""

from voltx_example_backend.backend import LowPriorityBackend, LowPrioritySettings

__all__ = ["LowPriorityBackend", "LowPrioritySettings"]
