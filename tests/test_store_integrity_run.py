"""Damaged stores meet real runs: the example pipeline on the local backend, a real file store.

A flipped byte in an input stops the phase that reads it with a one-line error naming the
artifact, the file, the store and the repair command, and nothing downstream runs; a deleted blob
makes its phase run again instead of "up to date"; `voltx run <id> --force` repairs the blob.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _support import statuses, subprocess_env, voltx_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def blob_of(name: str, project: Path, env: dict[str, str]) -> tuple[str, Path]:
    """The first file of an artifact and the path of its blob in the project's store."""
    shown = json.loads(voltx_cli("artifacts", "show", name, "--json", cwd=project, env=env).stdout)
    entry = shown["files"][0]
    digest = entry["sha256"]
    return entry["path"], project / ".voltx" / "blobs" / "sha256" / digest[:2] / digest


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def test_a_flipped_byte_stops_its_reader_and_force_repairs_it(
    project: Path, example_site: Path
) -> None:
    env = subprocess_env(example_site)
    voltx_cli("run", "ex.report", cwd=project, env=env)
    member, blob = blob_of("ex_corpus", project, env)
    flip_a_byte(blob)

    # A config change makes ex.tokens read ex_corpus again.
    result = voltx_cli(
        "run", "ex.report", "--set", "ex.tokens.top_k=5", cwd=project, env=env, check=False
    )

    assert result.returncode == 1
    table = statuses(result.stdout)
    assert table["ex.tokens"] == "failed"
    assert table["ex.report"] == "blocked"  # nothing downstream runs on it
    failure = next(line for line in result.stdout.splitlines() if "does not match" in line)
    assert "ex_corpus" in failure and f"file '{member}'" in failure
    assert "voltx artifacts repair" in failure

    verify = voltx_cli("artifacts", "verify", cwd=project, env=env, check=False)
    assert verify.returncode == 1 and f"ex_corpus/{member}" in verify.stdout

    voltx_cli("run", "ex.corpus", "--force", cwd=project, env=env)  # the same bytes again

    assert voltx_cli("artifacts", "verify", cwd=project, env=env).returncode == 0
    again = voltx_cli("run", "ex.report", "--set", "ex.tokens.top_k=5", cwd=project, env=env)
    assert statuses(again.stdout)["ex.report"] == "succeeded"


def test_a_deleted_blob_is_not_up_to_date(project: Path, example_site: Path) -> None:
    env = subprocess_env(example_site)
    voltx_cli("run", "ex.report", cwd=project, env=env)
    _member, blob = blob_of("ex_line_stats", project, env)
    blob.unlink()

    result = voltx_cli("run", "ex.report", cwd=project, env=env)

    table = statuses(result.stdout)
    assert table["ex.lines"] == "succeeded" and table["ex.corpus"] == "skipped"
    assert blob.exists()
    assert voltx_cli("artifacts", "verify", cwd=project, env=env).returncode == 0
