"""Property-based tests of phase 0.2's dataset readers: whatever bytes a raw dataset file holds,
a reader yields valid records or raises one `VoltxError` whose one line names the file and the
line, never another exception (docs/formats.md, unified problem JSONL)."""

from __future__ import annotations

import gzip
import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from voltx.errors import VoltxError  # noqa: E402
from voltx_phases.datasets import readers  # noqa: E402
from voltx_phases.datasets.schema import DatasetLineError, Document, Problem  # noqa: E402

READERS: dict[str, Callable[..., Iterator[Any]]] = {
    "unified": readers.read_unified,
    "humaneval": readers.read_humaneval,
    "mbpp": readers.read_mbpp,
    "apps": readers.read_apps,
    "multipl_e": readers.read_multipl_e,
    "stack": readers.read_stack,
}

# Every field name some reader looks at, so generated objects reach the record parsers.
FIELDS = [
    "id", "query", "solution", "tests", "language", "difficulty", "stop_tokens", "task_id",
    "prompt", "canonical_solution", "test", "entry_point", "text", "code", "test_list",
    "test_setup_code", "test_imports", "problem_id", "question", "solutions", "input_output",
    "starter_code", "name", "doctests", "original", "prompt_terminology", "content", "lang",
    "path", "max_stars_repo_path", "inputs", "outputs", "fn_name",
]  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
# Strings holding JSON too: APPS keeps `solutions` and `input_output` as JSON text.
field_values = json_values | json_values.map(json.dumps)
records = st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=10)
record_lines = records.map(lambda r: json.dumps(r).encode())
raw_lines = st.binary(max_size=200).map(lambda b: b.replace(b"\n", b" "))
files = st.one_of(
    st.binary(max_size=400),
    st.lists(record_lines | raw_lines, max_size=6).map(b"\n".join),
    st.lists(records, max_size=4).map(lambda rs: json.dumps(rs).encode()),  # a JSON array file
    st.binary(max_size=200).map(lambda b: b"\x1f\x8b" + b),  # claims gzip, is not
    st.lists(record_lines, max_size=4).map(lambda ls: gzip.compress(b"\n".join(ls), mtime=0)),
)

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _read_all(name: str, data: bytes, skip_bad_lines: bool) -> tuple[str, list[Any] | Exception]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "raw dataset.jsonl"
        path.write_bytes(data)
        try:
            return str(path), list(READERS[name](path, skip_bad_lines=skip_bad_lines))
        except VoltxError as exc:
            return str(path), exc


@pytest.mark.parametrize("reader", sorted(READERS))
@FUZZ
@given(data=files, skip_bad_lines=st.booleans())
# Found by this test: a zstandard frame header asking for a dictionary (zstandard's own error
# escaped the readers).
@example(data=b"(\xb5/\xfd\x01\x00\x01", skip_bad_lines=False)
def test_any_bytes_give_records_or_one_line_naming_file_and_line(
    reader: str, data: bytes, skip_bad_lines: bool
) -> None:
    path, outcome = _read_all(reader, data, skip_bad_lines)
    if isinstance(outcome, Exception):
        assert isinstance(outcome, DatasetLineError)
        message = str(outcome)
        assert "\n" not in message
        assert message.startswith(f"{path}:{outcome.line}: ") and outcome.line >= 1
        return
    kind = Document if reader == "stack" else Problem
    for record in outcome:
        assert isinstance(record, kind)
        # A record that came out is one the unified format can hold: it writes as JSON.
        json.dumps(record.to_json())
        if isinstance(record, Problem):
            assert isinstance(record.id, str) and isinstance(record.solution, str)
            assert all(isinstance(test, str) for test in record.tests)
        else:
            assert isinstance(record.content, str)
