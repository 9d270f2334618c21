"""Fixtures for the voltx-core tests: an isolated hash cache and stores on both backings."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from voltx.store import ArtifactStore


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the per-user cache at the test's folder so nothing lands in the real home."""
    cache = tmp_path / "voltx-cache"
    monkeypatch.setenv("VOLTX_CACHE_DIR", str(cache))
    return cache


class StoreCase:
    """An open store plus raw access to its bytes, to plant or inspect files behind its back."""

    def __init__(self, kind: str, url: str, store: ArtifactStore) -> None:
        self.kind = kind
        self.url = url
        self.store = store
        if kind == "local":
            self.root = Path(url)
        else:
            self.fs = fsspec.filesystem("memory")
            self.fs_root = "/" + url.removeprefix("memory://").strip("/")

    @property
    def local(self) -> bool:
        return self.kind == "local"

    def snapshot(self) -> dict[str, bytes | None]:
        """Every path under the root (folders map to None), with file contents."""
        if self.local:
            found: dict[str, bytes | None] = {}
            for path in sorted(self.root.rglob("*")):
                rel = path.relative_to(self.root).as_posix()
                found[rel] = path.read_bytes() if path.is_file() else None
            return found
        start = len(self.fs_root) + 1
        listing = self.fs.find(self.fs_root, withdirs=True, detail=True)
        return {
            path[start:]: (self.fs.cat_file(path) if info["type"] == "file" else None)
            for path, info in sorted(listing.items())
        }

    def files(self, prefix: str) -> list[str]:
        """Relative paths of the files under `prefix`."""
        return sorted(
            rel
            for rel, data in self.snapshot().items()
            if data is not None and rel.startswith(prefix + "/")
        )

    def write_raw(self, rel: str, data: bytes) -> None:
        if self.local:
            target = self.root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                target.chmod(0o644)
            target.write_bytes(data)
        else:
            self.fs.pipe_file(f"{self.fs_root}/{rel}", data)

    def read_raw(self, rel: str) -> bytes:
        if self.local:
            return (self.root / rel).read_bytes()
        data = self.fs.cat_file(f"{self.fs_root}/{rel}")
        assert isinstance(data, bytes)
        return data

    def delete_raw(self, rel: str) -> None:
        if self.local:
            (self.root / rel).unlink()
        else:
            self.fs.rm_file(f"{self.fs_root}/{rel}")


def _open_case(kind: str, tmp_path: Path) -> Iterator[StoreCase]:
    url = str(tmp_path / "store") if kind == "local" else f"memory://test-{uuid.uuid4().hex}"
    case = StoreCase(kind, url, ArtifactStore.open(url))
    yield case
    if not case.local and case.fs.exists(case.fs_root):
        case.fs.rm(case.fs_root, recursive=True)


@pytest.fixture(params=["local", "memory"])
def store_case(
    request: pytest.FixtureRequest, tmp_path: Path, isolated_cache: Path
) -> Iterator[StoreCase]:
    """A fresh, empty store in a local folder or in fsspec's memory filesystem."""
    yield from _open_case(request.param, tmp_path)


@pytest.fixture
def local_case(tmp_path: Path, isolated_cache: Path) -> Iterator[StoreCase]:
    """A fresh store in a local folder, for what only a local store does (links, staging)."""
    yield from _open_case("local", tmp_path)


@pytest.fixture
def memory_case(tmp_path: Path, isolated_cache: Path) -> Iterator[StoreCase]:
    """A fresh store in fsspec's memory filesystem."""
    yield from _open_case("memory", tmp_path)


@pytest.fixture
def store(store_case: StoreCase) -> ArtifactStore:
    return store_case.store
