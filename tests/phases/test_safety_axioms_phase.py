"""Phase 3.3 on a tiny store the pipeline itself trained: the refined axioms catch more held-out
attacks than the constant ones within the FP target, a stop keeps a checkpoint, a SIGKILL and
rerun give the bytes of an uninterrupted run, and bad input is refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _support import kill_job_at_checkpoints

torch = pytest.importorskip("torch")

import structlog  # noqa: E402
from safetensors import safe_open  # noqa: E402

import voltx  # noqa: E402
from voltx import PhaseStopped  # noqa: E402
from voltx.checkpoints import CheckpointManager  # noqa: E402
from voltx.context import MetricsReporter, PhaseContext  # noqa: E402
from voltx.store import ArtifactStore  # noqa: E402
from voltx.testing import InProcessBackend, memory_store_url  # noqa: E402
from voltx_phases.generation import VOLT_X_ARTIFACTS  # noqa: E402
from voltx_phases.hard_core.safety_config import BENIGN_SOURCES, SAFETY_PROFILES  # noqa: E402
from voltx_phases.hard_core.safety_file import load_axioms  # noqa: E402
from voltx_phases.hard_core.safety_refinement import run as run_phase  # noqa: E402

pytestmark = pytest.mark.slow
INPUTS = (*VOLT_X_ARTIFACTS, *BENIGN_SOURCES)
FP_TARGET = 0.03


@pytest.fixture(scope="session")
def tiny_store(run_on_tiny_model_store: Callable[[str, str], str]) -> str:
    """The tiny profile's 3.3, run once per test session on a copy of the tiny model store."""
    return run_on_tiny_model_store("3.3", "safety-store")


def _metrics(store: str, folder: Path) -> dict[str, Any]:
    report = ArtifactStore.open(store).get("safety_axioms_report", folder)
    metrics: dict[str, Any] = json.loads((Path(report) / "metrics.json").read_text())
    return metrics


def test_refined_axioms_catch_more_held_out_attacks_within_the_fp_target(
    tiny_store: str, tmp_path: Path
) -> None:
    metrics = _metrics(tiny_store, tmp_path / "report")
    held = metrics["held_out"]
    assert held["after"]["attacks_caught"] > held["before"]["attacks_caught"]
    assert held["after"]["false_positive_rate"] <= FP_TARGET
    # The constraint is honoured where the thresholds were chosen: no training benign flagged.
    assert metrics["train"]["after"]["benign_flagged"] == 0
    losses = [row["loss"] for row in metrics["loss"]]
    assert losses[-1] < losses[0]
    # Split by template: no adversarial source is on both sides.
    for group, sides in metrics["labelled_set"].items():
        if group != "benign":
            assert sides["held_out"]["sources"] >= 1 and sides["train"]["sources"] >= 1
    assert (tmp_path / "report" / "error_rates.png").stat().st_size > 1000


def test_the_artifact_reads_back_as_five_axioms(tiny_store: str, tmp_path: Path) -> None:
    path = ArtifactStore.open(tiny_store).get("safety_axioms", tmp_path / "axioms")
    axioms = load_axioms(path)
    metrics = _metrics(tiny_store, tmp_path / "report")
    assert [a.name for a in axioms] == list(metrics["thresholds"])
    for axiom in axioms:
        assert axiom.threshold == pytest.approx(metrics["thresholds"][axiom.name])
    file = Path(path) if Path(path).is_file() else Path(path) / "safety_axioms.safetensors"
    with safe_open(str(file), framework="np") as handle:
        assert handle.metadata()["frames"] == metrics["frames"] == "encoded"


def _inputs(store: str, folder: Path) -> dict[str, Path]:
    source = ArtifactStore.open(store)
    return {name: Path(source.get(name, folder / name)) for name in INPUTS}


def _context(inputs: dict[str, Path], root: Path, stop: threading.Event) -> PhaseContext:
    outputs = {name: root / "out" / name for name in ("safety_axioms", "safety_axioms_report")}
    for folder in (*outputs.values(), root / "metrics"):
        folder.mkdir(parents=True, exist_ok=True)
    log = structlog.get_logger("test")
    return PhaseContext(
        run_id="test",
        phase_id="3.3",
        config=SAFETY_PROFILES["tiny"],
        inputs=inputs,
        outputs=outputs,
        work_dir=root,
        log=log,
        metrics=MetricsReporter(root / "metrics", log),
        checkpoints=CheckpointManager(root / "checkpoints"),
        profile="tiny",
        stop=stop,
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_a_stop_keeps_a_checkpoint_and_the_rerun_gives_the_same_bytes(
    tiny_store: str, tmp_path: Path
) -> None:
    inputs = _inputs(tiny_store, tmp_path / "inputs")
    stop = threading.Event()
    stop.set()
    stopped = _context(inputs, tmp_path / "stopped", stop)
    with pytest.raises(PhaseStopped, match="step 1"):
        run_phase(stopped)
    assert stopped.checkpoints.latest() is not None
    assert stopped.checkpoints.latest().step == 1  # type: ignore[union-attr]
    stop.clear()
    run_phase(stopped)
    uninterrupted = _context(inputs, tmp_path / "whole", threading.Event())
    run_phase(uninterrupted)
    assert _files(tmp_path / "stopped" / "out") == _files(tmp_path / "whole" / "out")


def _cli(project: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "voltx", *args],
        cwd=project,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


RUN_ARGS = (
    "run",
    "3.3",
    "--max-attempts",
    "10",
    "--set",
    "3.3.checkpoint_every_steps=2",
    "--set",
    "3.3.steps=300",
)


def _project(store: str, project: Path) -> None:
    project.mkdir(parents=True)
    target = ArtifactStore.open(str(project / ".voltx"))
    for name, path in _inputs(store, project.parent / "inputs").items():
        target.add(name, path)


def _digests(project: Path) -> dict[str, str]:
    store = ArtifactStore.open(str(project / ".voltx"))
    return {name: store.resolve(name).digest for name in ("safety_axioms", "safety_axioms_report")}


@pytest.mark.integration
def test_sigkill_mid_training_then_rerun_gives_identical_bytes(
    tiny_store: str, tmp_path: Path
) -> None:
    baseline, interrupted = tmp_path / "a" / "project", tmp_path / "b" / "project"
    _project(tiny_store, baseline)
    _project(tiny_store, interrupted)
    reference = _cli(baseline, *RUN_ARGS)
    _, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err

    process = _cli(interrupted, *RUN_ARGS)
    kills = kill_job_at_checkpoints(process, interrupted, "3.3", [20, 120])
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert len(kills) == 2, f"only killed at {kills}"
    assert err.count("job lost; resubmitting") == 2
    assert _digests(interrupted) == _digests(baseline)


def test_datasets_without_benign_code_are_refused_in_one_line(
    tiny_store: str, tmp_path: Path
) -> None:
    url = memory_store_url()
    target = ArtifactStore.open(url)
    for name, path in _inputs(tiny_store, tmp_path / "inputs").items():
        if name in BENIGN_SOURCES:
            empty = tmp_path / f"{name}.jsonl"
            empty.write_text(
                '{"id": "a", "query": "q", "solution": "", "tests": ["assert True"]}\n'
            )
            path = empty
        target.add(name, path)
    result = voltx.run(
        "3.3", backend=InProcessBackend(tmp_path / "jobs"), store=url, profile="tiny"
    )
    reason = result.phases["3.3"].reason or ""
    assert not result.ok
    assert "0 benign program(s)" in reason and "humaneval" in reason
    assert "\n" not in reason
