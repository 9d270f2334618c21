"""voltx.project: parsing voltx.toml, reporting its problems together, resolving its paths."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from voltx.errors import ConfigError
from voltx.project import (
    DEFAULT_STORE,
    INIT_TEMPLATE,
    PROJECT_FILE,
    Project,
    find_project_file,
    load_project,
    resolve_store_url,
)


def write_project(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PROJECT_FILE
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def elsewhere(tmp_path, monkeypatch) -> Path:
    """Run from a folder that is not the project's, so paths must be resolved against the file."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def test_no_file_is_the_default_project():
    project = load_project(None)
    assert project == Project()
    assert project.store == DEFAULT_STORE


def test_a_full_project_file(tmp_path, elsewhere):
    path = write_project(
        tmp_path / "proj",
        """
        [project]
        store = "artifacts"
        backend = "ssh"
        profile = "full"
        max_parallel = 4
        secrets_env = ["HF_TOKEN"]

        [inputs]
        humaneval = "data/humaneval.jsonl"

        [phases]
        "2.1" = { batch_size = 16 }

        [backends.ssh]
        host = "gpu-box"
        """,
    )

    project = load_project(path)

    assert project.store == str(tmp_path / "proj" / "artifacts")
    assert project.backend == "ssh"
    assert project.profile == "full"
    assert project.max_parallel == 4
    assert project.secrets_env == ("HF_TOKEN",)
    assert project.inputs == {"humaneval": str(tmp_path / "proj" / "data" / "humaneval.jsonl")}
    assert project.phases == {"2.1": {"batch_size": 16}}
    assert project.backends == {"ssh": {"host": "gpu-box"}}
    assert project.path == path


def test_the_init_template_is_a_valid_project(tmp_path):
    project = load_project(write_project(tmp_path, INIT_TEMPLATE))
    assert project.store == str(tmp_path / ".voltx")
    assert project.backend == "local"


@pytest.mark.parametrize(
    ("store", "expected"),
    [
        ("store-dir", "proj/store-dir"),
        ("./nested/store", "proj/nested/store"),
        ("../shared-store", "shared-store"),
        ("file://rel-store", "proj/rel-store"),
        (DEFAULT_STORE, "proj/.voltx"),
    ],
)
def test_relative_store_is_resolved_against_the_project_folder(
    tmp_path, elsewhere, store, expected
):
    path = write_project(tmp_path / "proj", f'[project]\nstore = "{store}"\n')
    assert load_project(path).store == str(tmp_path / expected)


def test_default_store_is_beside_the_project_file(tmp_path, elsewhere):
    path = write_project(tmp_path / "proj", "[project]\nbackend = 'local'\n")
    assert load_project(path).store == str(tmp_path / "proj" / ".voltx")


@pytest.mark.parametrize("store", ["s3://bucket/prefix", "memory://abc", "gcs://b/p"])
def test_remote_store_urls_are_unchanged(tmp_path, store):
    path = write_project(tmp_path, f'[project]\nstore = "{store}"\n')
    assert load_project(path).store == store


def test_absolute_paths_stay_absolute(tmp_path):
    target = tmp_path / "abs-store"
    data = tmp_path / "abs.jsonl"
    path = write_project(
        tmp_path / "proj", f'[project]\nstore = "{target}"\n[inputs]\nx = "{data}"\n'
    )
    project = load_project(path)
    assert project.store == str(target)
    assert project.inputs == {"x": str(data)}


def test_home_relative_paths_are_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = write_project(
        tmp_path / "proj", '[project]\nstore = "~/voltx-store"\n[inputs]\nx = "~/data/x.jsonl"\n'
    )
    project = load_project(path)
    assert project.store == str(tmp_path / "home" / "voltx-store")
    assert project.inputs == {"x": str(tmp_path / "home" / "data" / "x.jsonl")}


def test_resolve_store_url_directly(tmp_path):
    assert resolve_store_url("file://x", tmp_path) == str(tmp_path / "x")
    assert resolve_store_url("s3://b/x", tmp_path) == "s3://b/x"


def test_malformed_toml_names_the_file_and_line(tmp_path):
    path = write_project(
        tmp_path,
        """\
        [project]
        store = "x"
        backend =
        """,
    )
    with pytest.raises(ConfigError) as error:
        load_project(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ")
    assert "line 3" in message
    assert error.value.source == str(path)


def test_missing_file_is_a_config_error(tmp_path):
    path = tmp_path / "nope" / PROJECT_FILE
    with pytest.raises(ConfigError, match="file not found") as error:
        load_project(path)
    assert error.value.source == str(path)


def test_unknown_tables_and_keys_are_reported_together(tmp_path):
    path = write_project(
        tmp_path,
        """
        [project]
        bakend = "local"
        stor = "x"
        max_parallel = "4"

        [phase]
        x = 1

        [inputs]
        data = 3
        """,
    )
    with pytest.raises(ConfigError) as error:
        load_project(path)

    problems = error.value.problems
    assert "phase: unknown table; did you mean phases" in problems
    assert "project.bakend: unknown key; did you mean backend" in problems
    assert "project.stor: unknown key; did you mean store" in problems
    assert "project.max_parallel: expected int, got '4'" in problems
    assert "inputs.data: expected a path, got 3" in problems
    assert len(problems) == 5
    assert str(error.value).startswith(f"{path}: 5 problems: ")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("project = 3", "project: expected a table, got int"),
        ("phases = 'x'", "phases: expected a table, got str"),
        ("[project]\nmax_parallel = true", "project.max_parallel: expected int, got True"),
        ("[project]\nbackend = 3", "project.backend: expected str, got 3"),
        ("[project]\nsecrets_env = 'HF_TOKEN'", "project.secrets_env: expected a list"),
        ("[project]\nsecrets_env = [1]", "project.secrets_env: expected a list"),
    ],
)
def test_wrong_shapes_are_reported(tmp_path, text, problem):
    with pytest.raises(ConfigError) as error:
        load_project(write_project(tmp_path, text + "\n"))
    assert len(error.value.problems) == 1
    assert error.value.problems[0].startswith(problem)


def test_find_project_file_walks_up(tmp_path):
    path = write_project(tmp_path / "proj", "")
    deep = tmp_path / "proj" / "a" / "b"
    deep.mkdir(parents=True)
    assert find_project_file(deep) == path
    assert find_project_file(tmp_path) != path
