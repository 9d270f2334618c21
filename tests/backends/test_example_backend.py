"""The backend plugin skeleton (examples/voltx-example-backend), installed from its pyproject.

It is built and installed without network into a folder of its own, found through its ``voltx``
entry point like any third-party plugin, and must pass the backend contract suite.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _support import REPO, install_plugin
from voltx.backend import Backend
from voltx.testing.backend_contract import BackendContract

pytestmark = pytest.mark.integration

EXAMPLE = REPO / "examples" / "voltx-example-backend"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The example, installed from its own pyproject into a fresh folder on sys.path."""
    site = install_plugin(EXAMPLE, tmp_path_factory.mktemp("example-backend-site"))
    sys.path.insert(0, str(site))
    yield site
    sys.path.remove(str(site))
    for name in [m for m in sys.modules if m.startswith("voltx_example_backend")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def registered(plugin_site: Path) -> dict[str, tuple[Any, Any]]:
    """What the plugin's ``register_backends`` hook registers, loaded through its entry point."""
    (entry_point,) = [
        ep
        for ep in importlib.metadata.entry_points(group="voltx")
        if ep.dist is not None and ep.dist.name == "voltx-example-backend"
    ]
    found: dict[str, tuple[Any, Any]] = {}

    def register(name: str, factory: Any, settings: Any = None) -> None:
        found[name] = (factory, settings)

    entry_point.load().register_backends(register=register)
    return found


class TestExampleBackendContract(BackendContract):
    @pytest.fixture
    def backend(self, registered: dict[str, tuple[Any, Any]], tmp_path: Path) -> Backend:
        factory, settings = registered["lowprio"]
        backend: Backend = factory(work_dir=tmp_path, settings=settings(niceness=10))
        return backend


def test_voltx_finds_the_plugin_and_its_settings(plugin_site: Path, tmp_path: Path) -> None:
    (tmp_path / "voltx.toml").write_text(
        '[project]\nbackend = "lowprio"\n\n[backends.lowprio]\nniceness = 12\nspare_cores = 0\n'
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_site), *sys.path[1:]])}
    env.pop("VOLTX_LOAD_PLUGINS", None)
    probe = (
        "from voltx.backend import JobRequest\n"
        "from voltx.testing.backend_contract import read_whole_log, wait_finished\n"
        "from voltx.api import make_backend\n"
        "from voltx.session import open_session\n"
        "backend = make_backend(open_session())\n"
        "handle = backend.submit(JobRequest('probe-1', ('sh', '-c', 'nice')))\n"
        "wait_finished(handle)\n"
        "print(type(backend).__name__, read_whole_log(handle).decode().strip())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    # The job's own `nice` prints the niceness it runs at: the table's value reached it.
    assert result.stdout.splitlines()[-1].split() == ["LowPriorityBackend", "12"]
