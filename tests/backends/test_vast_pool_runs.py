"""Whole ``voltx run``s on a pooled Vast backend (``pool = true``) against the fake Vast API.

The orchestrator is a real ``voltx`` subprocess, as in ``test_vast_runs.py``: the scheduler
submits each phase when it is ready, and the pool decides where it runs. Every test ends with no
live instance at the fake.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import fake_vast as fakes
import pytest
from fake_vast import FakeVast, worker_env, write_project

from _support import statuses, voltx_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

fake_vast = fakes.fake_vast

RUN_TIMEOUT_S = 90


@pytest.fixture
def project(tmp_path: Path, fake_vast: FakeVast) -> Path:
    return write_project(tmp_path, pool=True, pool_gather_s=0.3, pool_idle_s=30.0)


@pytest.fixture
def env(fake_vast: FakeVast) -> dict[str, str]:
    return worker_env(fake_vast)


voltx = functools.partial(voltx_cli, timeout=RUN_TIMEOUT_S)


def test_a_chain_of_three_phases_rents_one_instance(
    project: Path, env: dict[str, str], fake_vast: FakeVast
) -> None:
    result = voltx("run", "slow.c", cwd=project, env=env)
    assert statuses(result.stdout) == {
        "slow.a": "succeeded",
        "slow.b": "succeeded",
        "slow.c": "succeeded",
    }
    (instance,) = fake_vast.created()  # the fake's log: one rental for the three
    run = json.loads((project / ".voltx" / "records" / "runs" / "latest.json").read_text())
    assert instance.label == f"voltx-{run['run_id']}-m1"
    # The end of the run gave back the machine still kept for its idle window.
    assert fake_vast.live() == []


def test_preempting_a_shared_instance_resumes_both_phases_on_a_replacement(
    project: Path, env: dict[str, str], fake_vast: FakeVast, tmp_path: Path
) -> None:
    args = ("run", "slow.a", "slow.side", "--set", "slow.a.seconds=3", "--set")
    orchestrator = subprocess.Popen(
        [sys.executable, "-m", "voltx", *args, "slow.side.seconds=3"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def both_started() -> bool:
        jobs = tmp_path / "remote" / "jobs"
        return all(any(jobs.glob(f"*{p}*/outputs/*/part-1.txt")) for p in ("slow.a", "slow.side"))

    try:
        fake_vast.wait_for(both_started, "both phases to run", RUN_TIMEOUT_S)
        (shared,) = fake_vast.live()
        fake_vast.preempt(shared.id)
        out, err = orchestrator.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if orchestrator.poll() is None:
            orchestrator.kill()
            orchestrator.communicate()
    assert orchestrator.returncode == 0, err
    assert statuses(out) == {"slow.a": "succeeded", "slow.side": "succeeded"}
    first, replacement = fake_vast.created()
    assert first.id == shared.id and replacement.id != shared.id
    status = json.loads(voltx("status", "--json", cwd=project, env=env).stdout)
    assert status["phases"]["slow.a"]["attempts"] == 2
    assert status["phases"]["slow.side"]["attempts"] == 2
    assert fake_vast.live() == []


def test_killed_orchestrator_the_rerun_adopts_the_pooled_instance(
    project: Path, env: dict[str, str], fake_vast: FakeVast
) -> None:
    fake_vast.loading_s = 2.0
    orchestrator = subprocess.Popen(
        [sys.executable, "-m", "voltx", "run", "slow.a"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    fake_vast.wait_for(lambda: fake_vast.instances, "the rental")
    orchestrator.kill()
    orchestrator.wait()
    # Nothing could clean up after a SIGKILL: the pooled machine is still rented ...
    (left,) = fake_vast.live()
    assert left.label.endswith("-m1")
    rerun = voltx("run", "slow.a", cwd=project, env=env)
    assert statuses(rerun.stdout) == {"slow.a": "succeeded"}
    # ... and the rerun of the same run found it by its label instead of renting again.
    assert [i.id for i in fake_vast.created()] == [left.id]
    assert fake_vast.live() == []
