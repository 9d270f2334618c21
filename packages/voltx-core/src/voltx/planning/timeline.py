"""The timeline of a plan: when each phase starts and ends, its lane, the critical path.

Every phase starts as soon as everything upstream has finished (the scheduler starts every
ready phase at once), so a phase's start is the latest end among its upstream phases. Times are
computed for the optimistic and the conservative estimates; lanes and the critical path use the
midpoint. A lane is one host at a time: phases that overlap in time need separate lanes.

When phases are routed to several backends (`voltx.routing`), each backend has its own lanes,
and a GPU phase also waits until its backend has a GPU free for it: a backend's GPUs are its
own, never shared with another backend (as the scheduler rations them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import attrs
import structlog

from voltx.backend import Backend
from voltx.planning.estimates import PhaseEstimate
from voltx.spec import Resources

log = structlog.get_logger(__name__)


@attrs.frozen
class TimelineEntry:
    phase_id: str
    lane: int
    host: str
    start: tuple[float, float]  # hours from the start of the run (optimistic, conservative)
    end: tuple[float, float]
    estimate: PhaseEstimate | None  # None: the phase is up to date and will be skipped
    backend: str = ""

    @property
    def midpoint_start(self) -> float:
        return (self.start[0] + self.start[1]) / 2

    @property
    def midpoint_end(self) -> float:
        return (self.end[0] + self.end[1]) / 2


@attrs.frozen
class Timeline:
    entries: tuple[TimelineEntry, ...]
    critical_path: tuple[str, ...]
    serial_hours: tuple[float, float]
    parallel_hours: tuple[float, float]
    dollars: tuple[float, float]
    lanes: int
    lane_backends: tuple[str, ...] = ()  # the backend of each lane, where known

    @property
    def dollars_by_backend(self) -> dict[str, tuple[float, float]]:
        """The cost of the phases on each backend (optimistic, conservative)."""
        totals: dict[str, tuple[float, float]] = {}
        for entry in self.entries:
            if entry.estimate is not None:
                low, high = totals.get(entry.backend, (0.0, 0.0))
                totals[entry.backend] = (
                    low + entry.estimate.dollars[0],
                    high + entry.estimate.dollars[1],
                )
        return totals

    def entry(self, phase_id: str) -> TimelineEntry:
        return next(e for e in self.entries if e.phase_id == phase_id)


@attrs.frozen
class BackendLanes:
    """What a timeline needs of one backend: its capacity (None: not rationed, or unknown)."""

    name: str
    capacity: Resources | None = None


def backend_lanes(backend: Backend) -> BackendLanes:
    """The backend's capacity, as the scheduler will ration it."""
    try:
        return BackendLanes(backend.name, backend.capacity())
    except Exception as exc:  # an unreachable host: the plan still draws, unrationed
        log.debug("no capacity for the timeline", backend=backend.name, error=str(exc))
        return BackendLanes(backend.name)


# phase id -> (its backend's name, the resources it asks for)
Placement = Mapping[str, tuple[str, Resources]]


def build_timeline(
    order: Sequence[str],
    upstream: Callable[[str], Sequence[str]],
    estimates: Mapping[str, PhaseEstimate | None],
    placement: Placement | None = None,
    backends: Mapping[str, BackendLanes] | None = None,
) -> Timeline:
    """Schedule `order` (topological) as early as the graph, and each backend's capacity
    (`placement`, `backends`; without them, one unrationed backend), allow."""
    placement = placement or {}
    backends = backends or {}
    held: dict[str, list[tuple[float, float, int]]] = {}
    starts: dict[str, tuple[float, float]] = {}
    ends: dict[str, tuple[float, float]] = {}
    critical_parent: dict[str, str | None] = {}
    for phase_id in order:
        sources = [s for s in upstream(phase_id) if s in ends]
        start = (
            max((ends[s][0] for s in sources), default=0.0),
            max((ends[s][1] for s in sources), default=0.0),
        )
        estimate = estimates.get(phase_id)
        length = estimate.total_hours if estimate is not None else (0.0, 0.0)
        if estimate is not None and phase_id in placement:
            name, wanted = placement[phase_id]
            lanes = backends.get(name)
            if lanes is not None and lanes.capacity is not None:
                start = _when_room(start, length, wanted, lanes.capacity, held.setdefault(name, []))
        starts[phase_id] = start
        ends[phase_id] = (start[0] + length[0], start[1] + length[1])
        critical_parent[phase_id] = max(
            sources, key=lambda s: ends[s][0] + ends[s][1], default=None
        )

    # Each backend its own lanes, in the order the backends first appear.
    lane_free: dict[str, list[float]] = {}
    local_lane: dict[str, tuple[str, int]] = {}
    for phase_id in sorted(order, key=lambda p: (starts[p][0] + starts[p][1], order.index(p))):
        mid_start = (starts[phase_id][0] + starts[phase_id][1]) / 2
        mid_end = (ends[phase_id][0] + ends[phase_id][1]) / 2
        name = placement[phase_id][0] if phase_id in placement else ""
        free_at = lane_free.setdefault(name, [])
        # Reuse the first lane that is free by then: a host that finished its earlier phase.
        lane = next((i for i, free in enumerate(free_at) if free <= mid_start + 1e-12), None)
        if lane is None:
            lane = len(free_at)
            free_at.append(mid_end)
        else:
            free_at[lane] = mid_end
        local_lane[phase_id] = (name, lane)
    first_lane: dict[str, int] = {}
    lane_backends: list[str] = []
    for name, free_at in lane_free.items():
        first_lane[name] = len(lane_backends)
        lane_backends += [name] * len(free_at)
    entries = []
    for phase_id, (name, lane) in local_lane.items():
        estimate = estimates.get(phase_id)
        entries.append(
            TimelineEntry(
                phase_id=phase_id,
                lane=first_lane[name] + lane,
                host=estimate.host if estimate else "-",
                start=starts[phase_id],
                end=ends[phase_id],
                estimate=estimate,
                backend=name,
            )
        )

    last = max(order, key=lambda p: ends[p][0] + ends[p][1], default=None)
    path: list[str] = []
    while last is not None:
        path.append(last)
        last = critical_parent[last]
    known = [e for e in estimates.values() if e is not None]
    return Timeline(
        entries=tuple(sorted(entries, key=lambda e: order.index(e.phase_id))),
        critical_path=tuple(reversed(path)),
        serial_hours=(
            sum(e.total_hours[0] for e in known),
            sum(e.total_hours[1] for e in known),
        ),
        parallel_hours=(
            max((end[0] for end in ends.values()), default=0.0),
            max((end[1] for end in ends.values()), default=0.0),
        ),
        dollars=(sum(e.dollars[0] for e in known), sum(e.dollars[1] for e in known)),
        lanes=len(lane_backends),
        lane_backends=tuple(lane_backends),
    )


def _when_room(
    start: tuple[float, float],
    length: tuple[float, float],
    wanted: Resources,
    capacity: Resources,
    held: list[tuple[float, float, int]],
) -> tuple[float, float]:
    """The start of a GPU phase moved past the phases holding its backend's GPUs (by
    midpoints, as lanes are), and its hold recorded in `held`.

    Only GPUs are rationed here: cores and memory the scheduler clamps and shares, and a plan
    should not depend on how many cores the planning machine happens to have.
    """
    if not wanted.gpus or wanted.gpus > capacity.gpus:
        return start  # no GPU to wait for; or none fits at all: preflight says so
    at = (start[0] + start[1]) / 2
    while True:
        active = [(s, e, gpus) for s, e, gpus in held if s <= at + 1e-12 < e]
        if sum(gpus for *_, gpus in active) + wanted.gpus <= capacity.gpus:
            break
        at = min(e for _, e, _ in active)
    shift = at - (start[0] + start[1]) / 2
    held.append((at, at + (length[0] + length[1]) / 2, wanted.gpus))
    return (start[0] + shift, start[1] + shift)
