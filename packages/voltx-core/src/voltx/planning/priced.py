"""A resolved plan priced and laid out in time: each phase that will run estimated on the
backend it is routed to, within each backend's capacity (`voltx plan`; docs/cli.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from voltx.backend import Backend, PhaseSlot
from voltx.backend_factory import run_backends
from voltx.planning.estimates import (
    PhaseEstimate,
    artifact_bytes,
    estimate_phase,
    measured_hours,
)
from voltx.planning.timeline import BackendLanes, Timeline, backend_lanes, build_timeline
from voltx.resolve import ResolvedRun
from voltx.results import Plan, PlannedPhase
from voltx.routing import RunBackends
from voltx.session import Session


def estimate(resolved: ResolvedRun, backend: Backend | RunBackends) -> Plan:
    """The resolved plan with its timeline: each phase that will run, priced on its backend.

    `backend` is the run's backends, or one `Backend` standing for the run's backend (any other
    backend a phase is routed to is then made here, and closed).
    """
    if not isinstance(backend, RunBackends):
        backends = run_backends(resolved, backend)
        try:
            return estimate(resolved, backends)
        finally:
            backends.close()
    timeline = _timeline(
        resolved.session, resolved.selected, resolved.plan.phases, backend, resolved.configs
    )
    resources = {p.phase_id: p.resources for p in resolved.plan.phases}
    slots = [
        PhaseSlot(e.phase_id, resources[e.phase_id], e.midpoint_start, e.midpoint_end)
        for e in timeline.entries
        if e.estimate is not None and e.phase_id in resources
    ]
    # Each backend places the phases routed to it (a pooled Vast backend packs them on machines).
    routing = resolved.routing
    machines = tuple(
        line
        for name in routing.names(slot.phase_id for slot in slots)
        for line in backend.get(name).machine_plan(
            [slot for slot in slots if routing.backend_for(slot.phase_id) == name]
        )
    )
    return attrs.evolve(resolved.plan, timeline=timeline, machines=machines)


def _timeline(
    session: Session,
    selected: Sequence[str],
    planned: Sequence[PlannedPhase],
    backends: RunBackends,
    configs: Mapping[str, Mapping[str, Any]],
) -> Timeline:
    """Estimates of every phase that will run, each on its backend, laid out in time within
    each backend's capacity."""
    registry_ = session.registry
    declared: dict[str, float] = {}
    for spec in registry_.phases.values():
        for name in spec.produces:
            declared[name] = spec.output_gb / max(1, len(spec.produces))
    estimates: dict[str, PhaseEstimate | None] = {}
    lanes: dict[str, BackendLanes] = {}
    for item in planned:
        if item.action != "run":
            estimates[item.phase_id] = None
            continue
        spec = registry_.phase(item.phase_id)
        name = backends.routing.backend_for(item.phase_id)
        backend = backends.get(name)
        if name not in lanes:
            lanes[name] = backend_lanes(backend)
        quote = backend.quote(spec.resources_for(session.profile))
        moved = artifact_bytes(session.store, (*spec.requires, *spec.produces), declared)
        measured = measured_hours(session.store, spec.id, session.profile, quote.host)
        estimates[item.phase_id] = estimate_phase(
            spec, session.profile, quote, moved, measured, configs[item.phase_id]
        )
    graph = session.graph
    placement = {
        pid: (
            backends.routing.backend_for(pid),
            registry_.phase(pid).resources_for(session.profile),
        )
        for pid in selected
    }
    return build_timeline(selected, graph.upstream, estimates, placement, lanes)
