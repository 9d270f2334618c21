"""A pooled machine that idles still costs money: the run's budget counts it, the ledger keeps
each machine's prep and idle time, ``voltx status`` shows them, and a limit reached while a
machine idles stops the run and leaves nothing rented (docs/vast.md, "Machine pool").

The fake's offers are cut to one core each here, so ``slow.a`` and ``slow.side`` cannot share a
machine: ``slow.a`` ends quickly and its machine idles, kept for ``slow.join`` (which fits it and
waits on ``slow.side``), while ``slow.side`` runs on a second machine.
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
    folder = write_project(tmp_path, grace_s=2, pool=True, pool_gather_s=0.3, pool_idle_s=60.0)
    for offer in fake_vast.offers.values():
        offer["cpu_cores_effective"] = 1.0
    return folder


@pytest.fixture
def env(fake_vast: FakeVast) -> dict[str, str]:
    return worker_env(fake_vast)


voltx = functools.partial(voltx_cli, timeout=RUN_TIMEOUT_S, check=False)


def test_a_budget_reached_while_a_machine_idles_stops_the_run_and_counts_the_idle_time(
    project: Path, env: dict[str, str], fake_vast: FakeVast
) -> None:
    args = ("--set", "slow.a.seconds=0.2", "--set", "slow.side.seconds=60")
    stopped = voltx("run", "slow.join", *args, "--budget", "0.002", cwd=project, env=env)
    assert stopped.returncode == BUDGET_EXIT_CODE, stopped.stderr
    assert [(i.id, i.label, i.actual_status) for i in fake_vast.live()] == []
    rented = fake_vast.created()  # slow.a's machine and slow.side's, in either order
    assert sorted(i.label[-3:] for i in rented) == ["-m1", "-m2"]

    status = json.loads(voltx("status", "--json", cwd=project, env=env).stdout)
    assert status["status"] == "budget_exceeded"
    assert status["phases"]["slow.a"]["status"] == "succeeded"
    assert status["phases"]["slow.side"]["status"] == "stopped"
    events = run_events(project, status["run_id"])
    finished = [e["data"] for e in events if e["kind"] == "run_finished"][-1]
    assert isinstance(finished, dict)
    # The idle machine's time is part of what was spent, and no phase's.
    assert finished["idle"] > 0 and finished["spent"] >= 0.002
    assert sum(finished["phases"].values()) < finished["spent"]
    machines = sorted(status["machines"], key=lambda m: m["idle_s"])
    assert {m["label"] for m in machines} == {i.label for i in rented}
    busy, idle = machines  # slow.side's, then slow.a's
    # Kept while slow.join (which fits it) waited on slow.side, until the stop ended the run.
    assert idle["released"] == "" and idle["jobs_run"] == 1
    assert idle["idle_s"] > 1.0 and idle["prep_s"] > 0
    assert idle["dollars_per_hour"] in (0.40, 0.45)  # the two 4090 offers
    assert busy["idle_s"] < 1.0

    shown = voltx("status", cwd=project, env=env).stdout
    assert "machines:" in shown and idle["label"] in shown
    assert "2 machine(s): prep $" in shown and "run ended" in shown
