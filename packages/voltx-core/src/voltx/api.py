"""The Python API: `run`, `plan`, `preflight`, `phases`, `status`.

`run`, `plan` and `preflight` take the same session choices, as keywords (``backend="vast"``)
or as one `SessionOptions`; each resolves its target once (`voltx.resolve`) and works from that.
Phases go to the backends the project routes them to (`voltx.routing`), the rest to the
session's backend; each backend a run uses is made once (`run_backends`) and closed at its end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import structlog

from voltx._logging import ensure_logging
from voltx.backend import Backend

# Also importable from here, where they were first defined.
from voltx.backend_factory import make_backend as make_backend
from voltx.backend_factory import run_backends as run_backends
from voltx.budget import check_limit, spent_so_far
from voltx.errors import BackendError, VoltxError
from voltx.graph import Graph
from voltx.ledger import (
    Ledger,
    last_run_for,
    latest_run_id,
    new_run_id,
    owner_alive,
    remember_run,
    since_last_start,
    target_key,
)
from voltx.machine_watch import machine_events
from voltx.planning.input_routes import (
    input_routes,
)
from voltx.planning.manifest import manifest as manifest
from voltx.planning.preflight import PreflightError, preflight_problems
from voltx.planning.priced import estimate as estimate
from voltx.plugins import registry
from voltx.resolve import ResolvedRun, resolve
from voltx.results import PhaseResult, Plan, RunResult
from voltx.routing import RunBackends
from voltx.run_lease import RunLease
from voltx.scheduler import Scheduler
from voltx.session import (
    Overrides,
    ProjectConfig,
    Session,
    SessionOptions,
    open_session,
)
from voltx.spec import PhaseSpec

log = structlog.get_logger(__name__)


def phases() -> list[PhaseSpec]:
    """Every registered phase, in graph order (reads no project file and opens no store)."""
    graph = Graph.build(registry().phases.values())
    return [graph.phases[pid] for pid in graph.topological(graph.phases)]


def plan(
    target: str | Sequence[str] = "all",
    *,
    options: SessionOptions | None = None,
    backend: str | None = None,
    store: str | None = None,
    config: ProjectConfig = None,
    profile: str | None = None,
    overrides: Overrides = None,
    force: bool = False,
) -> Plan:
    """What `run` would do for `target`, with the reason for each phase; nothing runs.

    The session keywords replace the matching `options` (see `SessionOptions`).
    """
    chosen = _options(options, backend, store, config, profile, overrides)
    resolved = resolve(target, chosen, force=force)
    # Only now, once the target and configs are known good: quoting may ask the backends.
    backends = run_backends(resolved)
    try:
        planned = estimate(resolved, backends)
    finally:
        backends.close()
    routes = input_routes(
        resolved.session,
        [p.phase_id for p in planned.phases if p.action == "run"],
        resolved.routing.backend_for,
    )
    return attrs.evolve(planned, inputs=routes)


def _options(
    options: SessionOptions | None,
    backend: str | None,
    store: str | None,
    config: ProjectConfig,
    profile: str | None,
    overrides: Overrides,
) -> SessionOptions:
    return (options or SessionOptions()).replace(
        backend=backend, store=store, config=config, profile=profile, overrides=overrides
    )


def run(
    target: str | Sequence[str] = "all",
    *,
    options: SessionOptions | None = None,
    backend: str | Backend | None = None,
    store: str | None = None,
    config: ProjectConfig = None,
    profile: str | None = None,
    overrides: Overrides = None,
    max_parallel: int | None = None,
    force: bool = False,
    max_attempts: int | None = None,
    budget: float | None = None,
    max_hours: float | None = None,
) -> RunResult:
    """Run `target` (a phase id, several, an artifact name, or ``all``) and what it needs.

    A job that is lost (its process or machine vanished) or whose worker a signal killed (the
    OOM killer's SIGKILL) is started again, resuming from its latest checkpoint, up to
    `max_attempts` attempts in all. `force` runs the phases again from scratch: their earlier
    checkpoints are discarded. The run holds the store's lease (`voltx.run_lease`) while it
    lasts: a second run on the same store raises `RunLeaseError` naming this one.
    Returns each phase's status and outputs; a failed phase does not raise (use
    `RunResult.raise_for_status`). Running the same target again continues an unfinished run
    and skips every phase whose fingerprint is already committed.

    `budget` (dollars, counting what earlier invocations of the same run spent) and `max_hours`
    (wall time of this call) replace the project's ``[budget]`` limits. When one is reached every
    job is stopped (SIGTERM, then the grace period to checkpoint), every rented machine given
    back, and the run ends ``budget_exceeded``; calling again with a larger budget resumes it.

    `backend` is a registered name or a `Backend` instance (which stays open afterwards); the
    session keywords replace the matching `options` (see `SessionOptions`).
    """
    check_limit("budget", budget)
    check_limit("max_hours", max_hours)
    ensure_logging()
    given = backend if isinstance(backend, Backend) else None
    name = backend.name if isinstance(backend, Backend) else backend
    resolved = resolve(
        target, _options(options, name, store, config, profile, overrides), force=force
    )
    return execute(
        resolved,
        backend=given,
        max_parallel=max_parallel,
        max_attempts=max_attempts,
        budget=budget,
        max_hours=max_hours,
    )


def execute(
    resolved: ResolvedRun,
    *,
    backend: Backend | RunBackends | None = None,
    max_parallel: int | None = None,
    max_attempts: int | None = None,
    budget: float | None = None,
    max_hours: float | None = None,
) -> RunResult:
    """Run what `resolved` says will run (see `run`): preflight, ledger, scheduler.

    A `backend` given stays open (the caller closes it): a `Backend` stands for the run's
    backend, `RunBackends` for all of the run's. The backends made here are closed at the end,
    each even when another fails to close (rented machines are given back).
    """
    check_limit("budget", budget)
    check_limit("max_hours", max_hours)
    session = resolved.session
    if isinstance(backend, RunBackends):
        executors, owned = backend, False
    else:
        executors, owned = run_backends(resolved, backend), True
    try:
        problems = preflight_problems(session, resolved.selected, executors, resolved.to_run)
        if problems:
            raise PreflightError(problems)
        for executor in executors.open(resolved.to_run):
            if session.store.url.startswith("memory://") and not executor.runs_in_process:
                raise BackendError(
                    f"store {session.store.url} lives in this process only; backend "
                    f"{executor.name} runs phases in other processes: use a file:// or s3:// "
                    "store",
                    executor.name,
                )
        key = target_key(list(resolved.targets), session.profile, session.backend)
        run_id = _continue_or_start(session, key, resolved.force)
        # One run at a time per store (`voltx.run_lease`): taken before anything is written.
        with RunLease(session.store, run_id):
            session.stage_inputs(resolved.selected)
            return _schedule(
                resolved, executors, run_id, max_parallel, max_attempts, budget, max_hours
            )
    finally:
        if owned:
            executors.close()


def _schedule(
    resolved: ResolvedRun,
    executors: RunBackends,
    run_id: str,
    max_parallel: int | None,
    max_attempts: int | None,
    budget: float | None,
    max_hours: float | None,
) -> RunResult:
    """Start or continue the run's ledger and hand the resolved run to the scheduler."""
    session = resolved.session
    limits = session.project.budget.with_run_limits(budget, max_hours)
    wanted = {"budget": limits.run.dollars, "max_hours": limits.run.max_hours}
    shown: dict[str, Any] = {name: value for name, value in wanted.items() if value is not None}
    targets = list(resolved.targets)
    key = target_key(targets, session.profile, session.backend)
    ledger = Ledger(session.store, run_id)
    if ledger.meta() is None:
        ledger.write_meta(
            {
                "run_id": run_id,
                "targets": targets,
                "profile": session.profile,
                "backend": session.backend,
                "backends": {pid: resolved.routing.backend_for(pid) for pid in resolved.selected},
                "phases": list(resolved.selected),
            }
        )
        ledger.record("run_started", targets=targets, **shown)
    else:
        ledger.record("run_continued", targets=targets, **shown)
    remember_run(session.store, key, run_id)
    session.store.write_record("runs/latest.json", {"run_id": run_id})
    with structlog.contextvars.bound_contextvars(run_id=run_id, backend=session.backend):
        log.info(
            "run starting",
            targets=targets,
            phases=len(resolved.selected),
            backends=resolved.backends,
            store=session.store.url,
            **shown,
        )
        scheduler = Scheduler(
            resolved,
            executors,
            ledger,
            max_parallel=max_parallel or session.project.max_parallel,
            max_attempts=max_attempts or session.project.max_attempts,
            budget=limits,
        )
        result = scheduler.execute()
        log.info("run finished", status=result.status)
    return result


def _continue_or_start(session: Session, key: str, force: bool) -> str:
    """The unfinished run of the same target, or a new run id.

    A run a budget stopped is unfinished too: running it again (with a larger budget) resumes
    it, and what it spent so far still counts against the budget.
    """
    if not force:
        previous = last_run_for(session.store, key)
        if previous is not None:
            events = Ledger(session.store, previous).events()
            last = events[-1:]
            if not any(e.kind == "run_finished" for e in last) or any(
                e.data.get("status") == "budget_exceeded" for e in last
            ):
                return previous
    return new_run_id()


def preflight(
    target: str | Sequence[str] = "all",
    *,
    options: SessionOptions | None = None,
    backend: str | None = None,
    store: str | None = None,
    config: ProjectConfig = None,
    profile: str | None = None,
    overrides: Overrides = None,
) -> list[str]:
    """Every problem that would stop `run(target)`, found without renting or running anything:
    each backend the run uses checks the phases routed to it."""
    resolved = resolve(target, _options(options, backend, store, config, profile, overrides))
    backends = run_backends(resolved)
    try:
        return preflight_problems(resolved.session, resolved.selected, backends, resolved.to_run)
    finally:
        backends.close()


def status(run_id: str | None = None, *, store: str | None = None) -> RunResult:
    """A snapshot of a run (the latest by default) from its ledger; works from any process."""
    session_store = open_session(store=store).store
    run_id = run_id or latest_run_id(session_store)
    if run_id is None:
        raise VoltxError(f"no runs in store {session_store.url}")
    ledger = Ledger(session_store, run_id)
    meta = ledger.meta()
    if meta is None:
        raise VoltxError(f"no run {run_id!r} in store {session_store.url}")
    states = ledger.phase_states()
    events = ledger.events()
    spent, spent_by_phase = spent_so_far(events)
    phases_out = {}
    for phase_id in meta.get("phases", []):
        state = states.get(phase_id)
        phases_out[phase_id] = PhaseResult(
            phase_id=phase_id,
            status=state.state if state else "pending",
            reason=state.reason if state else "",
            outputs=state.outputs if state else {},
            attempts=state.attempts if state else 0,
            started_at=state.started_at if state else None,
            finished_at=state.finished_at if state else None,
            backend=state.backend if state else None,
            spent=spent_by_phase.get(phase_id, 0.0),
        )
    # A run a budget stopped can be continued: only an end after its last (re)start counts.
    finished = [e for e in since_last_start(events) if e.kind == "run_finished"]
    run_status = str(finished[-1].data.get("status")) if finished else "running"
    detail = ""
    owner = ledger.owner()
    if not finished and owner_alive(owner) is False:
        assert owner is not None
        # The ledger stopped where the orchestrator died: what it calls running may have
        # ended since, so say so rather than report a state nobody is watching.
        detail = (
            f"orchestrator (pid {owner.get('pid')} on {owner.get('host')}) is gone; "
            "`voltx run` of the same target continues the run and re-attaches to its jobs"
        )
        run_status = "stale"
        for phase_id, phase in phases_out.items():
            if phase.status in ("running", "queued"):
                phases_out[phase_id] = attrs.evolve(
                    phase,
                    status="stale",
                    reason=f"was {phase.status} when the orchestrator died; its job may run on",
                )
    return RunResult(
        run_id=run_id,
        status=run_status,
        phases=phases_out,
        store=session_store.url,
        detail=detail,
        spent=spent,
        machines=tuple(machine_events(events)),
    )
