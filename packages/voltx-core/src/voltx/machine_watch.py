"""The machines a run's backends rent, as the scheduler watches them (docs/concepts.md, "Backends").

A backend that keeps rented machines between jobs (the Vast pool) bills for time no job's meter
covers: a machine idle between phases. On every poll (at most every `POLL_EVERY_S`) the scheduler
hands each backend it uses the phases still to start there (`Backend.expect`: an idle machine may
wait for one that fits it), and charges the idle time each reports (`Backend.machines`) to the
run's budget, so a limit reached while a machine idles stops the run, and closing the backends
then destroys the machine. When the run ends, each machine goes into the ledger (``machine``
events: its prep and idle time with their dollars) for ``voltx status``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

import structlog

from voltx.backend import Backend, MachineUsage, UpcomingPhase
from voltx.budget import BudgetMeter
from voltx.ledger import Event, Ledger
from voltx.spec import Resources

log = structlog.get_logger(__name__)

# Asking every backend about its machines costs a lock each; a second is fine-grained enough
# for a budget counted in cents per hour.
POLL_EVERY_S = 1.0


class MachineWatch:
    """Idle machine time into the budget, hints to the backends, machines into the ledger."""

    def __init__(self, meter: BudgetMeter, clock: Callable[[], float]) -> None:
        self.meter = meter
        self.clock = clock
        self._last_poll: float | None = None
        self._seen: dict[str, Sequence[MachineUsage]] = {}

    def poll(
        self,
        backends: Mapping[str, Backend],
        upcoming: Callable[[], Mapping[str, list[UpcomingPhase]]],
        *,
        force: bool = False,
    ) -> None:
        """Hint each backend and charge its idle machines (at most every `POLL_EVERY_S`)."""
        now = self.clock()
        if not force and self._last_poll is not None and now - self._last_poll < POLL_EVERY_S:
            return
        self._last_poll = now
        phases = upcoming() if backends else {}
        for name, backend in backends.items():
            try:
                backend.expect(phases.get(name, []))
                machines = backend.machines()
            except Exception as exc:  # a hint or a report that fails must not stop the run
                log.warning("cannot ask the backend about its machines", backend=name, error=exc)
                continue
            self._seen[name] = machines
            self.meter.charge_idle(name, sum(m.idle_dollars for m in machines))

    def record(self, ledger: Ledger) -> None:
        """One ``machine`` event per machine the run's backends rented in this invocation."""
        for name, machines in self._seen.items():
            for machine in machines:
                ledger.record("machine", backend=name, **machine.record())


def upcoming_phases(
    waiting: Sequence[str],
    upstream: Callable[[str], Sequence[str]],
    done: Collection[str],
    running: Collection[str],
    hours_left: Callable[[str], float | None],
    resources: Callable[[str], Resources],
) -> list[UpcomingPhase]:
    """The `waiting` phases with when each should be ready: at once when every upstream phase is
    `done`; when the slowest running upstream phase should end (`hours_left`) when the rest is
    done; unknown when an upstream phase has not started or has no estimate."""
    found = []
    for phase_id in waiting:
        pending = [p for p in upstream(phase_id) if p not in done]
        ready_in: float | None = 0.0
        if pending and all(p in running for p in pending):
            left = [hours_left(p) for p in pending]
            ready_in = None if None in left else 3600 * max(h for h in left if h is not None)
        elif pending:
            ready_in = None
        found.append(UpcomingPhase(phase_id, resources(phase_id), ready_in))
    return found


def machine_events(events: Sequence[Event]) -> list[MachineUsage]:
    """The machines a run's ledger records (`MachineWatch.record`), every invocation's."""
    found = []
    for event in events:
        if event.kind != "machine":
            continue
        data = event.data
        found.append(
            MachineUsage(
                label=str(data.get("label", "?")),
                dollars_per_hour=float(data.get("dollars_per_hour") or 0.0),
                held_s=float(data.get("held_s") or 0.0),
                prep_s=float(data.get("prep_s") or 0.0),
                idle_s=float(data.get("idle_s") or 0.0),
                jobs_run=int(data.get("jobs_run") or 0),
                released=str(data.get("released") or ""),
            )
        )
    return found
