"""Whole ``voltx run --backend vast`` runs against the fake Vast API: the chaos tests.

The orchestrator is a real ``voltx`` subprocess (so it can be interrupted and killed), the fake
API and its sshd-backed instances live in the test process, and each phase's worker runs on its
"instance" over SSH like on a rented machine. Every test ends with no live instance at the fake.
"""

from __future__ import annotations

import functools
import json
import signal
import subprocess
import sys
from pathlib import Path

import fake_vast as fakes
import pytest
from fake_vast import FakeVast, worker_env, write_project

from _support import CommandLineWatch, statuses, voltx_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

fake_vast = fakes.fake_vast

RUN_TIMEOUT_S = 90


@pytest.fixture
def project(tmp_path: Path, fake_vast: FakeVast) -> Path:
    """A project whose backend is the fake Vast, with settings that keep the runs quick."""
    return write_project(tmp_path)


@pytest.fixture
def env(fake_vast: FakeVast) -> dict[str, str]:
    return worker_env(fake_vast)


voltx = functools.partial(voltx_cli, timeout=RUN_TIMEOUT_S)


def start(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "voltx", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def no_live_instances(fake: FakeVast) -> None:
    assert [(i.id, i.label, i.actual_status) for i in fake.live()] == []


def job_started(tmp_path: Path, phase: str) -> bool:
    """Whether the phase's worker runs on its instance (its first output file exists)."""
    return any((tmp_path / "remote" / "jobs").glob(f"*{phase}*/outputs/*/part-1.txt"))


def test_run_rents_one_pooled_machine_destroys_it_and_never_shows_the_key(
    project: Path, env: dict[str, str], fake_vast: FakeVast, tmp_path: Path
) -> None:
    with CommandLineWatch(fake_vast.api_key) as watch:
        result = voltx("run", "slow.b", cwd=project, env=env)
    assert statuses(result.stdout) == {"slow.a": "succeeded", "slow.b": "succeeded"}
    no_live_instances(fake_vast)
    run_id = json.loads((project / ".voltx" / "records" / "runs" / "latest.json").read_text())
    labels = sorted(i.label for i in fake_vast.created())
    # The pool (the default): the chain slow.a -> slow.b runs on one machine.
    assert labels == [f"voltx-{run_id['run_id']}-m1"]
    # The log is read from what was kept here: the instance is long gone.
    logs = voltx("logs", "slow.b", cwd=project, env=env)
    assert "phase finished" in logs.stdout
    # The planted key: only ever in the Authorization header.
    key = fake_vast.api_key
    assert watch.scans > 0 and watch.seen == []
    assert fake_vast.key_in_query == 0
    for text in (result.stdout, result.stderr, logs.stdout, logs.stderr):
        assert key not in text
    leaked = [
        str(path)
        for folder in (project, tmp_path / "remote")
        for path in folder.rglob("*")
        if path.is_file() and key.encode() in path.read_bytes()
    ]
    assert leaked == []
    # The per-instance host keys and the run's key pair went with the instances.
    vast_dir = project / ".voltx" / "work" / "vast"
    assert not list((vast_dir / "known_hosts").glob("*"))
    assert not list((vast_dir / "keys").glob("*"))


def test_failing_phase_in_stormy_weather_leaves_nothing_rented(
    project: Path, env: dict[str, str], fake_vast: FakeVast
) -> None:
    # Everything at once: the cheapest offer vanishes on rent, the next machine's containers die
    # while loading, and the API rate-limits list and show. One phase then fails on its own.
    fake_vast.vanish_offers(5000)
    fake_vast.exit_while_loading(102)
    fake_vast.rate_limit_burst(4, "/api/v1/instances/")
    fake_vast.rate_limit_burst(4, "/api/v0/instances/", json_body=True)
    result = voltx("run", "slow.after_fail", cwd=project, env=env, check=False)
    assert result.returncode == 1, result.stderr
    assert statuses(result.stdout) == {
        "slow.a": "succeeded",
        "slow.fail": "failed",
        "slow.after_fail": "blocked",
    }
    assert "deliberate failure" in result.stdout
    no_live_instances(fake_vast)
    assert any(
        i.machine_id == 102 and i.status_msg.startswith("Error") for i in fake_vast.created()
    )
    assert {r.status for r in fake_vast.requests} >= {200, 404, 429}


def test_ctrl_c_while_provisioning_destroys_the_instance(
    project: Path, env: dict[str, str], fake_vast: FakeVast
) -> None:
    fake_vast.loading_s = 3600  # the instance never gets past loading
    orchestrator = start("run", "slow.a", cwd=project, env=env)
    fake_vast.wait_for(lambda: fake_vast.instances, "the rental")
    orchestrator.send_signal(signal.SIGINT)
    _out, err = orchestrator.communicate(timeout=RUN_TIMEOUT_S)
    assert orchestrator.returncode == 130, err
    no_live_instances(fake_vast)
    snapshot = json.loads(voltx("status", "--json", cwd=project, env=env).stdout)
    assert snapshot["phases"]["slow.a"]["status"] == "cancelled"


def test_ctrl_c_during_a_job_destroys_the_instance(
    project: Path, env: dict[str, str], fake_vast: FakeVast, tmp_path: Path
) -> None:
    orchestrator = start("run", "slow.a", "--set", "slow.a.seconds=60", cwd=project, env=env)
    fake_vast.wait_for(lambda: job_started(tmp_path, "slow.a"), "the job to run", RUN_TIMEOUT_S)
    orchestrator.send_signal(signal.SIGINT)
    _out, err = orchestrator.communicate(timeout=RUN_TIMEOUT_S)
    assert orchestrator.returncode == 130, err
    no_live_instances(fake_vast)
    snapshot = json.loads(voltx("status", "--json", cwd=project, env=env).stdout)
    assert snapshot["status"] == "cancelled"


def test_killed_orchestrator_the_rerun_adopts_the_instance(
    project: Path, env: dict[str, str], fake_vast: FakeVast
) -> None:
    fake_vast.loading_s = 2.0
    orchestrator = start("run", "slow.a", cwd=project, env=env)
    fake_vast.wait_for(lambda: fake_vast.instances, "the rental")
    orchestrator.send_signal(signal.SIGKILL)
    orchestrator.communicate()
    # Nothing could clean up after a SIGKILL: the instance is still rented...
    assert len(fake_vast.live()) == 1
    rerun = voltx("run", "slow.a", cwd=project, env=env)
    assert statuses(rerun.stdout) == {"slow.a": "succeeded"}
    # ...and the rerun of the same run used it instead of renting a second one.
    assert len(fake_vast.created()) == 1
    assert "re-attached" in rerun.stderr
    no_live_instances(fake_vast)


def test_killed_orchestrator_the_rerun_re_attaches_to_the_running_job(
    project: Path, env: dict[str, str], fake_vast: FakeVast, tmp_path: Path
) -> None:
    args = ("run", "slow.a", "--set", "slow.a.seconds=2")
    orchestrator = start(*args, cwd=project, env=env)
    fake_vast.wait_for(lambda: job_started(tmp_path, "slow.a"), "the job to run", RUN_TIMEOUT_S)
    orchestrator.send_signal(signal.SIGKILL)
    orchestrator.communicate()
    rerun = voltx(*args, cwd=project, env=env)
    assert statuses(rerun.stdout) == {"slow.a": "succeeded"}
    assert len(fake_vast.created()) == 1
    # The job ran once: the rerun followed it to the end instead of starting it again.
    assert len(list((tmp_path / "remote" / "jobs").glob("*slow.a*"))) == 1
    status = json.loads(voltx("status", "--json", cwd=project, env=env).stdout)
    assert status["phases"]["slow.a"]["attempts"] == 1
    no_live_instances(fake_vast)


def test_preemption_mid_job_loses_the_job_and_the_rerun_rents_anew(
    project: Path, env: dict[str, str], fake_vast: FakeVast, tmp_path: Path
) -> None:
    orchestrator = start("run", "slow.a", "--set", "slow.a.seconds=2", cwd=project, env=env)
    fake_vast.wait_for(lambda: job_started(tmp_path, "slow.a"), "the job to run", RUN_TIMEOUT_S)
    (first,) = fake_vast.live()
    fake_vast.preempt(first.id)
    out, err = orchestrator.communicate(timeout=RUN_TIMEOUT_S)
    assert orchestrator.returncode == 0, err
    assert statuses(out) == {"slow.a": "succeeded"}
    assert "job lost; resubmitting" in err
    first_again, second = fake_vast.created()
    assert first_again.id == first.id and second.id != first.id
    status = json.loads(voltx("status", "--json", cwd=project, env=env).stdout)
    assert status["phases"]["slow.a"]["attempts"] == 2
    no_live_instances(fake_vast)
