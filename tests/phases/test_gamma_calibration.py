"""Phase 3.2 on a tiny store the pipeline trained: calibration, bad input, stop, SIGKILL resume."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog

from _support import kill_job_at_checkpoints

torch = pytest.importorskip("torch")

import voltx  # noqa: E402
from voltx.checkpoints import CheckpointManager  # noqa: E402
from voltx.store import ArtifactStore  # noqa: E402
from voltx.testing import InProcessBackend  # noqa: E402
from voltx_phases.generation import VOLT_X_ARTIFACTS  # noqa: E402
from voltx_phases.hard_core.gamma_config import GAMMA_PROFILES  # noqa: E402
from voltx_phases.hard_core.gamma_curve import GammaCurve  # noqa: E402

pytestmark = pytest.mark.slow
INPUTS = (*VOLT_X_ARTIFACTS, "humaneval", "mbpp")


@pytest.fixture(scope="session")
def calibrated_store(run_on_tiny_model_store: Callable[[str, str], str]) -> tuple[str, Path]:
    """The tiny profile's 3.2, run once per test session on a copy of the tiny model store."""
    url = run_on_tiny_model_store("3.2", "gamma-store")
    return url, Path(url).parent


def _copy_inputs(source: str, target: str, scratch: Path, **replaced: Path) -> None:
    """Add 3.2's inputs to the store `target` (so they are pinned: nothing upstream runs)."""
    store, into = ArtifactStore.open(source), ArtifactStore.open(target)
    for name in INPUTS:
        into.add(name, replaced.get(name) or store.get(name, scratch / "copy" / name))


def test_tiny_calibration_lowers_held_out_ece_and_reports_its_noise_floor(
    calibrated_store: tuple[str, Path],
) -> None:
    url, root = calibrated_store
    store = ArtifactStore.open(url)
    curve = GammaCurve.load(store.get("gamma_calibration", root / "out" / "curve"))
    assert curve.method in ("isotonic", "temperature", "platt") and curve.signal == "confidence"
    report = store.get("gamma_calibration_report", root / "out" / "report")
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["after"]["ece_10"] <= metrics["before"]["ece_10"]
    assert metrics["held_out_problems"] == 5 and metrics["problems"] >= 10
    assert metrics["held_out_pairs"] == 5 * GAMMA_PROFILES["tiny"].samples_per_problem
    assert 0 < metrics["noise_floor"]["ece_10_mean"] <= metrics["noise_floor"]["ece_10_p95"]
    assert set(metrics["before"]) == {"ece_10", "ece_15", "brier", "log_loss"}
    assert (report / "reliability.png").read_bytes()[:4] == b"\x89PNG"


def test_no_problem_with_tests_is_refused_in_one_line(
    calibrated_store: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = calibrated_store
    untested = tmp_path / "untested.jsonl"
    line = {"id": "p1", "query": "Return 1", "solution": "def f():\n    return 1\n", "tests": []}
    untested.write_text(json.dumps(line) + "\n")
    target = str(tmp_path / "store")
    _copy_inputs(url, target, tmp_path, humaneval=untested, mbpp=untested)
    result = voltx.run("3.2", backend=InProcessBackend(tmp_path / "jobs"), store=target)
    reason = result.phases["3.2"].reason
    assert not result.ok and "\n" not in reason
    assert "no problems with tests in humaneval, mbpp" in reason


class _StoppingContext:
    """What `collect_pairs` uses of a PhaseContext, asking to stop after the first batch."""

    phase_id = "3.2"

    def __init__(self, folder: Path) -> None:
        self.checkpoints = CheckpointManager(folder)
        self.log = structlog.get_logger("test")
        self.metrics = self
        self.batches = 0

    def log_metrics(self, step: int, **values: float) -> None:
        assert values["pairs"] > 0

    def progress(self, step: int, total: int | None = None, **values: float) -> None:
        self.batches = step

    def stop_requested(self) -> bool:
        return self.batches >= 1


def test_a_stop_request_checkpoints_the_pairs_collected(
    calibrated_store: tuple[str, Path], tmp_path: Path
) -> None:
    from voltx_phases.datasets.schema import read_problems
    from voltx_phases.hard_core.gamma_pairs import collect_pairs
    from voltx_phases.models.inference import VoltModel

    url, _ = calibrated_store
    store = ArtifactStore.open(url)
    paths = {name: store.get(name, tmp_path / name) for name in (*VOLT_X_ARTIFACTS, "mbpp")}
    problems = list(read_problems(next(paths["mbpp"].glob("*.jsonl"))))[:8]
    context = _StoppingContext(tmp_path / "checkpoints")
    config = GAMMA_PROFILES["tiny"]
    with pytest.raises(voltx.PhaseStopped, match="batch 1 of 2"):
        collect_pairs(context, config, VoltModel.from_artifacts(paths, "cpu"), problems)  # type: ignore[arg-type]
    latest = context.checkpoints.latest()
    assert latest is not None and latest.step == 1
    state = json.loads((Path(latest.path) / "trainer.json").read_text())
    assert len(state["pass_rate"]) == config.problems_per_batch * config.samples_per_problem


def _cli(project: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "voltx", *args],
        cwd=project,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _outputs(project: Path) -> dict[str, Any]:
    store = ArtifactStore.open(str(project / ".voltx"))
    return {
        name: store.resolve(name).digest
        for name in ("gamma_calibration", "gamma_calibration_report")
    }


@pytest.mark.integration
def test_sigkill_mid_collection_resumes_byte_identical(
    calibrated_store: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = calibrated_store
    projects = []
    for name in ("reference", "killed"):
        project = tmp_path / name
        project.mkdir()
        _copy_inputs(url, str(project / ".voltx"), tmp_path / name)
        projects.append(project)
    reference, killed = projects
    run_args = ("run", "3.2", "--max-attempts", "5")
    process = _cli(reference, *run_args)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err

    process = _cli(killed, *run_args)
    # Kill after the first batch, then after the third of four.
    kills = kill_job_at_checkpoints(process, killed, "3.2", [1, 3])
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert len(kills) == 2, f"only killed at {kills}"
    assert _outputs(killed) == _outputs(reference)
