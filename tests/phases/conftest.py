"""Fixtures shared by the phase tests: one tiny trained model store per test session.

Training the tiny profile's upstream (0.2 through 2.1) takes the better part of a minute on two
cores; the phases downstream of it (inference, 3.x, 4.x, 5.x) all read the same artifacts, so
they share one store, trained once, and never write to it (each test runs its own phase into a
store of its own or copies what it needs).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A store holding the tiny profile's 1.2 and 2.1 and everything upstream of them."""
    torch = pytest.importorskip("torch")
    import voltx
    from voltx.testing import InProcessBackend

    threads = torch.get_num_threads()
    root: Path = tmp_path_factory.mktemp("tiny-model-store")
    result = voltx.run(
        ["1.2", "2.1"],
        backend=InProcessBackend(root / "jobs"),
        store=str(root / "store"),
        profile="tiny",
    )
    torch.set_num_threads(threads)  # the tiny phases set one thread, process-wide
    result.raise_for_status()
    yield str(root / "store")


@pytest.fixture(scope="session")
def copy_tiny_model_store(
    tiny_model_store: str, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], str]:
    """A function that copies the tiny trained store to a new folder and returns its URL: a
    phase run there finds everything upstream fresh (lineage included) and runs alone."""

    def copy(label: str) -> str:
        target = tmp_path_factory.mktemp(label) / "store"
        shutil.copytree(tiny_model_store, target, symlinks=True)
        return str(target)

    return copy


@pytest.fixture(scope="session")
def run_on_tiny_model_store(
    copy_tiny_model_store: Callable[[str], str],
) -> Callable[[str | list[str], str], str]:
    """A function that runs phases (tiny profile) on a fresh copy of the tiny trained store and
    returns the copy's URL; only the phases not already in the store run."""
    torch = pytest.importorskip("torch")
    import voltx
    from voltx.testing import InProcessBackend

    def run(phases: str | list[str], label: str) -> str:
        threads = torch.get_num_threads()
        url = copy_tiny_model_store(label)
        result = voltx.run(
            phases, backend=InProcessBackend(Path(url).parent / "jobs"), store=url, profile="tiny"
        )
        torch.set_num_threads(threads)  # the tiny phases set one thread, process-wide
        result.raise_for_status()
        return url

    return run
