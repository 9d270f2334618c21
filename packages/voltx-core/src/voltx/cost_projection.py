"""What the rest of a run will cost by the estimates, for the run budget's early warning.

The scheduler asks it while a run limit in dollars is set and has not yet warned: the running jobs'
remaining hours at their price, and each phase still to start at its own backend's quote (a run
may use several, `voltx.routing`). Estimates and
quotes are asked once per phase and kept, since the answer is needed at every poll.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

import structlog

from voltx.backend import JobHandle
from voltx.budget import BudgetMeter
from voltx.planning.estimates import measured_hours, spec_hours
from voltx.routing import RunBackends
from voltx.session import Session

log = structlog.get_logger(__name__)


class CostProjection:
    """The dollars a run's unfinished phases will cost (see the module docstring)."""

    def __init__(
        self,
        session: Session,
        backends: RunBackends,
        meter: BudgetMeter,
        configs: Mapping[str, Mapping[str, Any]],
    ) -> None:
        self.session = session
        self.backends = backends
        self.meter = meter
        self.configs = configs  # each phase's resolved config: its work estimate reads it
        self._pending_costs: dict[str, float] = {}
        self._hours: dict[str, float] = {}

    def remaining(
        self,
        running: Mapping[str, JobHandle],
        waiting: Iterable[str],
        to_run: Collection[str],
    ) -> float:
        """Dollars left for the `running` jobs (phase id -> handle) and the `waiting` phases
        (those not in `to_run` are skipped: they will not run)."""
        total = 0.0
        for phase_id, handle in running.items():
            try:
                hours = self.estimated_hours(phase_id)
            except Exception as exc:  # as below: no estimate, no projection for the phase
                log.debug("no estimate for the projection", phase_id=phase_id, error=str(exc))
                hours = 0.0
            left = max(0.0, hours - self.meter.running_hours(phase_id))
            total += left * handle.price_per_hour
        for phase_id in waiting:
            if phase_id not in to_run:
                continue
            if phase_id not in self._pending_costs:
                self._pending_costs[phase_id] = self._start_cost(phase_id)
            total += self._pending_costs[phase_id]
        return total

    def _start_cost(self, phase_id: str) -> float:
        spec = self.session.registry.phase(phase_id)
        try:
            backend = self.backends.for_phase(phase_id)
            quote = backend.quote(spec.resources_for(self.session.profile))
            return self.estimated_hours(phase_id) * quote.dollars_per_hour
        except Exception as exc:  # a price we cannot get must not stop the run
            log.debug("no quote for the projection", phase_id=phase_id, error=str(exc))
            return 0.0

    def estimated_hours(self, phase_id: str) -> float:
        """The optimistic estimate of a phase's hours (measured here before, else its spec)."""
        if phase_id not in self._hours:
            spec = self.session.registry.phase(phase_id)
            profile = self.session.profile
            host = self.backends.for_phase(phase_id).quote(spec.resources_for(profile)).host
            measured = measured_hours(self.session.store, phase_id, profile, host)
            self._hours[phase_id] = (
                measured
                if measured is not None
                else spec_hours(spec, profile, self.configs[phase_id])[0]
            )
        return self._hours[phase_id]
