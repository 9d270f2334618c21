"""ArtifactStore on a local folder and on memory://: commit, add, get, resolve, list, records."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from voltx.errors import (
    ArtifactNotFoundError,
    IntegrityError,
    InvalidArtifactNameError,
    SourceFileError,
    StoreError,
)
from voltx.store import ArtifactStore


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    root.mkdir(parents=True, exist_ok=True)
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


TREE = {"weights.bin": b"\x00\x01" * 500, "config.json": b'{"dim": 4}\n', "sub/notes.txt": b"hi\n"}


# -- commit ----------------------------------------------------------------------------------


def test_commit_file_is_addressed_by_its_content(store, tmp_path):
    source = tmp_path / "model.safetensors"
    source.write_bytes(b"tensor bytes")

    artifact = store.commit("model", source, {"phase": "2.1", "run_id": "r1"})

    assert artifact.kind == "file"
    assert artifact.digest == sha(b"tensor bytes")
    assert artifact.name == "model"
    assert [(f.path, f.size, f.sha256) for f in artifact.files] == [
        ("model.safetensors", 12, sha(b"tensor bytes"))
    ]
    assert artifact.size == 12
    assert artifact.short == artifact.digest[:12]
    assert artifact.lineage == {"phase": "2.1", "run_id": "r1"}
    assert store.ref("model") == artifact.digest


def test_commit_folder_records_every_file(store, tmp_path):
    source = write_tree(tmp_path / "ckpt", TREE)

    artifact = store.commit("ckpt", source, {"phase": "2.1"})

    assert artifact.kind == "folder"
    assert {f.path: (f.size, f.sha256) for f in artifact.files} == {
        rel: (len(data), sha(data)) for rel, data in TREE.items()
    }
    assert artifact.size == sum(len(d) for d in TREE.values())
    assert store.resolve("ckpt") == artifact


def test_folder_digest_ignores_mtime_and_creation_order(store, tmp_path):
    first = write_tree(tmp_path / "a", TREE)
    second = tmp_path / "b"
    for rel in reversed(list(TREE)):  # created in the opposite order
        write_tree(second, {rel: TREE[rel]})
    for path in second.rglob("*"):
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # and with other mtimes

    assert store.commit("a", first, {}).digest == store.commit("b", second, {}).digest


@pytest.mark.parametrize(
    "change",
    [
        {"config.json": b'{"dim": 5}\n'},  # one file's content
        {"extra.txt": b"x"},  # one more file
    ],
)
def test_folder_digest_depends_on_contents_and_file_list(store, tmp_path, change):
    base = store.commit("a", write_tree(tmp_path / "a", TREE), {}).digest
    changed = store.commit("b", write_tree(tmp_path / "b", {**TREE, **change}), {}).digest
    assert changed != base


def test_folder_digest_depends_on_file_names(store, tmp_path):
    renamed = {("renamed.json" if k == "config.json" else k): v for k, v in TREE.items()}
    base = store.commit("a", write_tree(tmp_path / "a", TREE), {}).digest
    assert store.commit("b", write_tree(tmp_path / "b", renamed), {}).digest != base


def test_same_content_twice_keeps_one_copy(store_case, tmp_path):
    store = store_case.store
    source = write_tree(tmp_path / "ckpt", {**TREE, "copy.bin": TREE["weights.bin"]})

    first = store.commit("ckpt", source, {"run_id": "r1"})
    blobs = store_case.files("blobs")
    manifests = store_case.files("manifests")
    second = store.commit("ckpt", source, {"run_id": "r2"})

    assert second.digest == first.digest
    # Two identical files inside the folder share one blob, too.
    assert len(blobs) == len(TREE)
    assert store_case.files("blobs") == blobs
    assert store_case.files("manifests") == manifests
    # The first manifest stands: content is what it describes.
    assert second.lineage == {"run_id": "r1"}


def test_same_content_under_a_second_name_reports_that_name(store, tmp_path):
    source = tmp_path / "f.txt"
    source.write_bytes(b"shared")
    store.commit("first", source, {})

    second = store.commit("second", source, {})

    assert second.name == "second"
    assert store.resolve("second").name == "second"
    assert sorted(a.name for a in store.list()) == ["first", "second"]


def test_recommit_moves_the_ref_to_the_new_content(store, tmp_path):
    source = tmp_path / "f.txt"
    source.write_bytes(b"v1")
    v1 = store.commit("data", source, {})
    source.write_bytes(b"v2")
    v2 = store.commit("data", source, {})

    assert v1.digest != v2.digest
    assert store.resolve("data").digest == v2.digest
    assert store.resolve(v1.digest).digest == v1.digest  # still there until gc


def test_lineage_is_redacted_before_it_is_stored(store, tmp_path):
    source = tmp_path / "f.txt"
    source.write_bytes(b"x")
    artifact = store.commit("f", source, {"phase": "3", "config": {"hf_token": "hf_abcdefgh"}})
    assert artifact.lineage["config"] == {"hf_token": "***"}


def test_missing_source_names_the_path(store, tmp_path):
    missing = tmp_path / "nowhere" / "data.bin"
    with pytest.raises(SourceFileError) as commit_error:
        store.commit("data", missing, {})
    assert commit_error.value.path == str(missing)
    assert str(missing) in str(commit_error.value)

    with pytest.raises(SourceFileError) as add_error:
        store.add("data", missing)
    assert str(missing) in str(add_error.value)
    assert store.names() == []


def test_empty_folder_is_refused(store, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceFileError, match="empty"):
        store.commit("empty", empty, {})


def test_symlink_inside_a_folder_is_refused(store, tmp_path):
    source = write_tree(tmp_path / "src", {"a.txt": b"a"})
    (source / "link.txt").symlink_to(source / "a.txt")
    with pytest.raises(SourceFileError, match="symbolic link") as error:
        store.commit("src", source, {})
    assert error.value.path == str(source / "link.txt")


# -- add -------------------------------------------------------------------------------------


def test_add_file_records_its_source(store, tmp_path):
    source = tmp_path / "humaneval.jsonl"
    source.write_bytes(b'{"task": 1}\n')

    artifact = store.add("humaneval", source)

    assert artifact.kind == "file"
    assert artifact.lineage["source"] == str(source.resolve())
    assert artifact.lineage["phase"] is None
    assert "added_at" in artifact.lineage
    assert store.resolve("humaneval").lineage == artifact.lineage


def test_add_folder_records_its_source(store, tmp_path):
    source = write_tree(tmp_path / "corpus", TREE)

    artifact = store.add("corpus", source)

    assert artifact.kind == "folder"
    assert len(artifact.files) == len(TREE)
    assert artifact.lineage["source"] == str(source.resolve())
    assert artifact.lineage["phase"] is None


# -- get -------------------------------------------------------------------------------------


def test_get_file_to_a_path_and_into_a_folder(store, tmp_path):
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    store.commit("model", source, {})

    target = store.get("model", tmp_path / "out" / "copy.bin")
    assert target == tmp_path / "out" / "copy.bin"
    assert target.read_bytes() == b"weights"

    folder = tmp_path / "into"
    folder.mkdir()
    inside = store.get("model", folder)
    assert inside == folder / "model.bin"
    assert inside.read_bytes() == b"weights"


def test_get_folder_recreates_the_tree(store, tmp_path):
    store.commit("ckpt", write_tree(tmp_path / "ckpt", TREE), {})

    out = store.get("ckpt", tmp_path / "restored")

    assert out == tmp_path / "restored"
    assert read_tree(out) == TREE


def test_get_replaces_an_existing_file(store, tmp_path):
    source = tmp_path / "model.bin"
    source.write_bytes(b"new")
    store.commit("model", source, {})
    dest = tmp_path / "dest.bin"
    dest.write_bytes(b"old content that is longer")

    # Replacing is asked for: without `overwrite`, get refuses (tests/core/test_store_integrity).
    store.get("model", dest, overwrite=True)

    assert dest.read_bytes() == b"new"


def test_get_with_link_on_a_local_store_shares_a_read_only_blob(local_case, tmp_path):
    store = local_case.store
    store.commit("ckpt", write_tree(tmp_path / "ckpt", TREE), {})

    out = store.get("ckpt", tmp_path / "linked", link=True)

    assert read_tree(out) == TREE
    linked = out / "weights.bin"
    blob = local_case.root / "blobs" / "sha256" / sha(TREE["weights.bin"])[:2]
    blob = blob / sha(TREE["weights.bin"])
    assert os.stat(linked).st_ino == os.stat(blob).st_ino
    assert stat.S_IMODE(os.stat(linked).st_mode) & 0o222 == 0  # nobody may write
    assert not try_to_append(linked)
    assert linked.read_bytes() == TREE["weights.bin"]
    # The same attempt on a writable copy succeeds, so the refusal above is the blob's doing.
    copy = store.get("ckpt", tmp_path / "copied") / "weights.bin"
    copy.chmod(0o666)
    assert try_to_append(copy)
    assert store.verify("ckpt").name == "ckpt"


def try_to_append(path: Path) -> bool:
    """Whether an ordinary user can write to `path` (root ignores permission bits, so as root
    the attempt is made by `nobody`, from inside the folder so the test's 0700 parents allow it)."""
    if os.geteuid() != 0:
        try:
            with open(path, "ab") as stream:
                stream.write(b"edited in place")
        except PermissionError:
            return False
        return True
    script = f"cat {path.name} > /dev/null && printf edited >> {path.name}"
    result = subprocess.run(
        ["/bin/sh", "-c", script],
        cwd=path.parent,
        user=65534,
        group=65534,
        extra_groups=[],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode and "ermission denied" not in result.stderr:
        pytest.fail(f"could not test the write as nobody: {result.stderr}")
    return result.returncode == 0


def test_get_with_link_on_memory_copies(memory_case, tmp_path):
    store = memory_case.store
    store.commit("ckpt", write_tree(tmp_path / "ckpt", TREE), {})

    out = store.get("ckpt", tmp_path / "copied", link=True)

    (out / "weights.bin").write_bytes(b"edited")  # a copy: the store is untouched
    assert store.verify("ckpt").name == "ckpt"


def test_get_with_a_missing_blob_is_an_integrity_error(store_case, tmp_path):
    store = store_case.store
    source = tmp_path / "f.bin"
    source.write_bytes(b"content")
    artifact = store.commit("f", source, {})
    store_case.delete_raw(f"blobs/sha256/{artifact.digest[:2]}/{artifact.digest}")

    with pytest.raises(IntegrityError, match="missing"):
        store.get("f", tmp_path / "out.bin")


def test_verify_detects_a_corrupted_blob(store_case, tmp_path):
    store = store_case.store
    source = tmp_path / "f.bin"
    source.write_bytes(b"content")
    artifact = store.commit("f", source, {})
    store_case.write_raw(f"blobs/sha256/{artifact.digest[:2]}/{artifact.digest}", b"CONTENT")

    with pytest.raises(IntegrityError, match="does not match"):
        store.verify("f")


# -- resolve, list, names, has ---------------------------------------------------------------


def test_resolve_by_name_digest_and_prefix(store, tmp_path):
    source = tmp_path / "f.bin"
    source.write_bytes(b"resolve me")
    artifact = store.commit("thing", source, {"phase": "1"})

    assert store.resolve("thing") == artifact
    assert store.resolve(artifact.digest).digest == artifact.digest
    assert store.resolve(artifact.digest[:8]).digest == artifact.digest
    assert store.resolve(artifact.digest[:20]).digest == artifact.digest
    assert store.resolve("thing").lineage == {"phase": "1"}


def test_resolve_unknown_suggests_a_close_name(store, tmp_path):
    source = tmp_path / "f.bin"
    source.write_bytes(b"x")
    store.commit("tokenizer", source, {})

    with pytest.raises(ArtifactNotFoundError, match="did you mean tokenizer") as error:
        store.resolve("tokeniser")
    assert error.value.name == "tokeniser"
    with pytest.raises(ArtifactNotFoundError):
        store.resolve("0" * 64)


def test_resolve_ambiguous_prefix_says_so(store_case, tmp_path):
    store = store_case.store
    source = tmp_path / "f.bin"
    source.write_bytes(b"x")
    artifact = store.commit("f", source, {})
    twin = artifact.digest[:8] + "0" * 56  # a second manifest sharing the 8-char prefix
    manifest = json.loads(store_case.read_raw(f"manifests/{artifact.digest}.json"))
    store_case.write_raw(
        f"manifests/{twin}.json", json.dumps({**manifest, "digest": twin}).encode()
    )

    with pytest.raises(StoreError, match="ambiguous"):
        store.resolve(artifact.digest[:8])
    assert store.resolve(artifact.digest[:9]).digest == artifact.digest


def test_list_names_and_has(store, tmp_path):
    assert store.list() == []
    assert store.names() == []
    for name in ("beta", "alpha"):
        source = tmp_path / f"{name}.txt"
        source.write_bytes(name.encode())
        store.commit(name, source, {})

    assert store.names() == ["alpha", "beta"]
    assert [a.name for a in store.list()] == ["alpha", "beta"]
    assert store.has("alpha")
    assert not store.has("gamma")


def test_ref_whose_manifest_is_gone_is_not_listed(store_case, tmp_path):
    store = store_case.store
    source = tmp_path / "f.bin"
    source.write_bytes(b"x")
    artifact = store.commit("f", source, {})
    store_case.delete_raw(f"manifests/{artifact.digest}.json")

    assert not store.has("f")
    assert store.list() == []


def test_set_ref_refuses_an_unknown_digest(store):
    with pytest.raises(ArtifactNotFoundError):
        store.set_ref("f", "a" * 64)
    assert store.names() == []


# -- names and unsafe paths ------------------------------------------------------------------

BAD_NAMES = ["..", "../escape", "a/b", "a\\b", "", ".hidden", "a..b", "/abs", "a b", "x" * 200]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_names_are_rejected_and_change_nothing(store_case, tmp_path, name):
    store = store_case.store
    source = tmp_path / "f.bin"
    source.write_bytes(b"x")
    folder = write_tree(tmp_path / "folder", TREE)
    kept = store.commit("kept", source, {})
    before = store_case.snapshot()

    for attempt in (
        lambda: store.commit(name, source, {}),
        lambda: store.commit(name, folder, {}),
        lambda: store.add(name, source),
        lambda: store.add(name, folder),
        lambda: store.set_ref(name, kept.digest),
    ):
        with pytest.raises(InvalidArtifactNameError) as error:
            attempt()
        assert error.value.name == name

    assert store_case.snapshot() == before


@pytest.mark.parametrize("unsafe", ["../x", "/etc/passwd", "a/../../x", "a//b", "./a", "a\\b"])
def test_manifest_with_an_unsafe_path_is_refused(store_case, tmp_path, unsafe):
    store = store_case.store
    source = tmp_path / "f.bin"
    source.write_bytes(b"payload")
    good = store.commit("good", source, {})
    digest = "f" * 64
    manifest = json.loads(store_case.read_raw(f"manifests/{good.digest}.json"))
    manifest.update(digest=digest, name="evil")
    manifest["files"][0]["path"] = unsafe
    store_case.write_raw(f"manifests/{digest}.json", json.dumps(manifest).encode())
    store_case.write_raw("refs/evil.json", json.dumps({"name": "evil", "digest": digest}).encode())

    for reader in (
        lambda: store.resolve(digest),
        lambda: store.resolve("evil"),
        lambda: store.get("evil", tmp_path / "out" / "inner"),
    ):
        with pytest.raises(StoreError, match=r"unsafe|not normalized"):
            reader()
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "out").exists()


def test_manifest_of_unknown_format_is_refused(store_case, tmp_path):
    store = store_case.store
    source = tmp_path / "f.bin"
    source.write_bytes(b"payload")
    good = store.commit("good", source, {})
    manifest = json.loads(store_case.read_raw(f"manifests/{good.digest}.json"))
    store_case.write_raw(
        f"manifests/{good.digest}.json", json.dumps({**manifest, "format": "other/9"}).encode()
    )
    with pytest.raises(IntegrityError, match="unknown format"):
        store.resolve("good")


def test_manifest_stored_under_another_digest_is_refused(store_case, tmp_path):
    store = store_case.store
    source = tmp_path / "f.bin"
    source.write_bytes(b"payload")
    good = store.commit("good", source, {})
    other = "e" * 64
    store_case.write_raw(
        f"manifests/{other}.json", store_case.read_raw(f"manifests/{good.digest}.json")
    )
    with pytest.raises(IntegrityError):
        store.resolve(other)


# -- records ---------------------------------------------------------------------------------


def test_write_record_create_refuses_to_overwrite(store):
    assert store.write_record("runs/r1/run.json", {"n": 1}, create=True) is True
    assert store.write_record("runs/r1/run.json", {"n": 2}, create=True) is False
    assert store.read_record("runs/r1/run.json") == {"n": 1}
    assert store.write_record("runs/r1/run.json", {"n": 3}) is True
    assert store.read_record("runs/r1/run.json") == {"n": 3}


def test_read_missing_record_is_none(store):
    assert store.read_record("nothing/here.json") is None
    assert list(store.iter_records("nothing")) == []


def test_iter_records_in_path_order(store):
    for name in ("0003", "0001", "0010", "0002"):
        store.write_record(f"runs/r/events/{name}.json", {"name": name})
    store.write_record("runs/other/events/0000.json", {"name": "other"})

    found = list(store.iter_records("runs/r/events"))

    assert [path for path, _ in found] == [
        f"runs/r/events/{n}.json" for n in ("0001", "0002", "0003", "0010")
    ]
    assert [doc["name"] for _, doc in found] == ["0001", "0002", "0003", "0010"]


def test_records_are_redacted(store):
    store.write_record("x.json", {"password": "hunter2hunter2", "steps": 3})
    assert store.read_record("x.json") == {"password": "***", "steps": 3}


@pytest.mark.parametrize("path", ["../escape.json", "/abs.json", ""])
def test_record_paths_cannot_escape(store_case, path):
    before = store_case.snapshot()
    with pytest.raises(StoreError):
        store_case.store.write_record(path, {"x": 1})
    assert store_case.snapshot() == before


def test_local_dir_only_for_a_local_store(store_case):
    folder = store_case.store.local_dir("checkpoints", "2.1")
    if store_case.local:
        assert folder == store_case.root / "checkpoints" / "2.1"
        assert folder.is_dir()
    else:
        assert folder is None


def test_open_a_file_url_is_a_local_folder(tmp_path):
    store = ArtifactStore.open(f"file://{tmp_path / 'via-url'}")
    assert store.local_root == (tmp_path / "via-url").resolve()
    assert (tmp_path / "via-url").is_dir()


def test_threads_reading_one_memory_blob_each_get_all_of_it(tmp_path: Path) -> None:
    """fsspec's memory filesystem shares one file object per file between readers."""
    from concurrent.futures import ThreadPoolExecutor

    from voltx.testing import memory_store_url

    store = ArtifactStore.open(memory_store_url())
    source = tmp_path / "blob.bin"
    source.write_bytes(os.urandom(1 << 20))
    store.add("shared", source)

    def fetch(index: int) -> bytes:
        return store.get("shared", tmp_path / f"copy-{index}").read_bytes()

    with ThreadPoolExecutor(8) as pool:
        copies = list(pool.map(fetch, range(32)))
    assert all(copy == source.read_bytes() for copy in copies)
