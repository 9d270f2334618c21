"""Property tests of the manifest, ref and record readers: arbitrary bytes in, a valid document or
a one-line ManifestError naming the file out, never another exception, never a changed store."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import pytest

from voltx.errors import ManifestError
from voltx.store import ArtifactStore
from voltx.store.integrity import check_store
from voltx.store.manifest import Artifact, parse_manifest, parse_record, parse_ref

hypothesis = pytest.importorskip("hypothesis")  # voltx-core's bare test venv may lack it
from hypothesis import given, settings  # noqa: E402  (after the skip above)
from hypothesis import strategies as st  # noqa: E402

DIGEST = hashlib.sha256(b"x").hexdigest()
VALID: dict[str, Any] = {
    "format": "voltx-artifact/1",
    "digest": DIGEST,
    "kind": "file",
    "name": "x",
    "size": 1,
    "files": [{"path": "x.bin", "size": 1, "sha256": DIGEST}],
    "lineage": {"phase": "1.1"},
    "created_at": "2026-01-01T00:00:00+00:00",
}
FILE = "manifests/" + DIGEST + ".json"
STORE = "memory://fuzz"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=70)
    | st.just(DIGEST),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


def assert_one_line(error: ManifestError) -> None:
    message = str(error)
    assert FILE in message or "refs/x.json" in message or "records/x.json" in message
    assert "\n" not in message and "Traceback" not in message


def read_all_three(raw: bytes) -> None:
    for reader, file in ((parse_manifest, FILE), (parse_ref, "refs/x.json")):
        try:
            result = reader(raw, file, STORE)
        except ManifestError as error:
            assert_one_line(error)
        else:
            assert isinstance(result, Artifact | str)
    try:
        parse_record(raw, "records/x.json", STORE)
    except ManifestError as error:
        assert_one_line(error)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_are_a_document_or_a_one_line_error(raw: bytes) -> None:
    read_all_three(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=0))
def test_truncated_or_spliced_manifests(tail: bytes, cut: int) -> None:
    good = json.dumps(VALID).encode()
    read_all_three(good[: cut % (len(good) + 1)] + tail)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from([*VALID, "files.0", "files.0.path", "files.0.size", "files.0.sha256"]),
    json_values,
)
def test_any_field_of_any_type(field: str, value: Any) -> None:
    document = json.loads(json.dumps(VALID))
    if field.startswith("files.0"):
        entry = document["files"][0]
        if field == "files.0":
            document["files"][0] = value
        else:
            entry[field.removeprefix("files.0.")] = value
    else:
        document[field] = value
    try:
        artifact = parse_manifest(json.dumps(document).encode(), FILE, STORE)
    except ManifestError as error:
        assert_one_line(error)
    else:
        assert artifact.files and all(isinstance(f.size, int) for f in artifact.files)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_a_store_with_a_garbage_manifest_answers_and_is_not_changed(raw: bytes) -> None:
    store = ArtifactStore.open(f"memory://fuzz-{uuid.uuid4().hex}")
    backing = store._backing
    backing.write_bytes(_blob_path(DIGEST), b"x")
    backing.write_bytes(FILE, raw)
    backing.write_bytes("refs/x.json", json.dumps({"name": "x", "digest": DIGEST}).encode())
    before = {path: backing.read_bytes(path) for path in backing.list_files("")}
    for read in (store.list, lambda: store.resolve("x"), lambda: store.has("x")):
        try:
            read()
        except ManifestError as error:
            assert_one_line(error)
    problems = check_store(store)
    assert all("\n" not in problem.describe() for problem in problems)
    assert {path: backing.read_bytes(path) for path in backing.list_files("")} == before
    backing.fs.rm(backing.root, recursive=True)


def _blob_path(digest: str) -> str:
    return f"blobs/sha256/{digest[:2]}/{digest}"
