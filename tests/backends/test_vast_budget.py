"""A budget against the fake Vast API: the run stops, every instance is destroyed, the ledger
says ``budget_exceeded``, and the re-run with a larger budget resumes the run and finishes.

The fake's machines cost $0.40 an hour, so a budget of a twentieth of a cent lasts a few seconds
of rental: no fast clock is needed, only a tiny budget.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import fake_vast as fakes
import pytest
from fake_vast import FakeVast, run_events, worker_env, write_project

from _support import voltx_cli
from voltx.budget import BUDGET_EXIT_CODE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

fake_vast = fakes.fake_vast

RUN_TIMEOUT_S = 90


@pytest.fixture
def project(tmp_path: Path, fake_vast: FakeVast) -> Path:
    """A project on the fake Vast with quick settings, and a short grace period for stops."""
    return write_project(tmp_path, grace_s=2)


@pytest.fixture
def env(fake_vast: FakeVast) -> dict[str, str]:
    return worker_env(fake_vast)


voltx = functools.partial(voltx_cli, timeout=RUN_TIMEOUT_S, check=False)


def test_budget_stops_the_run_destroys_every_instance_and_a_larger_budget_finishes(
    project: Path, env: dict[str, str], fake_vast: FakeVast, tmp_path: Path
) -> None:
    stopped = voltx(
        "run", "slow.b", "--set", "slow.a.seconds=60", "--budget", "0.0005", cwd=project, env=env
    )
    assert stopped.returncode == BUDGET_EXIT_CODE, stopped.stderr
    last = stopped.stderr.strip().splitlines()[-1]
    assert last.startswith("voltx: budget exceeded: run "), last
    assert "of the $0.0005 budget" in last
    # Every instance is gone at the fake: the stopped job's and any other.
    assert [(i.id, i.label, i.actual_status) for i in fake_vast.live()] == []
    assert len(fake_vast.created()) == 1
    # The job ran on its instance when the budget stopped it.
    assert any((tmp_path / "remote" / "jobs").glob("*slow.a*/outputs/*/part-1.txt"))

    status = json.loads(voltx("status", "--json", cwd=project, env=env).stdout)
    assert status["status"] == "budget_exceeded"
    assert status["phases"]["slow.a"]["status"] == "stopped"
    assert status["phases"]["slow.a"]["reason"].startswith("budget: spent $0.0005")
    assert status["phases"]["slow.b"]["status"] == "stopped"
    run_id = status["run_id"]
    finished = [e for e in run_events(project, run_id) if e["kind"] == "run_finished"]
    data = finished[-1]["data"]
    assert isinstance(data, dict)
    assert data["status"] == "budget_exceeded" and data["budget"] == 0.0005
    assert data["spent"] >= 0.0005

    resumed = voltx(
        "run", "slow.b", "--set", "slow.a.seconds=0.1", "--budget", "1", cwd=project, env=env
    )
    assert resumed.returncode == 0, resumed.stderr
    after = json.loads(voltx("status", "--json", cwd=project, env=env).stdout)
    assert after["run_id"] == run_id  # the same run, continued
    assert after["status"] == "succeeded"
    assert {p: s["status"] for p, s in after["phases"].items()} == {
        "slow.a": "succeeded",
        "slow.b": "succeeded",
    }
    assert after["phases"]["slow.a"]["attempts"] == 2
    assert [(i.id, i.label, i.actual_status) for i in fake_vast.live()] == []
    labels = [i.label for i in fake_vast.created()]
    # Pooled (the default): the stopped run's machine, then one for the rest of the chain.
    assert labels == [f"voltx-{run_id}-m1", f"voltx-{run_id}-m1"]
    spends = [e for e in run_events(project, run_id) if e["kind"] == "run_finished"]
    final = spends[-1]["data"]
    assert isinstance(final, dict) and final["spent"] > data["spent"]
