"""Shared fixtures: a loopback-only network guard, isolated voltx folders, the example plugin."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _support import EXAMPLE, RAY_ENV, install_plugin

# Ray reads these once, when it is first imported, and any test may be the first to import it
# (a unit test of the Ray Train driver's helpers, say): set before any test module loads, or a
# Ray driver later in the session swaps 127.0.0.1 for the machine's own address and hangs.
os.environ.update(RAY_ENV)


def _is_loopback(host: Any) -> bool:
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> Iterator[None]:
    """Fail any test that tries to reach beyond 127.0.0.1 (stray metadata or real API calls)."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_loopback(host):
            raise AssertionError(f"test tried to resolve non-loopback host {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise AssertionError(f"test tried to connect to non-loopback address {address!r}")
        return real_connect(self, address)

    socket.getaddrinfo = guarded_getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = guarded_connect  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.getaddrinfo = real_getaddrinfo
        socket.socket.connect = real_connect  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep caches and user folders out of the real home directory."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("VOLTX_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("VOLTX_HOME", str(home / "voltx"))


@pytest.fixture(scope="session")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin, installed from its own pyproject into a fresh folder (once per run)."""
    return install_plugin(EXAMPLE, tmp_path_factory.mktemp("example-site"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files holding slow tests first, the rest in their order.

    Under ``--dist loadfile`` (the README's test command) a file goes whole to one worker, and a
    heavy file collected last leaves the other worker idle until it ends; started first, it
    runs beside the many quick files instead.
    """
    slow_files = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow_files)
