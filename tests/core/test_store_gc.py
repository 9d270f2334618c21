"""Garbage collection and crash safety of the artifact store, on a local folder and memory://."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from voltx.errors import ArtifactNotFoundError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob(data: bytes) -> str:
    return f"blobs/sha256/{sha(data)[:2]}/{sha(data)}"


def commit_bytes(store, tmp_path: Path, name: str, files: dict[str, bytes]):
    folder = tmp_path / f"src-{name}-{len(list(tmp_path.iterdir()))}"
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return store.commit(name, folder, {})


def test_gc_removes_what_nothing_points_at(store_case, tmp_path):
    store = store_case.store
    old = commit_bytes(store, tmp_path, "model", {"shared.bin": b"shared", "w.bin": b"old"})
    new = commit_bytes(store, tmp_path, "model", {"shared.bin": b"shared", "w.bin": b"new"})
    keep = commit_bytes(store, tmp_path, "other", {"o.bin": b"other"})

    report = store.gc()

    assert report.manifests == (old.digest,)
    assert report.blobs == (blob(b"old"),)
    assert report.freed_bytes == len(b"old")
    assert store_case.files("manifests") == sorted(
        f"manifests/{d}.json" for d in (new.digest, keep.digest)
    )
    assert store_case.files("blobs") == sorted(blob(d) for d in (b"shared", b"new", b"other"))
    with pytest.raises(ArtifactNotFoundError):
        store.resolve(old.digest)
    assert store.verify("model").digest == new.digest
    assert store.verify("other").digest == keep.digest
    # A second pass finds nothing more.
    again = store.gc()
    assert (again.manifests, again.blobs, again.freed_bytes) == ((), (), 0)


def test_gc_dry_run_removes_nothing(store_case, tmp_path):
    store = store_case.store
    old = commit_bytes(store, tmp_path, "model", {"w.bin": b"old"})
    commit_bytes(store, tmp_path, "model", {"w.bin": b"new"})
    before = store_case.snapshot()

    report = store.gc(dry_run=True)

    assert report.manifests == (old.digest,)
    assert report.blobs == (blob(b"old"),)
    assert store_case.snapshot() == before
    assert store.gc().manifests == (old.digest,)


def test_gc_keeps_what_a_fingerprint_record_points_at(store_case, tmp_path):
    store = store_case.store
    old = commit_bytes(store, tmp_path, "model", {"w.bin": b"old"})
    commit_bytes(store, tmp_path, "model", {"w.bin": b"new"})
    store.write_record("fingerprints/abc.json", {"outputs": {"model": old.digest}})

    report = store.gc()

    assert report.manifests == ()
    assert report.blobs == ()
    assert store.resolve(old.digest).digest == old.digest


def test_gc_keeps_digests_asked_for(store_case, tmp_path):
    store = store_case.store
    old = commit_bytes(store, tmp_path, "model", {"w.bin": b"old"})
    commit_bytes(store, tmp_path, "model", {"w.bin": b"new"})

    assert store.gc(keep_digests=frozenset({old.digest})).manifests == ()
    assert store.verify(old.digest).digest == old.digest


def test_blobs_without_a_manifest_are_invisible_and_collected(store_case, tmp_path):
    store = store_case.store
    kept = commit_bytes(store, tmp_path, "kept", {"k.bin": b"kept"})
    # A writer died after copying its blobs, before writing the manifest.
    store_case.write_raw(blob(b"orphan one"), b"orphan one")
    store_case.write_raw(blob(b"orphan two"), b"orphan two")

    assert [a.name for a in store.list()] == ["kept"]
    assert store.names() == ["kept"]
    for digest in (sha(b"orphan one"), sha(b"orphan one")[:10]):
        with pytest.raises(ArtifactNotFoundError):
            store.resolve(digest)

    report = store.gc()

    assert sorted(report.blobs) == sorted([blob(b"orphan one"), blob(b"orphan two")])
    assert report.freed_bytes == len(b"orphan one") + len(b"orphan two")
    assert store_case.files("blobs") == [blob(b"kept")]
    assert store.verify("kept").digest == kept.digest


def test_a_commit_that_crashes_before_its_manifest_leaves_nothing_visible(
    store_case, tmp_path, monkeypatch
):
    store = store_case.store
    commit_bytes(store, tmp_path, "kept", {"k.bin": b"kept"})
    backing = store._backing

    def crash(rel: str, data: bytes) -> bool:
        raise KeyboardInterrupt("killed while writing the manifest")

    monkeypatch.setattr(backing, "create", crash)
    with pytest.raises(KeyboardInterrupt):
        commit_bytes(store, tmp_path, "lost", {"a.bin": b"half", "b.bin": b"done"})
    monkeypatch.undo()

    assert blob(b"half") in store_case.files("blobs")  # the blobs were written
    assert store.names() == ["kept"]
    assert not store.has("lost")
    with pytest.raises(ArtifactNotFoundError):
        store.resolve("lost")
    report = store.gc()
    assert sorted(report.blobs) == sorted([blob(b"half"), blob(b"done")])
    assert store_case.files("blobs") == [blob(b"kept")]


def test_gc_removes_stale_staging_files_only(local_case):
    store = local_case.store
    staging = local_case.root / "tmp"
    staging.mkdir(exist_ok=True)
    stale, fresh = staging / "stale", staging / "fresh"
    stale.write_bytes(b"dead writer")
    fresh.write_bytes(b"live writer")
    hours_ago = time.time() - 2 * 3600
    os.utime(stale, (hours_ago, hours_ago))

    report = store.gc()

    assert report.staging == ("tmp/stale",)
    assert not stale.exists()
    assert fresh.exists()
