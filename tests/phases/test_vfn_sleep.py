"""Phase 4.3, sleep consolidation, on a tiny store the pipeline trained (with a 4.2 output
made from 2.1's soft core): the gate both ways, the report, and bit-exact resume."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _support import kill_job_at_checkpoints

torch = pytest.importorskip("torch")

from _alignment_store import build_store  # noqa: E402

import voltx  # noqa: E402
from voltx.store import ArtifactStore  # noqa: E402
from voltx.testing import InProcessBackend  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def sleep_store(tmp_path_factory: pytest.TempPathFactory, tiny_model_store: str) -> Iterator[str]:
    """The tiny store, with 4.2's output pinned as a copy of 4.1's (2.1's soft core)."""
    root = tmp_path_factory.mktemp("sleep-store")
    url = build_store(root, tiny_model_store)
    store = ArtifactStore.open(url)
    store.add("vfn_rlvf", store.get("vfn_e2e", root / "vfn_rlvf"))
    yield url


def _copy(store: str, root: Path) -> Path:
    target = root / "store"
    shutil.copytree(store, target)
    return target


def _run(store: Path, root: Path) -> Any:
    threads = torch.get_num_threads()
    result = voltx.run(
        "4.3", backend=InProcessBackend(root / "jobs"), store=str(store), profile="tiny"
    )
    torch.set_num_threads(threads)
    return result


def test_a_consolidation_within_the_limit_commits(sleep_store: str, tmp_path: Path) -> None:
    store_path = _copy(sleep_store, tmp_path)
    result = _run(store_path, tmp_path)
    assert result.ok, result.phases["4.3"].reason
    store = ArtifactStore.open(str(store_path))
    report = store.get("vfn_sleep_report", tmp_path / "report")
    summary = json.loads((report / "metrics.json").read_text())
    assert summary["old_drop"] <= summary["max_old_drop"] == 0.03
    assert summary["new_gain"] == summary["new_after"] - summary["new_before"]
    assert summary["old_problems"] == 4 and summary["new_problems"] == 3
    assert summary["rehearsal_pairs"] > 0 and summary["steps"] == 6
    assert (report / "loss_curve.png").stat().st_size > 0
    weights = store.get("vfn_sleep", tmp_path / "weights")
    assert len(list(weights.glob("*.safetensors"))) == 3


def test_a_consolidation_that_forgets_fails_and_commits_nothing(
    sleep_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old problems' pass rate is made to fall by 10 points across consolidation (the tiny
    model passes nothing, so a real drop cannot be provoked): the phase fails and the store has
    no `vfn_sleep` and no report."""
    from voltx_phases.alignment import vfn_sleep

    measured: list[str] = []

    def scripted(policy: Any, problems: Any, settings: Any, seed: int, chunk: int = 64) -> float:
        which = "old" if seed == vfn_sleep._EVAL_SEED else "new"
        measured.append(which)
        return (
            {"old": 0.5, "new": 0.1}[which]
            if measured.count(which) == 1
            else {"old": 0.4, "new": 0.2}[which]
        )

    monkeypatch.setattr(vfn_sleep, "pass_rate", scripted)
    store_path = _copy(sleep_store, tmp_path)
    result = _run(store_path, tmp_path)
    phase = result.phases["4.3"]
    assert phase.status == "failed"
    assert "consolidation rejected" in phase.reason and "0.5000 -> 0.4000" in phase.reason
    store = ArtifactStore.open(str(store_path))
    assert not store.has("vfn_sleep") and not store.has("vfn_sleep_report")
    assert measured == ["old", "new", "old", "new"]


RUN_ARGS = (
    "run",
    "4.3",
    "--profile",
    "tiny",
    "--max-attempts",
    "10",
    "--set",
    "4.3.keep_checkpoints=50",
)


def _cli(project: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "voltx", *RUN_ARGS],
        cwd=project,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _digests(project: Path) -> dict[str, str]:
    store = ArtifactStore.open(str(project / ".voltx"))
    return {name: store.resolve(name).digest for name in ("vfn_sleep", "vfn_sleep_report")}


@pytest.mark.integration
def test_sigkill_mid_phase_resumes_byte_identical(sleep_store: str, tmp_path: Path) -> None:
    baseline, interrupted = tmp_path / "a", tmp_path / "b"
    for project in (baseline, interrupted):
        project.mkdir()
        shutil.copytree(sleep_store, project / ".voltx")
    reference = _cli(baseline)
    _, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err

    process = _cli(interrupted)
    kills = kill_job_at_checkpoints(process, interrupted, "4.3", [0, 4])
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert len(kills) == 2, f"only killed at {kills}"
    assert _digests(interrupted) == _digests(baseline)


def test_stop_request_checkpoints_and_stops(sleep_store: str, tmp_path: Path) -> None:
    store_path = _copy(sleep_store, tmp_path)
    calls = {"n": 0}

    def stop_at_the_third_step(self: Any) -> bool:
        calls["n"] += 1
        return calls["n"] == 3

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(voltx.PhaseContext, "stop_requested", stop_at_the_third_step)
        voltx.run(
            "4.3",
            backend=InProcessBackend(tmp_path / "jobs"),
            store=str(store_path),
            profile="tiny",
            overrides={"4.3.checkpoint_every_steps": 100},
        )
    folders = (store_path / "checkpoints" / "4.3").glob("*/step-*")
    steps = {int(f.name.removeprefix("step-")) for f in folders}
    # The replay's checkpoint (step 0) and the one the stop made at step 3 (a resumed attempt
    # may then finish and make the last one).
    assert {0, 3} <= steps <= {0, 3, 6}, steps
