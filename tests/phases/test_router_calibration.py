"""Phase 3.1 on a tiny store the pipeline itself trained: the router learns (held-out accuracy
above chance, rising), the artifact and report are as documented, a SIGKILL mid-training
resumes byte for byte, and a stop request leaves a checkpoint."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import structlog

from _support import kill_job_at_checkpoints

torch = pytest.importorskip("torch")

import voltx  # noqa: E402
from voltx import PhaseContext, PhaseStopped  # noqa: E402
from voltx.checkpoints import CheckpointManager  # noqa: E402
from voltx.context import MetricsReporter  # noqa: E402
from voltx.store import ArtifactStore  # noqa: E402
from voltx.testing import InProcessBackend  # noqa: E402
from voltx_phases.hard_core import router_calibration  # noqa: E402
from voltx_phases.hard_core.router_config import ROUTER_PROFILES  # noqa: E402
from voltx_phases.hard_core.specs import PHASES  # noqa: E402
from voltx_phases.hard_core.strands_file import STRAND_NAMES, load_strands  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def tiny_store(copy_tiny_model_store: Callable[[str], str]) -> Path:
    """A copy of the session's tiny model store (1.2, 2.1 and everything upstream)."""
    return Path(copy_tiny_model_store("router-store"))


@pytest.fixture(scope="session")
def calibrated(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny store after 3.1 ran on it."""
    threads = torch.get_num_threads()
    result = voltx.run(
        "3.1",
        backend=InProcessBackend(tmp_path_factory.mktemp("router-jobs")),
        store=str(tiny_store),
    )
    torch.set_num_threads(threads)
    result.raise_for_status()
    return tiny_store


def _checkout(store: Path, name: str, dest: Path) -> Path:
    return ArtifactStore.open(str(store)).get(name, dest / name)


def test_tiny_profile_beats_chance_with_a_rising_curve(calibrated: Path, tmp_path: Path) -> None:
    report = _checkout(calibrated, "router_calibration_report", tmp_path)
    metrics = json.loads((report / "metrics.json").read_text())
    curve = metrics["accuracy_curve"]
    assert curve[0][0] == 0 and curve[-1][0] == ROUTER_PROFILES["tiny"].steps
    assert metrics["held_out_accuracy"] > 0.2, metrics["held_out_accuracy"]
    # Rising: the learnt strands route the held-out queries better than the constant ones.
    assert curve[-1][1] > curve[0][1], curve
    assert metrics["held_out_accuracy"] == pytest.approx(curve[-1][1])
    assert set(metrics["per_strand"]) == set(STRAND_NAMES)
    for strand in metrics["per_strand"].values():
        assert 0.0 <= strand["precision"] <= 1.0 and 0.0 <= strand["recall"] <= 1.0
        assert strand["train_queries"] > 0 and strand["held_out_queries"] > 0
    assert (report / "accuracy_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (report / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"

    strands = load_strands(_checkout(calibrated, "router_calibration", tmp_path))
    assert [s.name for s in strands] == list(STRAND_NAMES)
    for strand in strands:
        assert abs(float(np.linalg.norm(strand.capability)) - 1.0) < 1e-5
        assert strand.threshold == pytest.approx(metrics["per_strand"][strand.name]["threshold"])


def test_stop_request_commits_a_checkpoint(tiny_store: Path, tmp_path: Path) -> None:
    spec = next(s for s in PHASES if s.id == "3.1")  # 3.2 and 3.3 share the tuple
    inputs = {name: _checkout(tiny_store, name, tmp_path / "in") for name in spec.requires}
    outputs = {name: tmp_path / "out" / name for name in spec.produces}
    for folder in outputs.values():
        folder.mkdir(parents=True)
    (tmp_path / "metrics").mkdir()
    ctx = PhaseContext(
        run_id="stop-test",
        phase_id="3.1",
        config=ROUTER_PROFILES["tiny"],
        inputs=inputs,
        outputs=outputs,
        work_dir=tmp_path,
        log=structlog.get_logger(),
        metrics=MetricsReporter(tmp_path / "metrics", structlog.get_logger()),
        checkpoints=CheckpointManager(tmp_path / "checkpoints"),
    )
    ctx.stop.set()
    threads = torch.get_num_threads()
    with pytest.raises(PhaseStopped, match="step 1"):
        router_calibration.run(ctx)
    torch.set_num_threads(threads)
    latest = ctx.checkpoints.latest()
    assert latest is not None and latest.step == 1
    assert not any(any(folder.iterdir()) for folder in outputs.values())


# -- bit-exact resume after SIGKILL ----------------------------------------------------------


def _project(tiny_store: Path, project: Path) -> None:
    """A CLI project whose store holds the tiny upstream artifacts."""
    project.mkdir(parents=True)
    # Without the checkpoints of earlier 3.1 runs: the test watches this run's own.
    shutil.copytree(tiny_store, project / ".voltx")
    shutil.rmtree(project / ".voltx" / "checkpoints" / "3.1", ignore_errors=True)


def _cli(project: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voltx",
            "run",
            "3.1",
            "--max-attempts",
            "5",
            "--set",
            "3.1.checkpoint_every_steps=5",
        ],
        cwd=project,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _digests(project: Path) -> dict[str, str]:
    store = ArtifactStore.open(str(project / ".voltx"))
    return {
        name: store.resolve(name).digest
        for name in ("router_calibration", "router_calibration_report")
    }


@pytest.mark.integration
def test_sigkill_mid_training_resumes_byte_identical(tiny_store: Path, tmp_path: Path) -> None:
    baseline, interrupted = tmp_path / "a", tmp_path / "b"
    _project(tiny_store, baseline)
    _project(tiny_store, interrupted)
    reference = _cli(baseline)
    _, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err

    process = _cli(interrupted)
    kills = kill_job_at_checkpoints(process, interrupted, "3.1", [100])
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert len(kills) == 1 and kills[0] < ROUTER_PROFILES["tiny"].steps
    assert err.count("job lost; resubmitting") == 1
    assert _digests(interrupted) == _digests(baseline)
