"""End-to-end runs on the local backend: real worker subprocesses, a real file store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from _support import TEST_PLUGINS, subprocess_env, voltx_cli, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def run_table(stdout: str) -> dict[str, str]:
    """phase id -> status, from the table `voltx run` prints."""
    rows = {}
    for line in stdout.splitlines()[2:]:
        parts = line.split()
        if len(parts) >= 2 and parts[1] in ("succeeded", "skipped", "failed", "blocked"):
            rows[parts[0]] = parts[1]
    return rows


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


@pytest.fixture
def example_env(example_site: Path) -> dict[str, str]:
    return subprocess_env(example_site)


def test_skip_rerun_and_force(project: Path, example_env: dict[str, str]) -> None:
    first = voltx_cli("run", "ex.report", cwd=project, env=example_env)
    assert set(run_table(first.stdout).values()) == {"succeeded"}
    assert len(run_table(first.stdout)) == 4

    second = voltx_cli("run", "ex.report", cwd=project, env=example_env)
    assert set(run_table(second.stdout).values()) == {"skipped"}
    assert "up to date (fingerprint" in second.stdout

    changed = voltx_cli(
        "run", "ex.report", "--set", "ex.tokens.top_k=5", cwd=project, env=example_env
    )
    assert run_table(changed.stdout) == {
        "ex.corpus": "skipped",
        "ex.lines": "skipped",
        "ex.tokens": "succeeded",
        "ex.report": "succeeded",
    }
    assert "config changed: top_k" in changed.stderr

    forced = voltx_cli("run", "ex.report", "--force", cwd=project, env=example_env)
    assert set(run_table(forced.stdout).values()) == {"succeeded"}

    report = project / "report"
    voltx_cli("artifacts", "get", "ex_report", str(report), cwd=project, env=example_env)
    assert (report / "report.md").read_text().startswith("# Corpus report")


def test_failed_phase_blocks_descendants_and_independent_lane_finishes(
    project: Path,
) -> None:
    env = subprocess_env(TEST_PLUGINS, VOLTX_PLUGINS="slow_pipeline")
    result = voltx_cli(
        "run",
        "slow.after_fail,slow.side",
        "--set",
        "slow.side.seconds=0.5",
        cwd=project,
        env=env,
        check=False,
    )
    assert result.returncode == 1
    statuses = run_table(result.stdout)
    assert statuses["slow.fail"] == "failed"
    assert statuses["slow.after_fail"] == "blocked"
    assert statuses["slow.side"] == "succeeded"
    assert statuses["slow.a"] == "succeeded"
    assert "deliberate failure" in result.stdout
    status = voltx_cli("status", "--json", cwd=project, env=env)
    phases = json.loads(status.stdout)["phases"]
    assert phases["slow.fail"]["status"] == "failed"


def _job_pids(store: Path) -> list[int]:
    return [int(p.read_text()) for p in store.glob("work/jobs/*/pid") if p.read_text().strip()]


def _alive(pgid: int) -> bool:
    """True while a process of the group lives; zombies (exited, unreaped) do not count."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def test_sigkill_orchestrator_then_rerun(project: Path) -> None:
    env = subprocess_env(TEST_PLUGINS, VOLTX_PLUGINS="slow_pipeline")
    args = ["run", "slow.c", "--set", "slow.b.seconds=3", "--set", "slow.a.seconds=0.1"]
    orchestrator = subprocess.Popen(
        [sys.executable, "-m", "voltx", *args],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store = project / ".voltx"
    # Kill as soon as phase b's job is running (its first output file exists).
    wait_for(lambda: any(store.glob("work/jobs/*slow.b*/outputs/slow_b/part-1.txt")))
    orchestrator.send_signal(signal.SIGKILL)
    orchestrator.wait()

    refs = {p.stem for p in (store / "refs").glob("*.json")}
    assert "slow_a" in refs
    assert "slow_b" not in refs, "a half-written output became visible"

    rerun = voltx_cli(*args, cwd=project, env=env)
    statuses = run_table(rerun.stdout)
    assert statuses["slow.a"] == "skipped"
    assert statuses["slow.b"] == "succeeded"
    assert statuses["slow.c"] == "succeeded"
    assert "re-attached" in rerun.stderr
    assert not [pid for pid in _job_pids(store) if _alive(pid)], "a job process survived"
    # The re-attached job was the original one: phase b ran exactly once.
    assert len(list(store.glob("work/jobs/*slow.b*"))) == 1


def test_ctrl_c_cancels_every_job(project: Path) -> None:
    env = subprocess_env(TEST_PLUGINS, VOLTX_PLUGINS="slow_pipeline")
    orchestrator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voltx",
            "run",
            "slow.b",
            "slow.side",
            "--set",
            "slow.b.seconds=30",
            "--set",
            "slow.side.seconds=30",
        ],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = project / ".voltx"
    wait_for(lambda: any(store.glob("work/jobs/*slow.b*/outputs/slow_b/part-1.txt")))
    orchestrator.send_signal(signal.SIGINT)
    _stdout, stderr = orchestrator.communicate(timeout=30)
    assert orchestrator.returncode == 130, stderr
    pids = _job_pids(store)
    assert pids
    wait_for(lambda: not [pid for pid in pids if _alive(pid)], timeout=30)
    status = voltx_cli("status", "--json", cwd=project, env=env)
    snapshot = json.loads(status.stdout)
    assert snapshot["status"] == "cancelled"
    assert snapshot["phases"]["slow.b"]["status"] == "cancelled"
    assert snapshot["phases"]["slow.side"]["status"] == "cancelled"


def test_planted_secret_reaches_the_phase_but_no_file_or_log(project: Path) -> None:
    secret = "planted-Secret-9f3a7c1e"
    env = subprocess_env(TEST_PLUGINS, VOLTX_PLUGINS="slow_pipeline", SERVICE_API_KEY=secret)
    result = voltx_cli(
        "run", "secret.use", "--set", f"secret.use.api_token={secret}", cwd=project, env=env
    )
    assert run_table(result.stdout) == {"secret.use": "succeeded"}
    import hashlib

    proof = project / "proof"
    voltx_cli("artifacts", "get", "secret_proof", str(proof), cwd=project, env=env)
    assert (proof / "proof.txt").read_text() == hashlib.sha256(secret.encode()).hexdigest()
    logs = voltx_cli("logs", "secret.use", cwd=project, env=env)
    assert "using token" in logs.stdout
    for text in (result.stdout, result.stderr, logs.stdout):
        assert secret not in text
    leaked = [
        path
        for path in project.rglob("*")
        if path.is_file() and secret.encode() in path.read_bytes()
    ]
    assert leaked == []


def test_lost_job_is_resubmitted(project: Path) -> None:
    env = subprocess_env(TEST_PLUGINS, VOLTX_PLUGINS="slow_pipeline")
    orchestrator = subprocess.Popen(
        [sys.executable, "-m", "voltx", "run", "slow.b", "--set", "slow.b.seconds=2"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = project / ".voltx"
    wait_for(lambda: any(store.glob("work/jobs/*slow.b-1/outputs/slow_b/part-1.txt")))
    (first_pid,) = [int(p.read_text()) for p in store.glob("work/jobs/*slow.b-1/pid")]
    # The machine "vanishes": the whole job dies at once, wrapper included, with no exit code.
    os.killpg(first_pid, signal.SIGKILL)
    stdout, stderr = orchestrator.communicate(timeout=60)
    assert orchestrator.returncode == 0, stderr
    assert run_table(stdout)["slow.b"] == "succeeded"
    assert "job lost; resubmitting" in stderr
    status = json.loads(voltx_cli("status", "--json", cwd=project, env=env).stdout)
    assert status["phases"]["slow.b"]["attempts"] == 2
