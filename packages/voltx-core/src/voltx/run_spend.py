"""What a run spends: the meter of its jobs and idle machines, the projection of the rest, and
what of it the ledger records (`docs/budget.md`).

The scheduler owns one `RunSpend`. It accrues each running job's price (`BudgetMeter`), charges
idle rented machines (`MachineWatch`), projects what the phases still to run will cost
(`CostProjection`), and writes a "spend" event to the ledger at most every
`record_every_s` seconds, so that `voltx status` shows the spend of a run still going.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from typing import Any

from voltx.backend import JobHandle
from voltx.budget import BudgetConfig, BudgetMeter, Clock, spent_so_far
from voltx.cost_projection import CostProjection
from voltx.ledger import Ledger
from voltx.machine_watch import MachineWatch
from voltx.resolve import ResolvedRun
from voltx.routing import RunBackends


class RunSpend:
    """The spend of one run, resumed from what its ledger already holds."""

    def __init__(
        self,
        resolved: ResolvedRun,
        backends: RunBackends,
        ledger: Ledger,
        budget: BudgetConfig,
        clock: Clock,
        record_every_s: float,
    ) -> None:
        self.budget = budget
        before, phases_before = spent_so_far(ledger.events())
        self.meter = BudgetMeter(
            budget, clock=clock, spent_before=before, phase_spent_before=phases_before
        )
        self.projection = CostProjection(resolved.session, backends, self.meter, resolved.configs)
        self.machines = MachineWatch(self.meter, clock)
        self._ledger = ledger
        self._record_every_s = record_every_s
        self._recorded = (before, clock())

    def projected_remaining(
        self, running: Mapping[str, JobHandle], waiting: Sequence[str], to_run: Set[str]
    ) -> float:
        """Dollars the rest of the run will cost by the estimates; 0 when no run limit needs
        it (the projection only serves the run budget's early warning)."""
        if self.budget.run.dollars is None or self.meter.warned:
            return 0.0
        return self.projection.remaining(running, list(waiting), set(to_run))

    def hours_left(self, phase_id: str) -> float | None:
        """How much longer the running `phase_id` should take, by its estimate (None: none)."""
        try:
            hours = self.projection.estimated_hours(phase_id)
        except Exception:  # no estimate: the backend is told it cannot know
            return None
        if hours <= 0:
            return None  # a spec without hours has no estimate, not a zero one
        return max(0.0, hours - self.meter.running_hours(phase_id))

    def record_fields(self) -> dict[str, Any]:
        """The spend fields of a ledger event; none when nothing was spent and no limit is set."""
        snapshot = self.meter.snapshot()
        if snapshot["spent"] <= 0 and not self.budget.any:
            return {}
        return snapshot

    def maybe_record(self, force: bool = False) -> None:
        """A "spend" event when the spend grew and `record_every_s` passed (or `force`)."""
        spent, when = self._recorded
        now = self.meter.clock()
        if self.meter.spent <= spent:
            return
        if force or now - when >= self._record_every_s:
            self._ledger.record("spend", **self.meter.snapshot())
            self._recorded = (self.meter.spent, now)
