"""pytest fixtures for plugin tests; enable with ``pytest_plugins = ["voltx.testing.fixtures"]``."""

from __future__ import annotations

from pathlib import Path

import pytest

from voltx.store import ArtifactStore
from voltx.testing.inprocess import InProcessBackend, memory_store_url


@pytest.fixture
def memory_store() -> ArtifactStore:
    """A fresh, empty store in this process's memory (``store.url`` to pass to `voltx.run`)."""
    return ArtifactStore.open(memory_store_url())


@pytest.fixture
def inprocess_backend(tmp_path: Path) -> InProcessBackend:
    """A backend that runs phases on threads of the test process."""
    return InProcessBackend(work_dir=tmp_path / "voltx-work")
