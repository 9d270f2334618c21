"""A run resolved once: the session, the selection, each phase's config, and what will run, why.

`resolve` reads the project file, loads the plugins, selects the target's phases, resolves their
configs and decides, phase by phase, whether it runs or is skipped (and the fingerprint that
says so). What it returns, a `ResolvedRun`, is all that `voltx.plan` shows, that preflight
checks, that the scheduler runs and the live view draws: nothing downstream reads
``voltx.toml`` or resolves the raw target again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from voltx._logging import register_config_secrets
from voltx.fingerprint import committed_outputs, fingerprint, why_run
from voltx.remote_inputs import current_digests
from voltx.results import Plan, PlannedPhase
from voltx.routing import Routing, resolve_routing
from voltx.session import Session, SessionOptions, open_session


@attrs.frozen
class ResolvedRun:
    """One target, resolved against one session.

    `targets` are the phase ids the target names (an artifact name becomes its producer);
    `plan` lists every selected phase in graph order with its action (``run`` or ``skip``),
    the reason and, where the inputs are known, its fingerprint (its `timeline` is None: an
    estimate needs a backend, see `voltx.planning.priced.estimate`). `configs` holds each
    selected phase's resolved config as plain data; `routing` the backend of each
    (`voltx.routing`).
    """

    session: Session
    targets: tuple[str, ...]
    plan: Plan
    configs: Mapping[str, Mapping[str, Any]]
    routing: Routing
    force: bool = False

    @property
    def selected(self) -> tuple[str, ...]:
        """Every phase the run covers, upstream first."""
        return tuple(phase.phase_id for phase in self.plan.phases)

    @property
    def to_run(self) -> tuple[str, ...]:
        """The phases that will run (the others are up to date)."""
        return tuple(self.plan.to_run)

    @property
    def backend(self) -> str:
        """The name of the run's default backend (phases no routing rule sends elsewhere)."""
        return self.session.backend

    @property
    def backends(self) -> list[str]:
        """Every backend the phases that will run use, each once."""
        return self.routing.names(self.to_run)


def resolve(
    target: str | Sequence[str] = "all",
    options: SessionOptions | None = None,
    *,
    force: bool = False,
    session: Session | None = None,
) -> ResolvedRun:
    """Open a session (unless given one) and resolve `target` in it, once."""
    session = session or open_session(options)
    graph = session.graph
    targets = graph.resolve_targets(target)
    selected = graph.closure(targets, session.pinned)
    configs = session.configs(selected)
    routing = resolve_routing(
        session.project.routing,
        [session.registry.phase(pid) for pid in selected],
        session.profile,
        session.backend,
    )
    register_config_secrets(configs)  # a secret in voltx.toml is redacted like one in --set
    levels = graph.levels(selected)
    level_of = {pid: index for index, wave in enumerate(levels) for pid in wave}
    will_run: set[str] = set()
    planned: list[PlannedPhase] = []
    read = {
        a
        for pid in selected
        for a in (*session.registry.phase(pid).requires, *session.registry.phase(pid).optional)
    }
    made = {a for pid in selected for a in session.registry.phase(pid).produces}
    # URL inputs are judged by what they are now, not by when they were last recorded.
    remote = current_digests(session.project.remote_inputs, sorted(read - made))
    for phase_id in selected:
        spec = session.registry.phase(phase_id)
        upstream_running = [p for p in graph.upstream(phase_id) if p in will_run]
        fp = None
        if upstream_running:
            action, reason = "run", f"upstream {', '.join(upstream_running)} will run"
        else:
            inputs = {
                name: remote.get(name) or session.store.ref(name) or "" for name in spec.requires
            }
            inputs |= {
                n: d
                for n in spec.optional
                if (d := remote.get(n) or session.store.ref(n)) is not None
            }
            fp = fingerprint(spec.id, spec.version, configs[phase_id], inputs)
            if force:
                action, reason = "run", "forced"
            elif committed_outputs(session.store, fp) is not None:
                action, reason = "skip", f"up to date (fingerprint {fp[:12]})"
            else:
                action = "run"
                reason = why_run(session.store, spec.id, spec.version, configs[phase_id], inputs)
        if action == "run":
            will_run.add(phase_id)
        planned.append(
            PlannedPhase(
                phase_id=phase_id,
                name=spec.name,
                action=action,
                reason=reason,
                level=level_of[phase_id],
                requires=spec.requires,
                produces=spec.produces,
                resources=spec.resources_for(session.profile),
                reference_hours=spec.reference_hours,
                fingerprint=fp,
                backend=routing.backend_for(phase_id),
            )
        )
    pinned = sorted(
        {a for pid in selected for a in session.registry.phase(pid).requires if session.pinned(a)}
    )
    plan = Plan(
        targets=tuple([target] if isinstance(target, str) else target),
        profile=session.profile,
        backend=session.backend,
        store=session.store.url,
        phases=tuple(planned),
        levels=tuple(tuple(w) for w in levels),
        pinned=tuple(pinned),
    )
    return ResolvedRun(
        session=session,
        targets=tuple(targets),
        plan=plan,
        configs=configs,
        routing=routing,
        force=force,
    )
