"""One run at a time, secrets kept out of files and tracebacks, --force, signal retries.

Each test is one of the reproductions of issue 10, run as a user would: real `voltx` subprocesses
on the local backend and a real folder store.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _support import TEST_PLUGINS, subprocess_env, voltx_cli, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LEASE = Path(".voltx/records/runs/lease.json")


def _status(project: Path, env: dict[str, str]) -> dict[str, object]:
    result = json.loads(voltx_cli("status", "--json", cwd=project, env=env).stdout)
    assert isinstance(result, dict)
    return result


def _step_count(project: Path, env: dict[str, str]) -> dict[str, object]:
    out = project / f"out-{time.monotonic_ns()}"
    voltx_cli("artifacts", "get", "step_count", str(out), cwd=project, env=env)
    data = json.loads((out / "result.json").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


# -- one run at a time -----------------------------------------------------------------------


def test_a_second_run_in_the_same_store_is_refused_naming_the_first(project: Path) -> None:
    env = subprocess_env(TEST_PLUGINS, VOLTX_PLUGINS="slow_pipeline")
    first = subprocess.Popen(
        [sys.executable, "-m", "voltx", "run", "slow.a", "--set", "slow.a.seconds=4"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: (project / LEASE).exists())
        second = voltx_cli(
            "run", "slow.a", "--set", "slow.a.seconds=4", cwd=project, env=env, check=False
        )
        # Reads need no lease while the first run holds it.
        voltx_cli("plan", "slow.a", cwd=project, env=env)
        voltx_cli("status", cwd=project, env=env)
    finally:
        _stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert second.returncode != 0
    lines = second.stderr.strip().splitlines()
    assert lines[-1].startswith("voltx: error: store ")
    assert f"pid {first.pid} on {socket.gethostname()}" in lines[-1]
    assert "is busy" in lines[-1]
    assert "Traceback" not in second.stderr
    # The first run gave the lease back: a third run goes ahead (and finds slow.a up to date).
    assert not (project / LEASE).exists()
    voltx_cli("run", "slow.a", "--set", "slow.a.seconds=4", cwd=project, env=env)


def test_a_lease_whose_owner_died_is_taken_over_with_a_warning(project: Path) -> None:
    env = subprocess_env(TEST_PLUGINS, VOLTX_PLUGINS="slow_pipeline")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lease = project / LEASE
    lease.parent.mkdir(parents=True)
    lease.write_text(
        json.dumps(
            {
                "lease_id": "0" * 32,
                "run_id": "20260101-000000-dead00",
                "host": socket.gethostname(),
                "pid": gone.pid,
                "since": "2026-01-01T00:00:00Z",
                "heartbeat_ns": time.time_ns(),
            }
        )
    )
    result = voltx_cli("run", "slow.a", cwd=project, env=env)
    assert "took over a stale run lease" in result.stderr
    assert "20260101-000000-dead00" in result.stderr
    assert not lease.exists()


# -- secrets ---------------------------------------------------------------------------------


def test_debug_traceback_redacts_a_secret(project: Path) -> None:
    secret = "planted-Secret-5d1e0b7a"
    env = subprocess_env(TEST_PLUGINS, VOLTX_PLUGINS="slow_pipeline")
    # The target names the secret, so the error message (and its traceback) would show it.
    result = voltx_cli(
        "--debug",
        "run",
        f"no-such-{secret}",
        "--set",
        f"secret.use.api_token={secret}",
        cwd=project,
        env=env,
        check=False,
    )
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert secret not in result.stderr
    assert "no-such-***" in result.stderr


def test_job_documents_are_private_and_hold_no_secret(project: Path) -> None:
    secret = "planted-Secret-77c2e91b"
    # A registered secret (the value of a secret-named environment variable) given under a
    # harmless key: it reaches the phase, but not the job document.
    env = subprocess_env(TEST_PLUGINS, VOLTX_PLUGINS="slow_pipeline", SERVICE_API_KEY=secret)
    voltx_cli("run", "slow.a", "--set", f"slow.a.label={secret}", cwd=project, env=env)
    (job,) = (project / ".voltx").glob("work/jobs/*slow.a-1/job.json")
    assert stat.S_IMODE(job.stat().st_mode) == 0o600
    assert secret not in job.read_text()
    assert json.loads(job.read_text())["config"]["label"] == "***"
    out = project / "out"
    voltx_cli("artifacts", "get", "slow_a", str(out), cwd=project, env=env)
    assert (out / "part-1.txt").read_text() == f"slow.a {secret}\n"
    lineage = voltx_cli("artifacts", "show", "slow_a", "--json", cwd=project, env=env).stdout
    assert secret not in lineage


# -- --force ---------------------------------------------------------------------------------


def test_force_retrains_from_scratch(project: Path) -> None:
    env = subprocess_env(TEST_PLUGINS, VOLTX_PLUGINS="checkpoint_steps")
    settings = ("--set", "ckpt.steps.steps=8", "--set", "ckpt.steps.sleep_s=0.01")
    voltx_cli("run", "ckpt.steps", *settings, cwd=project, env=env)
    assert _step_count(project, env)["start"] == 0
    forced = voltx_cli("run", "ckpt.steps", "--force", *settings, cwd=project, env=env)
    assert "succeeded" in forced.stdout
    # Retrained from step 0, not resumed from the first run's final checkpoint.
    assert _step_count(project, env) == {
        "start": 0,
        "total": sum(range(8)),
        "stages": ["stage-000.txt", "stage-005.txt"],
    }


# -- a worker killed by a signal -------------------------------------------------------------


def _worker_of(wrapper: int) -> int:
    """The worker process the job's wrapper started (its other child is the heartbeat loop)."""
    children = Path(f"/proc/{wrapper}/task/{wrapper}/children").read_text().split()
    workers = [
        int(pid)
        for pid in children
        if b"worker" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    ]
    assert len(workers) == 1, children
    return workers[0]


def test_a_worker_killed_by_sigkill_is_retried_and_resumes(project: Path) -> None:
    env = subprocess_env(TEST_PLUGINS, VOLTX_PLUGINS="checkpoint_steps")
    orchestrator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voltx",
            "run",
            "ckpt.steps",
            "--set",
            "ckpt.steps.steps=60",
            "--set",
            "ckpt.steps.sleep_s=0.05",
        ],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = project / ".voltx"
    try:
        wait_for(lambda: any(store.glob("checkpoints/ckpt.steps/*/step-000000003")))
        (wrapper,) = [int(p.read_text()) for p in store.glob("work/jobs/*ckpt.steps-1/pid")]
        worker = _worker_of(wrapper)
        # What the kernel's OOM killer does: SIGKILL to the worker; its wrapper lives on to
        # record the exit code (137).
        os.kill(worker, signal.SIGKILL)
        _stdout, stderr = orchestrator.communicate(timeout=120)
    finally:
        if orchestrator.poll() is None:
            orchestrator.kill()
    assert orchestrator.returncode == 0, stderr
    assert "job killed; resubmitting" in stderr
    status = _status(project, env)
    phase = status["phases"]["ckpt.steps"]  # type: ignore[index]
    assert phase["status"] == "succeeded"
    assert phase["attempts"] == 2
    events = [
        json.loads(path.read_text()) for path in sorted(store.glob("records/runs/*/events/*.json"))
    ]
    killed = [e for e in events if e["kind"] == "killed"]
    assert [e["data"]["reason"] for e in killed] == ["killed by SIGKILL (exit code 137)"]
    result = _step_count(project, env)
    assert result["start"] > 0  # resumed from the first attempt's checkpoint
    assert result["total"] == sum(range(60))
