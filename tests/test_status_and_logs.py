"""`voltx status` and `voltx logs -f` from a second process, while a local run goes and after its
orchestrator was SIGKILLed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from _support import TEST_PLUGINS, subprocess_env, voltx_cli, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


@pytest.fixture
def env() -> dict[str, str]:
    return subprocess_env(TEST_PLUGINS, VOLTX_PLUGINS="slow_pipeline")


@pytest.fixture
def orchestrators() -> Iterator[list[subprocess.Popen[str]]]:
    """Orchestrators a test starts; any still going at the end is stopped like Ctrl-C."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=30)


def _start(
    project: Path, env: dict[str, str], orchestrators: list[subprocess.Popen[str]], *args: str
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "voltx", "run", *args],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    orchestrators.append(process)
    return process


def _status(project: Path, env: dict[str, str]) -> dict[str, object]:
    snapshot: dict[str, object] = json.loads(
        voltx_cli("status", "--json", cwd=project, env=env).stdout
    )
    return snapshot


def _phases(snapshot: dict[str, object]) -> dict[str, str]:
    phases = snapshot["phases"]
    assert isinstance(phases, dict)
    return {pid: phase["status"] for pid, phase in phases.items()}


def test_status_during_a_run_and_after_its_orchestrator_was_killed(
    project: Path, env: dict[str, str], orchestrators: list[subprocess.Popen[str]]
) -> None:
    orchestrator = _start(
        project,
        env,
        orchestrators,
        "slow.c",
        "--set",
        "slow.a.seconds=0.1",
        "--set",
        "slow.b.seconds=3",
    )
    store = project / ".voltx"
    wait_for(lambda: any(store.glob("work/jobs/*slow.b*/outputs/slow_b/part-1.txt")))

    during = _status(project, env)
    assert during["status"] == "running"
    assert _phases(during) == {"slow.a": "succeeded", "slow.b": "running", "slow.c": "pending"}

    orchestrator.send_signal(signal.SIGKILL)
    orchestrator.communicate(timeout=30)
    after = _status(project, env)
    assert after["status"] == "stale"
    assert f"pid {orchestrator.pid}" in str(after["detail"])
    assert _phases(after) == {"slow.a": "succeeded", "slow.b": "stale", "slow.c": "pending"}
    table = voltx_cli("status", cwd=project, env=env).stdout
    assert "orchestrator (pid" in table and "is gone" in table
    assert "was running when the orchestrator died" in table

    # Continuing the run makes it live again; once it ends, status says how it ended.
    rerun = voltx_cli(
        "run",
        "slow.c",
        "--set",
        "slow.a.seconds=0.1",
        "--set",
        "slow.b.seconds=3",
        cwd=project,
        env=env,
    )
    assert "re-attached" in rerun.stderr
    final = _status(project, env)
    assert final["status"] == "succeeded" and final["detail"] == ""
    assert _phases(final)["slow.b"] == _phases(final)["slow.c"] == "succeeded"


def test_logs_follow_waits_for_the_phase_and_ends_with_its_job(
    project: Path, env: dict[str, str], orchestrators: list[subprocess.Popen[str]]
) -> None:
    orchestrator = _start(
        project,
        env,
        orchestrators,
        "slow.b",
        "--set",
        "slow.a.seconds=1",
        "--set",
        "slow.b.seconds=1.5",
    )
    store = project / ".voltx"
    # Follow as soon as the run exists, before slow.b has a job: logs -f waits for it.
    wait_for(lambda: (store / "records" / "runs" / "latest.json").exists())
    followed = voltx_cli("logs", "slow.b", "-f", cwd=project, env=env)
    result_files = list(store.glob("work/jobs/*slow.b*/result.json"))
    assert result_files, "logs -f ended before the job did"
    lines = [json.loads(line) for line in followed.stdout.splitlines() if line.startswith("{")]
    events = [line["event"] for line in lines]
    assert events[0] == "phase starting" and events[-1] == "phase finished"
    assert {line["phase_id"] for line in lines} == {"slow.b"}
    _stdout, stderr = orchestrator.communicate(timeout=60)
    assert orchestrator.returncode == 0, stderr

    # Without -f: what the finished job left, at once; a phase the run lacks is an error.
    again = voltx_cli("logs", "slow.b", cwd=project, env=env)
    assert again.stdout == followed.stdout
    missing = voltx_cli("logs", "slow.c", "-f", cwd=project, env=env, check=False)
    assert missing.returncode != 0 and "not part of run" in missing.stderr


def test_logs_follow_gives_up_when_the_orchestrator_is_gone(
    project: Path, env: dict[str, str], orchestrators: list[subprocess.Popen[str]]
) -> None:
    orchestrator = _start(project, env, orchestrators, "slow.b", "--set", "slow.a.seconds=30")
    store = project / ".voltx"
    wait_for(lambda: any(store.glob("work/jobs/*slow.a*/outputs/slow_a/part-1.txt")))
    orchestrator.send_signal(signal.SIGKILL)
    orchestrator.communicate(timeout=30)
    try:
        waiting = voltx_cli("logs", "slow.b", "-f", cwd=project, env=env, check=False)
        assert waiting.returncode != 0
        assert "orchestrator is gone" in waiting.stderr
    finally:
        for pid_file in store.glob("work/jobs/*/pid"):
            if pid_file.read_text().strip():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(int(pid_file.read_text()), signal.SIGKILL)
