"""Run budgets: the spend meter on a fast clock, the ``[budget]`` table, and whole runs that a
budget stops and a larger budget resumes (local jobs at a made-up price)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
import structlog

import voltx
from _support import TEST_PLUGINS, subprocess_env
from voltx.budget import (
    BUDGET_EXIT_CODE,
    BudgetConfig,
    BudgetMeter,
    Limits,
    parse_budget_table,
    spent_so_far,
)
from voltx.errors import ConfigError
from voltx.ledger import Ledger
from voltx.plugins import registered
from voltx.project import load_project
from voltx.store import ArtifactStore
from voltx.testing import InProcessBackend, phase_plugin

# A dollar a second: a budget of cents stops a job within a fraction of a second.
DOLLAR_A_SECOND = 3600.0


class FakeClock:
    """Monotonic seconds that only move when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, hours: float) -> None:
        self.now += hours * 3600


# -- the meter -------------------------------------------------------------------------------


def test_spend_accrues_per_job_from_price_and_uptime() -> None:
    clock = FakeClock()
    meter = BudgetMeter(BudgetConfig(), clock=clock)
    meter.start("a", "job:a", 2.0)
    meter.start("b", "job:b", 1.0)
    clock.advance(1.5)
    assert meter.rate == pytest.approx(3.0)
    assert meter.finish("a") == pytest.approx(3.0)
    clock.advance(1.0)
    meter.check()
    assert meter.phase_spent == pytest.approx({"a": 3.0, "b": 2.5})
    assert meter.spent == pytest.approx(5.5)


def test_jobs_on_one_machine_pay_for_it_once() -> None:
    clock = FakeClock()
    meter = BudgetMeter(BudgetConfig(), clock=clock)
    meter.start("a", "ssh:gpu-box", 4.0)
    meter.start("b", "ssh:gpu-box", 4.0)
    clock.advance(2)
    meter.check()
    assert meter.spent == pytest.approx(8.0)
    assert meter.phase_spent == pytest.approx({"a": 4.0, "b": 4.0})


def test_a_price_that_becomes_known_counts_from_then_on() -> None:
    clock = FakeClock()
    meter = BudgetMeter(BudgetConfig(), clock=clock)
    meter.start("a", "vast:x", 0.0)  # still renting: no price yet
    clock.advance(1)
    meter.set_price("a", 0.5)
    clock.advance(2)
    meter.check()
    assert meter.spent == pytest.approx(1.0)


def test_stop_when_the_spend_reaches_the_budget_naming_both() -> None:
    clock = FakeClock()
    meter = BudgetMeter(BudgetConfig(run=Limits(dollars=10.0)), clock=clock)
    meter.start("a", "job:a", 4.0)
    clock.advance(2)
    assert meter.check() == ([], None)
    clock.advance(0.5)
    stops, _warning = meter.check()
    assert [s.phase_id for s in stops] == [None]
    assert stops[0].reason == "spent $10.00 of the $10.00 budget"


def test_projection_over_the_budget_warns_once() -> None:
    clock = FakeClock()
    meter = BudgetMeter(BudgetConfig(run=Limits(dollars=10.0)), clock=clock)
    meter.start("a", "job:a", 1.0)
    assert meter.check(projected_remaining=5.0) == ([], None)
    clock.advance(1)
    stops, warning = meter.check(projected_remaining=9.5)
    assert stops == []
    assert warning == "projected spend $10.50 crosses the $10.00 budget (spent $1.00 so far)"
    assert meter.check(projected_remaining=20.0) == ([], None)


def test_max_hours_stops_the_run_and_phase_limits_stop_their_phase() -> None:
    clock = FakeClock()
    config = BudgetConfig(
        run=Limits(max_hours=3.0),
        phases={"a": Limits(dollars=1.0), "b": Limits(max_hours=0.5)},
    )
    meter = BudgetMeter(config, clock=clock)
    meter.start("a", "job:a", 1.0)
    meter.start("b", "job:b", 0.0)
    clock.advance(0.25)
    assert meter.check() == ([], None)
    clock.advance(0.25)
    stops, _ = meter.check()
    assert [(s.phase_id, s.reason) for s in stops] == [
        ("b", "phase ran 30.0 min of its 30.0 min limit")
    ]
    meter.finish("b")
    clock.advance(0.5)
    stops, _ = meter.check()
    assert [(s.phase_id, s.reason) for s in stops] == [
        ("a", "phase spent $1.00 of its $1.00 budget")
    ]
    meter.finish("a")
    clock.advance(2.0)
    stops, _ = meter.check()
    assert [(s.phase_id, s.reason) for s in stops] == [(None, "ran 3.00 h of the 3.00 h limit")]


def test_what_a_run_spent_before_counts_against_its_budget() -> None:
    clock = FakeClock()
    meter = BudgetMeter(
        BudgetConfig(run=Limits(dollars=5.0)),
        clock=clock,
        spent_before=5.0,
        phase_spent_before={"a": 5.0},
    )
    stops, _ = meter.check()
    assert stops[0].reason == "spent $5.00 of the $5.00 budget"
    assert meter.snapshot()["phases"] == {"a": 5.0}


# -- the project file ------------------------------------------------------------------------


def test_budget_table_in_voltx_toml(tmp_path: Path) -> None:
    path = tmp_path / "voltx.toml"
    path.write_text(
        "[budget]\ndollars = 40\nmax_hours = 12\ngrace_s = 5\n"
        '[budget.phases."2.1"]\ndollars = 5.0\nmax_hours = 2\n'
    )
    budget = load_project(path).budget
    assert budget == BudgetConfig(
        run=Limits(40.0, 12.0), phases={"2.1": Limits(5.0, 2.0)}, grace_s=5.0
    )
    assert budget.with_run_limits(None, 1.0).run == Limits(40.0, 1.0)


def test_every_bad_budget_value_is_reported_at_once(tmp_path: Path) -> None:
    problems: list[str] = []
    parse_budget_table(
        {"dolars": 3, "max_hours": 0, "grace_s": "soon", "phases": {"2.1": {"dollars": True}}},
        problems,
    )
    assert problems == [
        "budget.dolars: unknown key; did you mean dollars",
        "budget.max_hours: expected a number above 0, got 0",
        "budget.grace_s: expected seconds (a number >= 0), got 'soon'",
        "budget.phases.2.1.dollars: expected a number above 0, got True",
    ]
    path = tmp_path / "voltx.toml"
    path.write_text("[budget]\ndollars = -1\n")
    with pytest.raises(ConfigError, match=r"budget\.dollars: expected a number above 0"):
        load_project(path)


def test_run_refuses_a_budget_that_is_not_positive() -> None:
    with pytest.raises(ConfigError, match="budget must be a number above 0"):
        voltx.run("all", budget=0)


# -- whole runs ------------------------------------------------------------------------------


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    """The test plugins ``slow_pipeline`` and ``priced_backend``, importable here."""
    monkeypatch.syspath_prepend(str(TEST_PLUGINS))
    return {name: importlib.import_module(name) for name in ("slow_pipeline", "priced_backend")}


@pytest.fixture
def priced_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project on the ``priced`` backend (local jobs at a dollar a second)."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "voltx.toml").write_text(
        '[project]\nbackend = "priced"\n\n[budget]\ngrace_s = 5\n\n'
        f"[backends.priced]\ndollars_per_hour = {DOLLAR_A_SECOND}\n"
    )
    # Worker subprocesses import the test plugins as the orchestrator does.
    monkeypatch.setenv("PYTHONPATH", str(TEST_PLUGINS))
    monkeypatch.chdir(folder)
    return folder


def _job_alive(store: Path, phase: str) -> bool:
    for pid_file in store.glob(f"work/jobs/*{phase}*/pid"):
        text = pid_file.read_text().strip()
        if text and Path(f"/proc/{text}").exists():
            stat = Path(f"/proc/{text}/stat").read_text().rsplit(")", 1)[1].split()
            if stat[0] != "Z":
                return True
    return False


@pytest.mark.integration
def test_budget_stops_the_run_and_a_larger_budget_resumes_it(
    priced_project: Path, plugins: dict[str, ModuleType]
) -> None:
    store = priced_project / ".voltx"
    with registered(plugins["slow_pipeline"]), registered(plugins["priced_backend"]):
        started = time.monotonic()
        stopped = voltx.run("slow.b", overrides=["slow.a.seconds=60"], budget=0.3)
        assert time.monotonic() - started < 30
        assert stopped.status == "budget_exceeded"
        assert stopped.phases["slow.a"].status == "stopped"
        assert stopped.phases["slow.a"].reason.startswith("budget: spent $0.")
        assert stopped.phases["slow.b"].status == "stopped"
        assert not _job_alive(store, "slow.a"), "the stopped job still runs"
        ledger = Ledger(ArtifactStore.open(str(store)), stopped.run_id)
        events = ledger.events()
        finished = [e for e in events if e.kind == "run_finished"][-1].data
        assert finished["status"] == "budget_exceeded"
        assert finished["budget"] == 0.3
        assert 0.3 <= finished["spent"] < 5
        assert ledger.phase_states()["slow.a"].state == "stopped"
        snapshot = voltx.status(store=str(store))
        assert snapshot.status == "budget_exceeded"
        first_spend, _ = spent_so_far(events)
        assert snapshot.spent == first_spend > 0
        assert snapshot.phases["slow.a"].spent > 0

        # The same budget again: nothing starts, the message says why.
        again = voltx.run("slow.b", overrides=["slow.a.seconds=60"], budget=0.3)
        assert again.run_id == stopped.run_id and again.status == "budget_exceeded"

        resumed = voltx.run("slow.b", overrides=["slow.a.seconds=0.1"], budget=100)
    assert resumed.run_id == stopped.run_id
    assert resumed.status == "succeeded"
    assert resumed.phases["slow.a"].attempts == 2
    total, phases = spent_so_far(Ledger(ArtifactStore.open(str(store)), resumed.run_id).events())
    assert total > first_spend
    assert set(phases) == {"slow.a", "slow.b"}


@pytest.mark.integration
def test_cli_exits_non_zero_with_one_line_naming_spend_and_budget(priced_project: Path) -> None:
    env = subprocess_env(TEST_PLUGINS, VOLTX_PLUGINS="slow_pipeline,priced_backend")
    args = ["run", "slow.a", "--set", "slow.a.seconds=60", "--budget", "0.25"]
    result = subprocess.run(
        [sys.executable, "-m", "voltx", *args],
        cwd=priced_project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == BUDGET_EXIT_CODE, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("voltx: budget exceeded: run ")
    assert "stopped: spent $0.2" in last and "of the $0.2500 budget" in last
    assert "run it again with a larger --budget" in last
    assert "stopped" in result.stdout
    status = subprocess.run(
        [sys.executable, "-m", "voltx", "status", "--json"],
        cwd=priced_project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    snapshot = json.loads(status.stdout)
    assert snapshot["status"] == "budget_exceeded"
    assert snapshot["phases"]["slow.a"]["status"] == "stopped"
    assert snapshot["spent"] >= 0.25
    table = subprocess.run(
        [sys.executable, "-m", "voltx", "status"],
        cwd=priced_project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert f"budget_exceeded; spent ${snapshot['spent']:.2f}" in table


def _quick(ctx: voltx.PhaseContext) -> None:
    time.sleep(0.05)
    (ctx.outputs["quick_out"] / "done.txt").write_text("done")


def test_projection_over_budget_warns_once_and_the_run_goes_on(
    tmp_path: Path, plugins: dict[str, ModuleType]
) -> None:
    spec = voltx.PhaseSpec(
        id="t.quick",
        name="quick",
        entry=_quick,
        produces=("quick_out",),
        profile_hours={"tiny": 1.0},  # by the estimate it costs $10 at $10/h: over $5
    )
    backend = plugins["priced_backend"].Priced(InProcessBackend(work_dir=tmp_path / "work"), 10.0)
    store = tmp_path / "store"
    with registered(phase_plugin(spec)), structlog.testing.capture_logs() as logs:
        result = voltx.run("t.quick", backend=backend, store=str(store), budget=5.0)
    assert result.status == "succeeded"
    warnings = [e for e in logs if e["event"].startswith("budget: projected spend")]
    assert len(warnings) == 1
    assert "crosses the $5.00 budget" in warnings[0]["event"]
    kinds = [e.kind for e in Ledger(ArtifactStore.open(str(store)), result.run_id).events()]
    assert kinds.count("budget_warning") == 1


def test_a_phase_limit_stops_only_its_phase(tmp_path: Path, plugins: dict[str, ModuleType]) -> None:
    slow = voltx.PhaseSpec(id="t.slow", name="slow", entry=_sleep_forever, produces=("slow_out",))
    quick = voltx.PhaseSpec(id="t.quick", name="quick", entry=_quick, produces=("quick_out",))
    backend = plugins["priced_backend"].Priced(InProcessBackend(work_dir=tmp_path / "work"), 3600.0)
    project = tmp_path / "voltx.toml"
    project.write_text(
        f'[project]\nstore = "{tmp_path / "store"}"\n\n[budget.phases."t.slow"]\ndollars = 0.2\n'
    )
    with registered(phase_plugin(slow, quick)):
        result = voltx.run(["t.slow", "t.quick"], backend=backend, config=project)
    assert result.status == "budget_exceeded"
    assert result.phases["t.slow"].status == "stopped"
    assert result.phases["t.slow"].reason.startswith("budget: phase spent $0.2")
    assert result.phases["t.quick"].status == "succeeded"


def _sleep_forever(ctx: voltx.PhaseContext) -> None:
    deadline = time.monotonic() + 1.0  # in-process jobs cannot be interrupted: end soon
    while time.monotonic() < deadline:
        time.sleep(0.02)
    raise RuntimeError("ran out of time")


def test_an_ssh_host_costs_its_configured_rate_once() -> None:
    from voltx.errors import BackendError
    from voltx_backends.ssh import SSHBackend, SSHJobHandle

    backend = SSHBackend(host="127.0.0.1", port=2222, dollars_per_hour=2.5)
    first, second = (SSHJobHandle(backend, f"j{n}", f"/jobs/j{n}") for n in (1, 2))
    assert (first.price_per_hour, second.price_per_hour) == (2.5, 2.5)
    assert first.billing_key == second.billing_key
    assert backend.quote(voltx.Resources()).dollars_per_hour == 2.5
    with pytest.raises(BackendError, match="dollars_per_hour must not be negative"):
        SSHBackend(host="127.0.0.1", dollars_per_hour=-1)
