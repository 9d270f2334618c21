"""Artifacts depend only on their inputs and config: two clean runs of the built-in demo, in two
folders, give the same digest for every artifact (durations and hosts live in metrics and
lineage, never in artifact content), so a rerun elsewhere is a cache hit."""

from __future__ import annotations

from pathlib import Path

import pytest

import voltx
from voltx.store import ArtifactStore

pytest.importorskip("voltx_phases")
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _demo_digests(folder: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    folder.mkdir()
    monkeypatch.chdir(folder)
    result = voltx.run("all", profile="tiny")
    assert result.ok, {pid: p.reason for pid, p in result.phases.items() if p.reason}
    store = ArtifactStore.open(str(folder / ".voltx"))
    return {name: store.resolve(name).digest for name in store.names()}


def test_two_clean_demo_runs_give_identical_digests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _demo_digests(tmp_path / "a", monkeypatch)
    second = _demo_digests(tmp_path / "b", monkeypatch)
    assert {"codebook_hnsw", "vfn_training_report", "scaled_vfn"} <= set(first)
    differing = sorted(name for name in first if first[name] != second.get(name))
    assert set(first) == set(second)
    assert differing == []
