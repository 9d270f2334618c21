"""Which backend runs each phase: the rules of ``voltx.toml`` and the routing they resolve to.

A project may spread one run over several backends (docs/concepts.md, "Routing phases to
backends"): ``backend = "ssh"`` in a phase's ``[phases."ID"]`` table, or rules in
``[routing]`` by family (``family.codebook = "ssh"``) or by resources (``gpu = "vast"``,
``cpu = "ssh"``). The first that applies wins, in that order: the phase's own table, its family,
its resources under the run's profile, then the run's backend (``--backend`` or
``[project] backend``). `resolve_routing` turns the rules into a `Routing`, once per run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import attrs
import structlog

from voltx.backend import Backend
from voltx.config import expecting
from voltx.errors import BackendError, did_you_mean
from voltx.spec import PhaseSpec

log = structlog.get_logger(__name__)

# The key of a ``[phases."ID"]`` table that names the phase's backend: not part of its config.
PHASE_BACKEND_KEY = "backend"


@attrs.frozen(kw_only=True)
class RoutingTable:
    """The ``[routing]`` table as written: a backend per phase family, for GPU and CPU phases."""

    family: Mapping[str, str] = attrs.field(factory=dict, metadata=expecting("a backend name"))
    gpu: str | None = attrs.field(default=None, metadata=expecting("a backend name"))
    cpu: str | None = attrs.field(default=None, metadata=expecting("a backend name"))


@attrs.frozen(kw_only=True)
class RoutingRules:
    """Every routing rule of a project: `phases` (phase id -> backend, from each phase's
    table) and the ``[routing]`` table's rules."""

    phases: Mapping[str, str] = attrs.field(factory=dict)
    table: RoutingTable = RoutingTable()

    @property
    def empty(self) -> bool:
        return not (self.phases or self.table.family or self.table.gpu or self.table.cpu)

    def named_backends(self) -> list[tuple[str, str]]:
        """(key path, backend name) of every rule, for checking the names."""
        named = [(f"phases.{pid}.{PHASE_BACKEND_KEY}", name) for pid, name in self.phases.items()]
        named += [(f"routing.family.{fam}", name) for fam, name in self.table.family.items()]
        named += [(f"routing.{key}", getattr(self.table, key)) for key in ("gpu", "cpu")]
        return [(path, name) for path, name in named if name is not None]


def split_phase_tables(
    tables: Mapping[str, Mapping[str, Any]], problems: list[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Each phase's table without its ``backend`` key, and the phase -> backend of those keys."""
    configs: dict[str, dict[str, Any]] = {}
    backends: dict[str, str] = {}
    for phase_id, table in tables.items():
        if not isinstance(table, Mapping):
            configs[phase_id] = table  # reported by the config check, as before
            continue
        config = dict(table)
        name = config.pop(PHASE_BACKEND_KEY, None)
        if name is not None:
            if isinstance(name, str) and name:
                backends[phase_id] = name
            else:
                problems.append(
                    f"phases.{phase_id}.{PHASE_BACKEND_KEY}: expected a backend name, got {name!r}"
                )
        configs[phase_id] = config
    return configs, backends


def rule_problems(
    rules: RoutingRules, backends: Collection[str], families: Collection[str]
) -> list[str]:
    """A line for each rule naming a backend no plugin registered or a family no phase has."""
    problems = [
        f"{path}: unknown backend {name!r}{did_you_mean(name, backends)}"
        f" (installed: {', '.join(sorted(backends)) or 'none'})"
        for path, name in rules.named_backends()
        if name not in backends
    ]
    problems += [
        f"routing.family.{family}: no phase has this family{did_you_mean(family, families)}"
        for family in rules.table.family
        if family not in families
    ]
    return problems


@attrs.frozen
class Routing:
    """Where each phase of a run goes: `backends` maps phase id -> backend name, `why` says
    which rule chose it; a phase not listed goes to `default`."""

    default: str
    backends: Mapping[str, str] = attrs.field(factory=dict)
    why: Mapping[str, str] = attrs.field(factory=dict)

    def backend_for(self, phase_id: str) -> str:
        return self.backends.get(phase_id, self.default)

    def names(self, phase_ids: Iterable[str]) -> list[str]:
        """The backends these phases use, each once, in the order the phases come."""
        return list(dict.fromkeys(self.backend_for(pid) for pid in phase_ids))

    def phases_on(self, name: str, phase_ids: Iterable[str]) -> list[str]:
        return [pid for pid in phase_ids if self.backend_for(pid) == name]


def resolve_routing(
    rules: RoutingRules, specs: Iterable[PhaseSpec], profile: str, default: str
) -> Routing:
    """Each phase's backend by the rules (the module docstring gives the order)."""
    backends: dict[str, str] = {}
    why: dict[str, str] = {}
    for spec in specs:
        gpus = spec.resources_for(profile).gpus
        kind = "gpu" if gpus else "cpu"
        by_kind = getattr(rules.table, kind)
        if spec.id in rules.phases:
            backends[spec.id], why[spec.id] = rules.phases[spec.id], f"phases.{spec.id}"
        elif spec.family in rules.table.family:
            backends[spec.id] = rules.table.family[spec.family]
            why[spec.id] = f"routing.family.{spec.family}"
        elif by_kind is not None:
            backends[spec.id], why[spec.id] = by_kind, f"routing.{kind}"
        else:
            backends[spec.id], why[spec.id] = default, "the run's backend"
    return Routing(default=default, backends=backends, why=why)


class RunBackends:
    """The backends of one run, one instance per name, made on first use by `make`.

    `given` (an instance the caller made) stands for the run's default backend and for its own
    name; it is used as is and left open. Every backend this object made is closed by `close`,
    each even when another's close fails (a rented machine is given back whatever happened to
    the others).
    """

    def __init__(
        self,
        routing: Routing,
        make: Callable[[str], Backend],
        given: Backend | None = None,
    ) -> None:
        self.routing = routing
        self._make = make
        self._instances: dict[str, Backend] = {}
        self._given = given
        # The live view prices the plan on a thread of its own while the scheduler runs.
        self._lock = threading.Lock()
        if given is not None:
            self._instances[routing.default] = given
            self._instances.setdefault(given.name, given)

    @classmethod
    def single(cls, backend: Backend) -> RunBackends:
        """Every phase on `backend` (which the caller closes)."""

        def refuse(name: str) -> Backend:
            raise BackendError(f"this run has only backend {backend.name}, not {name}", name)

        return cls(Routing(default=backend.name), refuse, given=backend)

    @property
    def default(self) -> Backend:
        return self.get(self.routing.default)

    def get(self, name: str) -> Backend:
        with self._lock:
            if name not in self._instances:
                self._instances[name] = self._make(name)
            return self._instances[name]

    def for_phase(self, phase_id: str) -> Backend:
        return self.get(self.routing.backend_for(phase_id))

    def open(self, phase_ids: Iterable[str]) -> list[Backend]:
        """The backends these phases use, made now (so a bad setting is reported up front)."""
        return [self.get(name) for name in self.routing.names(phase_ids)]

    def close(self) -> None:
        """Close every backend this object made; the first failure is raised after the rest."""
        failure: BaseException | None = None
        for name, backend in list(self._instances.items()):
            if backend is self._given:
                continue
            try:
                backend.close()
            except BaseException as exc:  # every other backend still gives its machines back
                log.error("backend close failed", backend=name, error=f"{type(exc).__name__}")
                failure = failure or exc
        self._instances = {n: b for n, b in self._instances.items() if b is self._given}
        if failure is not None:
            raise failure
