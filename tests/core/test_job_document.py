"""The job document: one writer, one strict reader, and a version a worker checks."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from voltx.errors import JobDocumentError
from voltx.job_document import JOB_FILE, JOB_VERSION, RESULT_FILE, JobDocument, job_document_in
from voltx.worker import run_job


def _document() -> JobDocument:
    return JobDocument(
        run_id="20260102-030405-abcdef",
        phase_id="2.1",
        attempt=2,
        store="s3://bucket/voltx",
        profile="tiny",
        config={"batch_size": 4, "schedule": {"warmup": 10}},
        inputs={"code_encoder": "a" * 64},
        fingerprint="b" * 64,
        devices=(0, 1),
    )


def _data() -> dict[str, object]:
    data = json.loads(_document().to_json())
    assert isinstance(data, dict)
    return data


def test_write_then_read_gives_an_equal_document(tmp_path: Path) -> None:
    document = _document()
    document.write(tmp_path / JOB_FILE)
    assert JobDocument.read(tmp_path / JOB_FILE) == document
    assert JobDocument.from_json(document.to_json()) == document


def test_the_document_says_its_format_and_version() -> None:
    data = _data()
    assert data["format"] == "voltx-job"
    assert data["version"] == JOB_VERSION


def test_an_unknown_key_is_refused_naming_the_key_and_the_file() -> None:
    data = {**_data(), "gpu": 0}
    with pytest.raises(JobDocumentError, match=r"jobs/x/job\.json: .*job\.gpu: unknown key"):
        JobDocument.from_json(json.dumps(data), "jobs/x/job.json")


def test_a_wrong_type_is_refused_naming_the_key() -> None:
    data = {**_data(), "attempt": "2", "devices": [0, "1"]}
    with pytest.raises(JobDocumentError) as caught:
        JobDocument.from_json(json.dumps(data))
    problems = caught.value.problems
    assert any(p.startswith("job.attempt: expected int") for p in problems), problems
    assert any(p.startswith("job.devices[1]") for p in problems), problems
    assert caught.value.source == JOB_FILE


def test_a_missing_key_is_refused_naming_the_key() -> None:
    data = _data()
    del data["fingerprint"]
    with pytest.raises(JobDocumentError, match=r"job\.fingerprint: required key is missing"):
        JobDocument.from_json(json.dumps(data))


def test_another_version_is_refused_before_its_keys_are_read() -> None:
    data = {**_data(), "version": JOB_VERSION + 1, "voltx_version": "9.0", "new_key": 1}
    with pytest.raises(JobDocumentError, match=r"version .* not 2 \(written by voltx 9\.0\)"):
        JobDocument.from_json(json.dumps(data))


def test_not_a_job_document_at_all() -> None:
    with pytest.raises(JobDocumentError, match="not JSON"):
        JobDocument.from_json(b"{")
    with pytest.raises(JobDocumentError, match=r"job\.format: expected 'voltx-job'"):
        JobDocument.from_json(b'{"step": 1}')
    with pytest.raises(JobDocumentError, match="expected a JSON object"):
        JobDocument.from_json(b"[]")


def test_a_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(JobDocumentError, match=r"job\.json: .*cannot read it"):
        JobDocument.read(tmp_path / JOB_FILE)


def test_a_request_without_job_json_is_not_a_worker_job() -> None:
    assert job_document_in({"data.bin": b""}) is None
    assert job_document_in({JOB_FILE: _document().to_json()}) == _document()


def test_a_worker_refuses_a_document_of_another_version_with_the_reason(tmp_path: Path) -> None:
    data = {**_data(), "version": JOB_VERSION + 1}
    (tmp_path / JOB_FILE).write_text(json.dumps(data))
    log = io.StringIO()
    assert run_job(tmp_path, log_stream=log) == 1
    result = json.loads((tmp_path / RESULT_FILE).read_text())
    assert result["status"] == "failed"
    assert "job.version: this voltx" in result["error"]
    assert "job.version: this voltx" in log.getvalue()
