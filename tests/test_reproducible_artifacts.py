"""Artifacts depend only on their inputs and config: two clean runs of the built-in demo, in two
folders, give the same digest for every artifact (durations and hosts live in metrics and
lineage, never in artifact content), so a rerun elsewhere is a cache hit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from _support import subprocess_env
from voltx.store import ArtifactStore

pytest.importorskip("voltx_phases")
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _start_demo(folder: Path) -> subprocess.Popen[str]:
    folder.mkdir()
    return subprocess.Popen(
        [sys.executable, "-m", "voltx", "run", "all", "--profile", "tiny"],
        cwd=folder,
        env=subprocess_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _digests(folder: Path) -> dict[str, str]:
    store = ArtifactStore.open(str(folder / ".voltx"))
    return {name: store.resolve(name).digest for name in store.names()}


def test_two_clean_demo_runs_give_identical_digests(tmp_path: Path) -> None:
    # The two runs go side by side (the machine's cores are shared between them), as two
    # users on one machine would run them.
    runs = {name: _start_demo(tmp_path / name) for name in ("a", "b")}
    for name, process in runs.items():
        out, err = process.communicate(timeout=1200)
        assert process.returncode == 0, f"demo {name} failed:\n{out[-3000:]}\n{err[-3000:]}"
    first, second = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert {"codebook_hnsw", "vfn_training_report", "scaled_vfn", "benchmark_report"} <= set(first)
    differing = sorted(name for name in first if first[name] != second.get(name))
    assert set(first) == set(second)
    assert differing == []
