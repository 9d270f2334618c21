"""Reads are checked with the BLAKE3 digest a manifest records; manifests without one by sha256.

The sha256 stays the content address (blob paths, artifact digests); BLAKE3 is what a read is
checked with because it hashes several times faster (docs/concepts.md, "Integrity"). Each test
edits a real store behind its back: a wrong BLAKE3 in a manifest must fail a read whose bytes
match the sha256 (so BLAKE3 is what is compared), and a manifest written before voltx recorded
BLAKE3 must still be read, and still be checked, by sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from blake3 import blake3

from voltx.errors import CorruptBlobError, ManifestError
from voltx.store import ArtifactStore, _hashing
from voltx.store._verified import Checked, copy_checked, hash_chunks
from voltx.store.integrity import check_store
from voltx.store.manifest import FileEntry
from voltx.store.transfer import transfer

TREE = {"weights.bin": b"\x07" * 3000, "config.json": b'{"dim": 4}\n'}
WRONG = "0" * 64


def write_tree(root: Path) -> Path:
    for rel, data in TREE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore.open(str(tmp_path / "store"))


@pytest.fixture
def digest(store: ArtifactStore, tmp_path: Path) -> str:
    return store.commit("encoder", write_tree(tmp_path / "encoder"), {"phase": "1.1"}).digest


def manifest_file(store: ArtifactStore, digest: str) -> Path:
    assert store.local_root is not None
    return store.local_root / "manifests" / f"{digest}.json"


def edit_entries(store: ArtifactStore, digest: str, change: Any) -> None:
    path = manifest_file(store, digest)
    data = json.loads(path.read_text())
    for entry in data["files"]:
        change(entry)
    path.write_text(json.dumps(data))


def flip_blob(store: ArtifactStore, data: bytes) -> None:
    assert store.local_root is not None
    sha = hashlib.sha256(data).hexdigest()
    blob = store.local_root / "blobs" / "sha256" / sha[:2] / sha
    damaged = bytearray(blob.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    blob.chmod(0o644)
    blob.write_bytes(bytes(damaged))


def test_commit_records_blake3_beside_sha256_and_keeps_the_digest(store, digest):
    artifact = store.resolve("encoder")
    for entry in artifact.files:
        content = TREE[entry.path]
        assert entry.sha256 == hashlib.sha256(content).hexdigest()
        assert entry.blake3 == blake3(content).hexdigest()
    # The artifact's digest is computed from the sha256s alone, as before BLAKE3 was recorded.
    header = b"voltx-folder-v1\n"
    lines = "".join(
        f"{path}\t{len(data)}\t{hashlib.sha256(data).hexdigest()}\n"
        for path, data in sorted(TREE.items())
    )
    assert digest == hashlib.sha256(header + lines.encode()).hexdigest()
    on_disk = json.loads(manifest_file(store, digest).read_text())
    assert all(set(entry) == {"path", "size", "sha256", "blake3"} for entry in on_disk["files"])


def test_a_read_is_checked_by_blake3(store, digest, tmp_path):
    # The blob's bytes match its sha256; only the manifest's BLAKE3 is wrong.
    edit_entries(store, digest, lambda entry: entry.update(blake3=WRONG))
    with pytest.raises(CorruptBlobError, match="read blake3"):
        store.get("encoder", tmp_path / "out")
    assert not (tmp_path / "out" / "weights.bin").exists()
    with pytest.raises(CorruptBlobError):
        store.verify("encoder")
    assert {problem.member for problem in check_store(store)} == set(TREE)


def test_a_manifest_without_blake3_is_read_and_checked_by_sha256(store, digest, tmp_path):
    edit_entries(store, digest, lambda entry: entry.pop("blake3"))
    assert all(entry.blake3 is None for entry in store.resolve("encoder").files)
    store.get("encoder", tmp_path / "out")
    assert (tmp_path / "out" / "weights.bin").read_bytes() == TREE["weights.bin"]

    flip_blob(store, TREE["weights.bin"])
    with pytest.raises(CorruptBlobError, match="does not match its digest"):
        store.get("encoder", tmp_path / "again")
    assert [problem.member for problem in check_store(store)] == ["weights.bin"]


def test_old_manifests_round_trip_without_a_blake3_field(store, digest):
    edit_entries(store, digest, lambda entry: entry.pop("blake3"))
    entries = store.resolve("encoder").to_json()["files"]
    assert all("blake3" not in entry for entry in entries)


@pytest.mark.parametrize("blake3_manifest", [True, False], ids=["blake3", "sha256-only"])
def test_a_transfer_refuses_a_damaged_blob(store, digest, tmp_path, blake3_manifest):
    if not blake3_manifest:
        edit_entries(store, digest, lambda entry: entry.pop("blake3"))
    target = ArtifactStore.open(str(tmp_path / "target"))
    transfer(store, target, ["encoder"])
    assert target.resolve("encoder").files == store.resolve("encoder").files

    flip_blob(store, TREE["weights.bin"])
    again = ArtifactStore.open(str(tmp_path / "again"))
    with pytest.raises(CorruptBlobError, match=r"weights\.bin"):
        transfer(store, again, ["encoder"])


def test_a_blake3_field_that_is_not_a_digest_names_the_manifest(store, digest):
    edit_entries(store, digest, lambda entry: entry.update(blake3="not hex"))
    with pytest.raises(ManifestError, match=rf"{digest}\.json.*blake3 hex digest"):
        store.resolve("encoder")


def test_added_files_have_their_blake3_cached(tmp_path, monkeypatch):
    calls: list[Path] = []
    real = _hashing.blake3_file

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(_hashing, "blake3_file", counting)
    data = tmp_path / "big.bin"
    data.write_bytes(b"v" * (1 << 20))
    stamp = data.stat().st_mtime_ns - 3600 * 10**9  # settled: old enough to be cached
    os.utime(data, ns=(stamp, stamp))
    store = ArtifactStore.open(str(tmp_path / "store"))
    first = store.add("big", data).files[0]
    second = store.add("big-again", data).files[0]
    assert first.blake3 == second.blake3 == blake3(b"v" * (1 << 20)).hexdigest()
    assert len(calls) == 1


def test_copy_checked_hashes_many_chunks_by_either_digest(tmp_path):
    chunks = [bytes([n]) * 5000 for n in range(7)]
    whole = b"".join(chunks)
    for algorithm, expected in [
        ("sha256", hashlib.sha256(whole).hexdigest()),
        ("blake3", blake3(whole).hexdigest()),
    ]:
        dest = tmp_path / algorithm
        checked = copy_checked(iter(chunks), dest, algorithm=algorithm)
        assert checked == Checked(algorithm, expected, len(whole))
        assert hash_chunks(chunks, algorithm) == checked
        assert dest.read_bytes() == whole


def test_a_blake3_result_is_never_compared_with_a_sha256():
    checked = hash_chunks([b"data"], "blake3")
    entry = FileEntry("data.bin", 4, hashlib.sha256(b"data").hexdigest())
    with pytest.raises(ValueError, match="records no blake3"):
        checked.against(entry)
    with pytest.raises(ValueError, match="cannot be compared"):
        checked.mismatch(entry.sha256, entry.size)


def test_a_transfer_keeps_every_blob_true_to_its_sha256_name(store, digest, tmp_path):
    # A manifest whose BLAKE3 describes other bytes than its sha256 (here: a damaged blob and a
    # manifest edited to match it) reads consistently, but cannot plant the bytes elsewhere
    # under a name they do not have.
    flip_blob(store, TREE["weights.bin"])
    assert store.local_root is not None
    sha = hashlib.sha256(TREE["weights.bin"]).hexdigest()
    damaged = (store.local_root / "blobs" / "sha256" / sha[:2] / sha).read_bytes()

    def match_the_damage(entry: dict[str, Any]) -> None:
        if entry["path"] == "weights.bin":
            entry["blake3"] = blake3(damaged).hexdigest()

    edit_entries(store, digest, match_the_damage)
    store.get("encoder", tmp_path / "out")
    with pytest.raises(CorruptBlobError, match=r"weights\.bin"):
        transfer(store, ArtifactStore.open(str(tmp_path / "target")), ["encoder"])
