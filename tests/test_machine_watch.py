"""Machines a backend keeps between jobs: their idle time is charged to the run's budget, the
scheduler hints which phases are still to come, and the ledger and ``voltx status`` show each
machine's prep and idle time (voltx.machine_watch; docs/concepts.md, "Backends")."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pytest

import voltx
from voltx import PhaseContext, PhaseSpec
from voltx.backend import MachineUsage, UpcomingPhase
from voltx.budget import BudgetConfig, BudgetMeter, Limits
from voltx.cli.commands import machines_section
from voltx.ledger import Ledger
from voltx.machine_watch import MachineWatch, machine_events, upcoming_phases
from voltx.spec import Resources
from voltx.store import ArtifactStore
from voltx.testing import InProcessBackend, phase_plugin, registered_plugin


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def test_idle_machine_time_is_spent_and_stops_the_run_at_its_budget() -> None:
    clock = FakeClock()
    meter = BudgetMeter(BudgetConfig(run=Limits(dollars=1.0)), clock=clock)
    meter.charge_idle("vast", 0.4)
    meter.charge_idle("vast", 0.4)  # the same total again: nothing new
    meter.charge_idle("ssh", 0.1)
    assert meter.spent == pytest.approx(0.5)
    assert meter.check()[0] == []
    meter.charge_idle("vast", 0.95)
    stops, _ = meter.check()
    assert [stop.phase_id for stop in stops] == [None]
    assert "spent $1.05 of the $1.00 budget" in stops[0].reason
    assert meter.snapshot()["idle"] == pytest.approx(1.05)
    # No phase pays for an idle machine.
    assert meter.phase_spent == {}


def test_upcoming_phases_say_when_each_should_be_ready() -> None:
    upstream = {"a": [], "b": ["a"], "c": ["b"], "d": ["a", "x"], "e": ["y"]}
    left = {"a": 0.5, "x": 0.25, "y": None}
    found = upcoming_phases(
        ["b", "c", "d", "e"],
        upstream.__getitem__,
        done={"q"},
        running={"a", "x", "y"},
        hours_left=left.__getitem__,
        resources=lambda phase_id: Resources(gpus=1),
    )
    ready = {phase.phase_id: phase.ready_in_s for phase in found}
    # b waits on a (half an hour left); c on b, not started; d on the slower of a and x; e on a
    # phase without an estimate.
    assert ready == {"b": 1800.0, "c": None, "d": 1800.0, "e": None}
    ready_now = upcoming_phases(
        ["b"], upstream.__getitem__, {"a"}, set(), left.__getitem__, lambda _: Resources()
    )
    assert ready_now == [UpcomingPhase("b", Resources(), 0.0)]


class IdleMachineBackend(InProcessBackend):
    """Runs jobs in this process and says it holds one machine that idles at $3600 an hour
    (a dollar a second) from the first poll on, the way a pooled Vast machine would."""

    name = "idle-machine"

    def __init__(self, **kwargs: object) -> None:
        super().__init__()
        self.hints: list[list[UpcomingPhase]] = []
        self.polled = 0

    def machines(self) -> Sequence[MachineUsage]:
        self.polled += 1
        return [MachineUsage("m1", 3600.0, held_s=60.0, prep_s=2.0, idle_s=float(self.polled))]

    def expect(self, upcoming: Sequence[UpcomingPhase]) -> None:
        self.hints.append(list(upcoming))


def wait_a_while(ctx: PhaseContext) -> None:
    """A phase that outlasts the idle machine's budget (in-process jobs cannot be killed)."""
    time.sleep(4.0)
    (ctx.outputs["waited"] / "done.txt").write_text("done\n")


WAIT = PhaseSpec(id="w.wait", name="wait", entry=f"{__name__}:wait_a_while", produces=("waited",))


def test_a_run_stops_when_an_idle_machine_spends_its_budget_and_status_shows_machines(
    tmp_path: Path,
) -> None:
    store = f"file://{tmp_path / 'store'}"
    backend = IdleMachineBackend()
    with registered_plugin(phase_plugin(WAIT), origin="machine-watch-tests"):
        result = voltx.run("w.wait", backend=backend, store=store, budget=2.5)
    assert result.status == "budget_exceeded"
    # Each poll reports a second more of idle time at a dollar a second: the third crosses
    # $2.50, while the phase itself is free.
    assert 3 <= backend.polled <= 4
    assert backend.hints and backend.hints[0] == []  # nothing else is to start
    events = Ledger(ArtifactStore.open(store), result.run_id).events()
    (machine,) = machine_events(events)
    assert machine.label == "m1" and machine.prep_s == 2.0
    status = voltx.status(store=store)
    assert status.machines == (machine,)
    assert status.spent >= 2.5
    text = machines_section(status.machines)
    assert "m1" in text and "$3600.00" in text and "1 machine(s): prep $2.00, idle $" in text


def test_machine_watch_polls_at_most_every_second_unless_forced() -> None:
    clock = FakeClock()
    meter = BudgetMeter(BudgetConfig(), clock=clock)
    watch = MachineWatch(meter, clock)
    backend = IdleMachineBackend()
    asked: list[int] = []

    def upcoming() -> dict[str, list[UpcomingPhase]]:
        asked.append(1)
        return {backend.name: [UpcomingPhase("p", Resources(), None)]}

    watch.poll({backend.name: backend}, upcoming)
    watch.poll({backend.name: backend}, upcoming)
    assert backend.polled == 1 and backend.hints == [[UpcomingPhase("p", Resources(), None)]]
    watch.poll({backend.name: backend}, upcoming, force=True)
    clock.now += 1.0
    watch.poll({backend.name: backend}, upcoming)
    assert backend.polled == 3 and len(asked) == 3
    assert meter.spent == pytest.approx(3.0)
