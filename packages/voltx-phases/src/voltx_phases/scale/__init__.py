"""Phases 5.1 and 5.3: the VFN scaled up, and the benchmark report (docs/phases.md)."""
