"""Integrity on every read: damaged blobs, manifests and refs are named, never spread or trusted.

Each test damages a real store behind its back (a flipped byte, a deleted blob, a truncated
manifest) and checks what every reader does: `get`, transfers, freshness, `verify`, `repair`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from voltx.cli import main
from voltx.errors import (
    CorruptBlobError,
    DestinationExistsError,
    IntegrityError,
    ManifestError,
    StoreError,
)
from voltx.fingerprint import committed_outputs, record_success
from voltx.store import ArtifactStore
from voltx.store.integrity import check_store, repair_store
from voltx.store.transfer import transfer

TREE = {"weights.bin": b"\x07" * 3000, "config.json": b'{"dim": 4}\n', "sub/notes.txt": b"hi\n"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob(data: bytes) -> str:
    return f"blobs/sha256/{sha(data)[:2]}/{sha(data)}"


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def flip_a_byte(case: Any, rel: str) -> None:
    data = bytearray(case.read_raw(rel))
    data[len(data) // 2] ^= 0x01
    case.write_raw(rel, bytes(data))


def commit_encoder(case: Any, tmp_path: Path) -> str:
    source = write_tree(tmp_path / "encoder", TREE)
    return case.store.commit("code_encoder", source, {"phase": "1.1"}).digest


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


# -- reading a damaged blob --------------------------------------------------------------------


def test_get_of_a_flipped_byte_names_artifact_file_and_store_and_leaves_nothing(
    store_case, tmp_path
):
    commit_encoder(store_case, tmp_path)
    flip_a_byte(store_case, blob(TREE["weights.bin"]))
    out = tmp_path / "out"
    out.mkdir()

    with pytest.raises(CorruptBlobError) as error:
        store_case.store.get("code_encoder", out / "encoder")

    assert error.value.artifact == "code_encoder"
    assert error.value.path == "weights.bin"
    assert error.value.store == store_case.store.url
    assert "does not match" in str(error.value) and store_case.store.url in str(error.value)
    assert list(out.iterdir()) == []  # not the folder, not a staging folder, not a part file


def test_get_of_a_single_damaged_file_leaves_no_partial_file(store_case, tmp_path):
    source = tmp_path / "model.bin"
    source.write_bytes(b"tensor bytes" * 100)
    store_case.store.commit("model", source, {})
    store_case.write_raw(blob(b"tensor bytes" * 100), b"tensor bytes" * 50)  # truncated
    out = tmp_path / "out"
    out.mkdir()

    with pytest.raises(CorruptBlobError, match="expected 1200 bytes, read 600"):
        store_case.store.get("model", out / "model.bin")

    assert list(out.iterdir()) == []


def test_a_linked_input_is_checked_before_it_is_shared(local_case, tmp_path):
    commit_encoder(local_case, tmp_path)
    flip_a_byte(local_case, blob(TREE["config.json"]))

    with pytest.raises(CorruptBlobError, match=r"config\.json"):
        local_case.store.get("code_encoder", tmp_path / "inputs" / "enc", link=True)
    assert not (tmp_path / "inputs" / "enc").exists()


def test_a_sound_store_reads_back_exactly_with_and_without_links(store_case, tmp_path):
    commit_encoder(store_case, tmp_path)
    for index, link in enumerate((False, True)):
        out = store_case.store.get("code_encoder", tmp_path / f"copy{index}", link=link)
        assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.*")} == TREE


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_blobs_of_many_chunks_are_hashed_in_order_as_they_stream(kind, tmp_path, monkeypatch):
    # Small chunks, so a 3000-byte blob streams in several (ranged reads in flight, on memory://).
    monkeypatch.setattr("voltx.store._backing.CHUNK_BYTES", 256)
    url = str(tmp_path / "s") if kind == "local" else f"memory://chunks-{tmp_path.name}"
    store = ArtifactStore.open(url)
    data = bytes(range(256)) * 11 + b"tail"
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    store.commit("big", source, {})

    assert store.get("big", tmp_path / "copy.bin").read_bytes() == data

    store._backing.write_bytes(blob(data), data[:1000] + b"X" + data[1001:])
    with pytest.raises(CorruptBlobError, match="does not match"):
        store.get("big", tmp_path / "bad.bin")
    assert not (tmp_path / "bad.bin").exists()


def test_push_refuses_a_damaged_blob_and_copies_nothing_under_its_name(store_case, tmp_path):
    commit_encoder(store_case, tmp_path)
    flip_a_byte(store_case, blob(TREE["weights.bin"]))
    other = ArtifactStore.open(str(tmp_path / "other"))

    with pytest.raises(CorruptBlobError, match=r"code_encoder.*weights\.bin"):
        transfer(store_case.store, other, ["code_encoder"])

    root = tmp_path / "other"
    assert not (root / blob(TREE["weights.bin"])).exists()
    assert not list((root / "manifests").glob("*")) if (root / "manifests").exists() else True
    assert other.names() == []


def test_fetch_file_with_a_digest_checks_it_while_copying(store_case, tmp_path):
    source = tmp_path / "state.json"
    source.write_bytes(b'{"step": 5}')
    store_case.store.put_file("checkpoints/x/files/a", source)
    dest = tmp_path / "restored" / "state.json"

    store_case.store.fetch_file("checkpoints/x/files/a", dest, sha256=sha(b'{"step": 5}'))
    assert dest.read_bytes() == b'{"step": 5}'

    store_case.write_raw("checkpoints/x/files/a", b'{"step": 6}')
    with pytest.raises(IntegrityError, match="checkpoints/x/files/a"):
        store_case.store.fetch_file("checkpoints/x/files/a", tmp_path / "b", sha256=sha(b"x"))
    assert not (tmp_path / "b").exists()


# -- presence and freshness --------------------------------------------------------------------


def test_a_deleted_blob_makes_the_artifact_absent_and_its_phase_stale(store_case, tmp_path):
    digest = commit_encoder(store_case, tmp_path)
    record_success(
        store_case.store,
        phase_id="1.1",
        fp="f" * 64,
        version="1",
        config={},
        inputs={},
        outputs={"code_encoder": digest},
        run_id="r1",
    )
    assert store_case.store.has("code_encoder")
    assert committed_outputs(store_case.store, "f" * 64) == {"code_encoder": digest}

    store_case.delete_raw(blob(TREE["sub/notes.txt"]))

    assert not store_case.store.has("code_encoder")
    assert not store_case.store.is_intact(digest)
    assert committed_outputs(store_case.store, "f" * 64) is None


def test_recommitting_the_same_content_repairs_a_damaged_blob(store_case, tmp_path):
    commit_encoder(store_case, tmp_path)
    flip_a_byte(store_case, blob(TREE["weights.bin"]))

    commit_encoder(store_case, tmp_path)  # what `voltx run 1.1 --force` does at its end

    assert store_case.read_raw(blob(TREE["weights.bin"])) == TREE["weights.bin"]
    assert store_case.store.verify("code_encoder").name == "code_encoder"


def test_recommitting_the_same_content_replaces_a_damaged_manifest(store_case, tmp_path):
    digest = commit_encoder(store_case, tmp_path)
    store_case.write_raw(f"manifests/{digest}.json", b'{"format": "voltx-art')

    commit_encoder(store_case, tmp_path)

    assert store_case.store.load_manifest(digest).digest == digest


# -- damaged manifests and refs ----------------------------------------------------------------


def test_a_truncated_manifest_is_a_one_line_error_naming_the_file(store_case, tmp_path):
    digest = commit_encoder(store_case, tmp_path)
    raw = store_case.read_raw(f"manifests/{digest}.json")
    store_case.write_raw(f"manifests/{digest}.json", raw[: len(raw) // 2])

    for read in (
        lambda: store_case.store.list(),
        lambda: store_case.store.get("code_encoder", tmp_path / "out"),
        lambda: store_case.store.resolve("code_encoder"),
        lambda: store_case.store.gc(dry_run=True),
    ):
        with pytest.raises(ManifestError) as error:
            read()
        message = str(error.value)
        assert f"manifests/{digest}.json" in message and "not valid JSON" in message
        assert "\n" not in message
        assert error.value.file == f"manifests/{digest}.json"


@pytest.mark.parametrize(
    "damage",
    [
        b"[]",
        b'{"format": "voltx-artifact/1", "digest": 5}',
        b'{"format": "voltx-artifact/1", "digest": "%s", "kind": "file", "name": "x",'
        b' "files": [{"path": "a", "size": "big", "sha256": "%s"}]}',
    ],
)
def test_a_manifest_of_wrong_types_is_a_one_line_error(store_case, tmp_path, damage):
    digest = commit_encoder(store_case, tmp_path)
    if b"%s" in damage:
        damage = damage.replace(b"%s", digest.encode())
    store_case.write_raw(f"manifests/{digest}.json", damage)

    with pytest.raises(ManifestError, match=rf"manifests/{digest}\.json"):
        store_case.store.resolve("code_encoder")


def test_a_damaged_ref_is_a_one_line_error_naming_it(store_case, tmp_path):
    commit_encoder(store_case, tmp_path)
    store_case.write_raw("refs/code_encoder.json", b'{"name": "code_enc')

    with pytest.raises(ManifestError, match=r"refs/code_encoder\.json"):
        store_case.store.list()


def test_a_damaged_record_is_a_one_line_error_naming_it(store_case):
    store_case.write_raw("records/fingerprints/abc.json", b"{")

    with pytest.raises(ManifestError, match=r"records/fingerprints/abc\.json"):
        store_case.store.read_record("fingerprints/abc.json")


# -- verify and repair -------------------------------------------------------------------------


def test_check_store_reports_every_problem_at_once(store_case, tmp_path):
    commit_encoder(store_case, tmp_path)
    other = tmp_path / "tok.json"
    other.write_bytes(b'{"vocab": 1}')
    tok = store_case.store.commit("code_tokenizer", other, {"phase": "1.1"}).digest
    flip_a_byte(store_case, blob(TREE["weights.bin"]))
    store_case.delete_raw(blob(TREE["config.json"]))
    store_case.write_raw(f"manifests/{tok}.json", b"{")

    problems = check_store(store_case.store)

    described = sorted(p.describe() for p in problems)
    assert len(described) == 3, described
    assert any("code_encoder/weights.bin" in d and "does not match" in d for d in described)
    assert any("code_encoder/config.json" in d and "missing" in d for d in described)
    assert any(f"manifests/{tok}.json" in d for d in described)
    assert check_store(store_case.store, ["code_encoder"]) == [
        p for p in problems if p.artifact == "code_encoder"
    ]


def test_repair_from_another_store_fixes_a_flipped_byte(store_case, tmp_path):
    commit_encoder(store_case, tmp_path)
    good = ArtifactStore.open(str(tmp_path / "good"))
    transfer(store_case.store, good)
    flip_a_byte(store_case, blob(TREE["weights.bin"]))

    report = repair_store(store_case.store, source=good)

    assert [p.member for p in report.fixed] == ["weights.bin"]
    assert report.quarantined == () and report.unfixed == ()
    assert check_store(store_case.store) == []


def test_repair_without_a_good_copy_quarantines_and_says_what_recreates_it(store_case, tmp_path):
    commit_encoder(store_case, tmp_path)
    flip_a_byte(store_case, blob(TREE["weights.bin"]))

    report = repair_store(store_case.store)

    [(problem, where)] = report.quarantined
    assert problem.recreate == "voltx run 1.1 --force"
    assert where.startswith("quarantine/") and where.endswith(blob(TREE["weights.bin"]))
    assert store_case.read_raw(where) != TREE["weights.bin"]  # kept, for a post-mortem
    folder = where.removesuffix("/" + blob(TREE["weights.bin"]))
    record = json.loads(store_case.read_raw(f"{folder}/record.json"))
    assert record["files"][0]["recreate"] == "voltx run 1.1 --force"
    assert not store_case.store.has("code_encoder")  # the next `voltx run` re-creates it

    commit_encoder(store_case, tmp_path)
    assert check_store(store_case.store) == []


def test_repair_quarantines_a_manifest_that_does_not_parse(store_case, tmp_path):
    digest = commit_encoder(store_case, tmp_path)
    store_case.write_raw(f"manifests/{digest}.json", b"{")

    report = repair_store(store_case.store)

    # The ref that pointed at it goes too, in the same call: the store reads clean again.
    assert [p.file for p, _ in report.quarantined] == [
        f"manifests/{digest}.json",
        "refs/code_encoder.json",
    ]
    assert store_case.store.list() == []
    assert not store_case.store.has("code_encoder")
    assert check_store(store_case.store) == []


def test_damaged_records_are_found_and_quarantined(store_case, tmp_path):
    commit_encoder(store_case, tmp_path)
    store_case.store.write_record("runs/r1/run.json", {"run_id": "r1"})
    store_case.write_raw("records/runs/latest.json", b'{"run_id": "r')

    [problem] = check_store(store_case.store)
    assert problem.file == "records/runs/latest.json" and "not valid JSON" in problem.reason

    report = repair_store(store_case.store)

    assert [p.file for p, _ in report.quarantined] == ["records/runs/latest.json"]
    assert store_case.store.read_record("runs/latest.json") is None
    assert store_case.store.read_record("runs/r1/run.json") == {"run_id": "r1"}
    assert check_store(store_case.store) == []


def test_checking_named_artifacts_reports_a_damaged_manifest_instead_of_failing(
    store_case, tmp_path
):
    digest = commit_encoder(store_case, tmp_path)
    store_case.write_raw(f"manifests/{digest}.json", b"")

    [problem] = check_store(store_case.store, ["code_encoder"])

    assert problem.file == f"manifests/{digest}.json"
    assert problem.recreate == "voltx run code_encoder --force"


def test_repairing_a_named_artifact_whose_manifest_is_damaged(store_case, tmp_path):
    digest = commit_encoder(store_case, tmp_path)
    store_case.write_raw(f"manifests/{digest}.json", b"{")

    report = repair_store(store_case.store, ["code_encoder"])

    assert len(report.quarantined) == 2
    assert store_case.store.names() == []


def test_a_ref_whose_manifest_is_gone_is_reported_and_repaired(store_case, tmp_path):
    digest = commit_encoder(store_case, tmp_path)
    good = ArtifactStore.open(str(tmp_path / "good"))
    transfer(store_case.store, good)
    store_case.delete_raw(f"manifests/{digest}.json")

    for names in (None, ["code_encoder"]):
        [problem] = check_store(store_case.store, names)
        assert problem.file == "refs/code_encoder.json" and "manifest is missing" in problem.reason

    report = repair_store(store_case.store, source=good)

    assert [p.file for p in report.fixed] == ["refs/code_encoder.json"]
    assert check_store(store_case.store) == []
    assert store_case.store.has("code_encoder")


def test_a_dangling_ref_without_a_good_copy_is_quarantined(store_case, tmp_path):
    digest = commit_encoder(store_case, tmp_path)
    store_case.delete_raw(f"manifests/{digest}.json")

    report = repair_store(store_case.store)

    [(problem, where)] = report.quarantined
    assert problem.recreate == "voltx run code_encoder --force"
    assert where.endswith("refs/code_encoder.json")
    assert store_case.store.names() == []
    assert check_store(store_case.store) == []


# -- the CLI -----------------------------------------------------------------------------------


def cli(store: Path, *args: str) -> int:
    return main(["--store", str(store), "artifacts", *args])


def test_cli_flip_verify_repair_verify(local_case, tmp_path, capsys):
    commit_encoder(local_case, tmp_path)
    second = tmp_path / "second"
    transfer(local_case.store, ArtifactStore.open(str(second)))
    flip_a_byte(local_case, blob(TREE["weights.bin"]))
    root = local_case.root

    assert cli(root, "verify") == 1
    out = capsys.readouterr().out
    assert f"code_encoder/weights.bin: {blob(TREE['weights.bin'])}" in out

    assert cli(root, "get", "code_encoder", str(tmp_path / "out")) == 1
    assert "code_encoder" in one_line_error(capsys)
    assert not (tmp_path / "out").exists()

    assert cli(root, "repair", "--from", str(second)) == 0
    assert "repaired: code_encoder/weights.bin" in capsys.readouterr().out
    assert cli(root, "verify", "code_encoder") == 0
    assert "intact" in capsys.readouterr().out


def test_cli_truncated_manifest_is_one_line_for_list_get_and_verify(local_case, tmp_path, capsys):
    digest = commit_encoder(local_case, tmp_path)
    path = local_case.root / "manifests" / f"{digest}.json"
    path.write_bytes(path.read_bytes()[:40])

    for args in (("list",), ("get", "code_encoder", str(tmp_path / "o")), ("gc", "-n")):
        assert cli(local_case.root, *args) == 1
        assert f"manifests/{digest}.json" in one_line_error(capsys)
    assert cli(local_case.root, "verify") == 1
    assert f"manifests/{digest}.json" in capsys.readouterr().out


def test_cli_get_refuses_to_overwrite_or_to_write_into_the_store(local_case, tmp_path, capsys):
    source = tmp_path / "mbpp.jsonl"
    source.write_bytes(b'{"task": 1}\n')
    local_case.store.commit("mbpp", source, {"phase": "0.2"})
    dest = tmp_path / "existing.jsonl"
    dest.write_bytes(b"mine")
    before = local_case.snapshot()

    assert cli(local_case.root, "get", "mbpp", str(dest)) == 1
    assert "already exists" in one_line_error(capsys)
    assert dest.read_bytes() == b"mine"

    for inside in ("refs", "refs/mbpp.json", "", "jobs"):
        assert cli(local_case.root, "get", "mbpp", str(local_case.root / inside)) == 1
        assert "inside store" in one_line_error(capsys)
    assert local_case.snapshot() == before

    assert cli(local_case.root, "get", "mbpp", str(dest), "--overwrite") == 0
    assert dest.read_bytes() == b'{"task": 1}\n'


def test_library_get_refuses_store_data_but_not_job_folders_beside_it(local_case, tmp_path):
    commit_encoder(local_case, tmp_path)
    with pytest.raises(DestinationExistsError, match="inside store"):
        local_case.store.get("code_encoder", local_case.root / "refs" / "x")
    jobs = local_case.root / "jobs" / "r1-1.1-1" / "inputs" / "code_encoder"
    assert local_case.store.get("code_encoder", jobs, link=True) == jobs
    with pytest.raises(DestinationExistsError, match="not empty"):
        local_case.store.get("code_encoder", jobs)
    assert isinstance(DestinationExistsError("x", "y"), StoreError)
