"""Property tests of the project-file loader and of ``--set`` parsing: arbitrary text in, a valid
result or a one-line `VoltxError` out, never another exception, never a changed store."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest

import voltx
from voltx.config import parse_overrides, parse_value
from voltx.errors import VoltxError
from voltx.plugins import registry
from voltx.project import Project, load_project

hypothesis = pytest.importorskip("hypothesis")  # voltx-core's bare test venv may lack it
from hypothesis import HealthCheck, given, settings  # noqa: E402  (after the skip above)
from hypothesis import strategies as st  # noqa: E402

PHASE_IDS = ["1.1", "2.1", "ex.count", "a.b.c"]
# Pieces of real project files, so that the generated text often parses as TOML and reaches the
# checks behind the parser (types, unknown keys and phases, ranges), not only the TOML error.
TABLES = [
    "[project]",
    '[phases."1.1"]',
    '[phases."ex.count"]',
    "[budget]",
    "[inputs]",
    "[backends.local]",
    '[budget.phases."2.1"]',
    "[[project]]",
    "[phases]",
]
KEYS = [
    "store",
    "backend",
    "profile",
    "max_parallel",
    "max_attempts",
    "dollars",
    "batch_size",
    "steps",
    "api_token",
    "work_dir",
    "warn_at",
    "humaneval",
    "x",
]
VALUES = [
    "1",
    "-5",
    "0",
    "1e400",
    '"tiny"',
    '"s3://b/p"',
    "true",
    "[1, 2]",
    "{a = 1}",
    '""',
    "nan",
    "1979-05-27",
    '"../up"',
    '"\\u0000"',
]

toml_lines = st.one_of(
    st.sampled_from(TABLES),
    st.builds(lambda k, v: f"{k} = {v}", st.sampled_from(KEYS), st.sampled_from(VALUES)),
    st.text(max_size=30),
)
project_text = st.lists(toml_lines, max_size=12).map("\n".join)

key_text = st.text(alphabet=string.ascii_letters + string.digits + "._-= \t", max_size=25)
assignments = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda pid, key, value: f"{pid}.{key}={value}",
        st.sampled_from([*PHASE_IDS, "", "nope", "2"]),
        key_text,
        st.one_of(st.sampled_from(VALUES), st.text(max_size=20)),
    ),
)


def _one_line(exc: VoltxError) -> None:
    assert str(exc).strip(), "an error must say something"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=project_text)
def test_any_project_file_loads_or_is_one_config_error(tmp_path_factory: Any, text: str) -> None:
    folder = tmp_path_factory.mktemp("project")
    path = folder / "voltx.toml"
    path.write_text(text, encoding="utf-8")
    try:
        project = load_project(path, registry())
    except VoltxError as exc:
        _one_line(exc)
    else:
        assert isinstance(project, Project)


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=200))
def test_any_bytes_as_project_file_load_or_are_one_config_error(
    tmp_path_factory: Any, raw: bytes
) -> None:
    path = tmp_path_factory.mktemp("project") / "voltx.toml"
    path.write_bytes(raw)
    try:
        load_project(path, registry())
    except VoltxError as exc:
        _one_line(exc)


@settings(max_examples=300, deadline=None)
@given(items=st.lists(assignments, max_size=6))
def test_any_set_assignments_parse_or_are_one_config_error(items: list[str]) -> None:
    try:
        tables = parse_overrides(items, PHASE_IDS)
    except VoltxError as exc:
        _one_line(exc)
        return
    assert set(tables) <= set(PHASE_IDS)
    for table in tables.values():
        assert isinstance(table, dict)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=60))
def test_any_set_value_is_a_value(text: str) -> None:
    # TOML when it parses, the text itself otherwise: never an exception.
    parse_value(text)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def planned_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with one run's worth of records, which planning must leave as it is."""
    root = tmp_path_factory.mktemp("store") / ".voltx"
    root.mkdir()
    (root / "records").mkdir()
    (root / "records" / "marker.json").write_text("{}")
    return root


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(assignments, max_size=4), text=project_text)
def test_planning_with_any_overrides_and_file_never_changes_the_store(
    planned_store: Path, tmp_path_factory: Any, items: list[str], text: str
) -> None:
    project = tmp_path_factory.mktemp("project") / "voltx.toml"
    project.write_text(text, encoding="utf-8")
    before = _snapshot(planned_store)
    try:
        voltx.plan("all", store=str(planned_store), config=project, overrides=items)
    except VoltxError as exc:
        _one_line(exc)
    assert _snapshot(planned_store) == before
