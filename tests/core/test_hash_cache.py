"""HashCache: a big file is hashed once, a changed one again; a broken cache never stops work."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from voltx.store import ArtifactStore, _hashing
from voltx.store._hashing import HashCache, default_cache_dir

EIGHT_MIB = 8 * 1024 * 1024


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every path `sha256_file` reads, so a test can tell a cache hit from a rehash."""
    calls: list[Path] = []
    real = _hashing.sha256_file

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(_hashing, "sha256_file", counting)
    return calls


def big_file(path: Path, fill: bytes = b"v") -> Path:
    path.write_bytes(fill * EIGHT_MIB)
    backdate(path, 3600)  # written an hour ago, as an input being added usually was
    return path


def backdate(path: Path, seconds: float) -> None:
    stamp = path.stat().st_mtime_ns - int(seconds * 1e9)
    os.utime(path, ns=(stamp, stamp))


def test_cache_lives_under_voltx_cache_dir(isolated_cache):
    assert default_cache_dir() == isolated_cache
    assert HashCache().location == isolated_cache / "hashes.sqlite3"


def test_cache_dir_falls_back_to_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("VOLTX_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "voltx"


def test_unchanged_file_is_served_from_the_cache(tmp_path, hash_calls, isolated_cache):
    cache = HashCache()
    data = big_file(tmp_path / "big.bin")

    first = cache.sha256(data)
    second = cache.sha256(data)

    assert first == second == hashlib.sha256(b"v" * EIGHT_MIB).hexdigest()
    assert len(hash_calls) == 1
    assert (isolated_cache / "hashes.sqlite3").is_file()
    # A second cache object (another process) reads the same database.
    assert HashCache().sha256(data) == first
    assert len(hash_calls) == 1


def test_changed_size_is_rehashed(tmp_path, hash_calls):
    cache = HashCache(tmp_path / "h.sqlite3")
    data = big_file(tmp_path / "big.bin")
    cache.sha256(data)

    with open(data, "ab") as stream:
        stream.write(b"more")
    backdate(data, 60)

    assert cache.sha256(data) == hashlib.sha256(b"v" * EIGHT_MIB + b"more").hexdigest()
    assert len(hash_calls) == 2


def test_changed_mtime_is_rehashed(tmp_path, hash_calls):
    cache = HashCache(tmp_path / "h.sqlite3")
    data = big_file(tmp_path / "big.bin")
    first = cache.sha256(data)

    backdate(data, 60)  # same bytes, touched: hashed again, same answer

    assert cache.sha256(data) == first
    assert len(hash_calls) == 2


def test_same_size_rewrite_within_one_clock_tick_is_rehashed(tmp_path, hash_calls):
    """A coarse filesystem clock gives two quick writes one mtime; the cache must not be fooled."""
    cache = HashCache(tmp_path / "h.sqlite3")
    data = tmp_path / "fresh.bin"
    data.write_bytes(b"a" * 1024)
    tick = data.stat().st_mtime_ns
    assert cache.sha256(data) == hashlib.sha256(b"a" * 1024).hexdigest()

    data.write_bytes(b"b" * 1024)  # same size, same inode ...
    os.utime(data, ns=(tick, tick))  # ... and, on a coarse clock, the same mtime

    assert cache.sha256(data) == hashlib.sha256(b"b" * 1024).hexdigest()


def test_restored_mtime_after_an_edit_is_rehashed(tmp_path, hash_calls):
    """`cp -p`, `tar x` and `rsync -t` restore mtimes; the change time still gives them away."""
    cache = HashCache(tmp_path / "h.sqlite3")
    data = big_file(tmp_path / "big.bin", b"a")
    before = data.stat()
    cache.sha256(data)

    data.write_bytes(b"b" * EIGHT_MIB)
    os.utime(data, ns=(before.st_mtime_ns, before.st_mtime_ns))
    while data.stat().st_ctime_ns == before.st_ctime_ns:  # a coarse clock: wait for its next tick
        time.sleep(0.005)
        os.utime(data, ns=(before.st_mtime_ns, before.st_mtime_ns))

    assert cache.sha256(data) == hashlib.sha256(b"b" * EIGHT_MIB).hexdigest()


def test_store_add_uses_the_cache(tmp_path, hash_calls):
    store = ArtifactStore.open(str(tmp_path / "store"))
    data = big_file(tmp_path / "big.bin")

    first = store.add("big", data)
    second = store.add("big-again", data)

    assert first.digest == second.digest
    assert len(hash_calls) == 1
    assert store.verify("big-again").digest == first.digest


@pytest.mark.parametrize("broken", ["a-file", "unreadable-db"])
def test_a_broken_cache_does_not_stop_the_work(tmp_path, monkeypatch, broken):
    if broken == "a-file":
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("the cache dir is a file")
        monkeypatch.setenv("VOLTX_CACHE_DIR", str(blocker / "voltx"))
    else:
        cache_dir = tmp_path / "garbage-cache"
        cache_dir.mkdir()
        (cache_dir / "hashes.sqlite3").write_bytes(b"this is not a database" * 100)
        monkeypatch.setenv("VOLTX_CACHE_DIR", str(cache_dir))
    data = tmp_path / "input.txt"
    data.write_bytes(b"still hashed")

    assert HashCache().sha256(data) == hashlib.sha256(b"still hashed").hexdigest()
    store = ArtifactStore.open(str(tmp_path / "store"))
    assert store.add("input", data).digest == hashlib.sha256(b"still hashed").hexdigest()
