"""What `voltx.run`, `voltx.plan` and `voltx.status` return."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from voltx.backend import MachineUsage
from voltx.errors import VoltxError
from voltx.planning.timeline import Timeline
from voltx.spec import Resources

if TYPE_CHECKING:  # results stay importable without the session (input routes need one)
    from voltx.planning.input_routes import InputRoute


@attrs.frozen
class PhaseResult:
    """How one phase of a run ended (or stands)."""

    phase_id: str
    # succeeded, skipped, failed, blocked, cancelled, running, queued, pending; stale: it was
    # running when the run's orchestrator died (its job may run on: the ledger cannot say).
    status: str
    reason: str = ""
    outputs: Mapping[str, str] = attrs.field(factory=dict)
    attempts: int = 0
    duration_s: float | None = None
    started_at: str | None = None
    finished_at: str | None = None
    backend: str | None = None
    spent: float = 0.0  # dollars its jobs cost, as metered during the run

    @property
    def ok(self) -> bool:
        return self.status in ("succeeded", "skipped")


@attrs.frozen
class RunResult:
    """A run's outcome: each selected phase's result, in graph order."""

    run_id: str
    status: str  # succeeded, failed, cancelled, running, stale (its orchestrator died)
    phases: Mapping[str, PhaseResult]
    store: str
    detail: str = ""  # why a status is what it is, where that is not obvious (stale)
    spent: float = 0.0  # dollars, all invocations of the run together (voltx.budget)
    # The machines its backends rented and kept between jobs, with their prep and idle time
    # (`voltx.machine_watch`); empty where every machine lived and died with its job.
    machines: tuple[MachineUsage, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def outputs(self) -> dict[str, str]:
        """Every artifact the run produced or reused, name to digest."""
        return {name: d for result in self.phases.values() for name, d in result.outputs.items()}

    def raise_for_status(self) -> RunResult:
        """Raise a VoltxError naming the failed phases, unless every phase succeeded or skipped."""
        if not self.ok:
            failed = [f"{r.phase_id} ({r.reason})" for r in self.phases.values() if not r.ok]
            raise VoltxError(f"run {self.run_id} {self.status}: " + "; ".join(failed))
        return self


@attrs.frozen
class PlannedPhase:
    """One phase as a plan sees it before anything runs."""

    phase_id: str
    name: str
    action: str  # run, skip
    reason: str
    level: int
    requires: tuple[str, ...]
    produces: tuple[str, ...]
    resources: Resources
    reference_hours: float
    fingerprint: str | None = None
    backend: str = ""  # where it runs (`voltx.routing`)


@attrs.frozen
class Plan:
    """The phases a target selects, what would run and why, in waves that can run in parallel."""

    targets: tuple[str, ...]
    profile: str
    backend: str
    store: str
    phases: tuple[PlannedPhase, ...]
    levels: tuple[tuple[str, ...], ...]
    pinned: tuple[str, ...] = ()
    timeline: Timeline | None = None
    # Each input of a phase that runs: its size, source and reader, bytes through this machine.
    inputs: tuple[InputRoute, ...] = ()
    # The backend's word on machines (`Backend.machine_plan`): which phase runs where, and cost.
    machines: tuple[str, ...] = ()

    @property
    def to_run(self) -> list[str]:
        return [p.phase_id for p in self.phases if p.action == "run"]


@attrs.frozen
class ManifestEntry:
    """One file a phase needs on its host: the list people used to copy by hand, computed."""

    artifact: str
    path: str
    size: int | None
    source: str
    digest: str | None
    optional: bool = False
