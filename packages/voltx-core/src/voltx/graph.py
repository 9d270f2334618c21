"""The phase graph: who produces what, what a target needs, and in which order."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import attrs

from voltx.errors import GraphError, UnknownPhaseError
from voltx.spec import PhaseSpec


@attrs.frozen
class Graph:
    """Phases linked through the artifacts they require and produce."""

    phases: Mapping[str, PhaseSpec]
    producer: Mapping[str, str]  # artifact name -> phase id

    @classmethod
    def build(cls, specs: Iterable[PhaseSpec]) -> Graph:
        """Index the producers and check for two producers of one artifact and for cycles."""
        phases: dict[str, PhaseSpec] = {}
        for spec in specs:
            if spec.id in phases:
                # A dict would keep the last silently; the first phase would vanish from plans.
                raise GraphError(f"phase id {spec.id!r} is declared twice", (spec.id,))
            phases[spec.id] = spec
        producer: dict[str, str] = {}
        for spec in phases.values():
            for artifact in spec.produces:
                if artifact in producer:
                    other = producer[artifact]
                    raise GraphError(
                        f"artifact {artifact!r} has two producers:"
                        f" phase {other} and phase {spec.id}",
                        (other, spec.id),
                    )
                producer[artifact] = spec.id
        graph = cls(phases, producer)
        graph._check_acyclic()
        return graph

    def upstream(self, phase_id: str) -> list[str]:
        """The phases that produce what `phase_id` requires, in requirement order."""
        found: list[str] = []
        for artifact in self.phases[phase_id].requires:
            source = self.producer.get(artifact)
            if source is not None and source not in found:
                found.append(source)
        return found

    def _check_acyclic(self) -> None:
        visiting: list[str] = []
        done: set[str] = set()

        def visit(phase_id: str) -> None:
            if phase_id in done:
                return
            if phase_id in visiting:
                cycle = [*visiting[visiting.index(phase_id) :], phase_id]
                raise GraphError("phase graph has a cycle: " + " -> ".join(cycle), cycle)
            visiting.append(phase_id)
            for source in self.upstream(phase_id):
                visit(source)
            visiting.pop()
            done.add(phase_id)

        for phase_id in sorted(self.phases):
            visit(phase_id)

    def resolve_targets(self, targets: str | Iterable[str]) -> list[str]:
        """Phase ids for targets: phase ids, artifact names, ``all``, or a comma-separated mix."""
        if isinstance(targets, str):
            targets = [targets]
        wanted: list[str] = []
        for target in (t.strip() for item in targets for t in item.split(",")):
            if not target:
                continue
            if target == "all":
                ids = list(self.phases)
            elif target in self.phases:
                ids = [target]
            elif target in self.producer:
                ids = [self.producer[target]]
            else:
                raise UnknownPhaseError(target, [*self.phases, *self.producer])
            wanted.extend(i for i in ids if i not in wanted)
        if not wanted:
            raise GraphError("no target given; name a phase id, an artifact, or 'all'")
        return wanted

    def closure(self, phase_ids: Iterable[str], pinned: Callable[[str], bool]) -> list[str]:
        """`phase_ids` and everything upstream of them, in a topological order.

        An artifact for which `pinned(name)` is true (the user added it to the store) is used as
        it is: its producer is not pulled in unless it was asked for.
        """
        selected: set[str] = set()
        stack = list(phase_ids)
        while stack:
            phase_id = stack.pop()
            if phase_id in selected:
                continue
            selected.add(phase_id)
            for artifact in self.phases[phase_id].requires:
                source = self.producer.get(artifact)
                if source is not None and not pinned(artifact):
                    stack.append(source)
        return self.topological(selected)

    def topological(self, phase_ids: Iterable[str]) -> list[str]:
        """`phase_ids` ordered so each comes after its upstream (ties broken by id)."""
        chosen = set(phase_ids)
        order: list[str] = []
        placed: set[str] = set()

        def place(phase_id: str) -> None:
            if phase_id in placed:
                return
            placed.add(phase_id)
            for source in self.upstream(phase_id):
                if source in chosen:
                    place(source)
            order.append(phase_id)

        for phase_id in sorted(chosen, key=_id_sort_key):
            place(phase_id)
        return order

    def levels(self, phase_ids: Iterable[str]) -> list[list[str]]:
        """Group phases into waves: each wave depends only on earlier waves."""
        chosen = set(phase_ids)
        depth: dict[str, int] = {}
        for phase_id in self.topological(chosen):
            sources = [s for s in self.upstream(phase_id) if s in chosen]
            depth[phase_id] = 1 + max((depth[s] for s in sources), default=-1)
        waves: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for phase_id, level in depth.items():
            waves[level].append(phase_id)
        return [sorted(wave, key=_id_sort_key) for wave in waves]


def _id_sort_key(phase_id: str) -> tuple[object, ...]:
    """Sort "2.10" after "2.9": numeric parts as numbers."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in phase_id.split(".")
    )
