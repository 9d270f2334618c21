"""A stopped job (Ctrl-C, cancel, budget) asks its phase to stop before it interrupts it.

A phase that checks `ctx.stop_requested()` commits a checkpoint at the step it reached and the
re-run continues from there; one that never checks is interrupted after the worker's patience,
keeping what it last committed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _support import TEST_PLUGINS, statuses, subprocess_env
from voltx.store import ArtifactStore
from voltx.worker import STOP_PATIENCE_S

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ENV = subprocess_env(TEST_PLUGINS, VOLTX_PLUGINS="stoppable")


def start(project: Path, phase: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "voltx", "run", phase],
        cwd=project,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_step(project: Path, step: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for progress in project.glob(".voltx/work/jobs/*/progress.json"):
            try:
                if json.loads(progress.read_text())["step"] >= step:
                    return
            except (ValueError, OSError):
                pass  # replaced while we read it
        time.sleep(0.05)
    raise AssertionError(f"the phase never reached step {step}")


def stop(orchestrator: subprocess.Popen[str]) -> tuple[str, str]:
    orchestrator.send_signal(signal.SIGTERM)
    out, err = orchestrator.communicate(timeout=60)
    assert orchestrator.returncode == 130, err
    return out, err


def job_log(project: Path) -> str:
    (log,) = project.glob(".voltx/work/jobs/*-1/log")
    return log.read_text()


def checkpoint_steps(project: Path, phase: str) -> list[int]:
    folders = project.glob(f".voltx/checkpoints/{phase}/*/step-*")
    return sorted(int(folder.name.removeprefix("step-")) for folder in folders)


def test_a_phase_that_listens_checkpoints_where_it_stopped_and_resumes_there(
    tmp_path: Path,
) -> None:
    orchestrator = start(tmp_path, "stop.polite")
    wait_for_step(tmp_path, 5)
    stop(orchestrator)
    assert "phase stopped on request" in job_log(tmp_path)
    # Its periodic checkpoints are rarer than the run: the stop made this one.
    (stopped_at,) = checkpoint_steps(tmp_path, "stop.polite")
    assert 5 <= stopped_at < 400

    rerun = subprocess.run(
        [sys.executable, "-m", "voltx", "run", "stop.polite"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert statuses(rerun.stdout) == {"stop.polite": "succeeded"}
    store = ArtifactStore.open(str(tmp_path / ".voltx"))
    result = store.get("stop.polite.sum", tmp_path / "out") / "result.json"
    assert json.loads(result.read_text()) == {"start": stopped_at, "total": 400 * 401 // 2}


def test_a_phase_that_does_not_listen_is_interrupted_after_the_patience(tmp_path: Path) -> None:
    orchestrator = start(tmp_path, "stop.stubborn")
    wait_for_step(tmp_path, 3)
    began = time.monotonic()
    stop(orchestrator)
    took = time.monotonic() - began
    log = job_log(tmp_path)
    assert "phase stopped by a signal" in log and "phase stopped on request" not in log
    assert checkpoint_steps(tmp_path, "stop.stubborn") == []
    print(f"interrupted {took:.1f} s after SIGTERM (patience {STOP_PATIENCE_S:g} s)")
