"""The timeline of a plan: when each phase starts and ends, its lane, the critical path.

Every phase starts as soon as everything upstream has finished (the scheduler starts every
ready phase at once), so a phase's start is the latest end among its upstream phases. Times are
computed for the optimistic and the conservative estimates; lanes and the critical path use the
midpoint. A lane is one host at a time: phases that overlap in time need separate lanes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import attrs

from voltx.planning.estimates import PhaseEstimate


@attrs.frozen
class TimelineEntry:
    phase_id: str
    lane: int
    host: str
    start: tuple[float, float]  # hours from the start of the run (optimistic, conservative)
    end: tuple[float, float]
    estimate: PhaseEstimate | None  # None: the phase is up to date and will be skipped

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

    def entry(self, phase_id: str) -> TimelineEntry:
        return next(e for e in self.entries if e.phase_id == phase_id)


def build_timeline(
    order: Sequence[str],
    upstream: Callable[[str], Sequence[str]],
    estimates: Mapping[str, PhaseEstimate | None],
) -> Timeline:
    """Schedule `order` (topological) as early as the graph allows."""
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
        starts[phase_id] = start
        ends[phase_id] = (start[0] + length[0], start[1] + length[1])
        critical_parent[phase_id] = max(
            sources, key=lambda s: ends[s][0] + ends[s][1], default=None
        )

    lane_free: list[float] = []
    entries = []
    for phase_id in sorted(order, key=lambda p: (starts[p][0] + starts[p][1], order.index(p))):
        mid_start = (starts[phase_id][0] + starts[phase_id][1]) / 2
        mid_end = (ends[phase_id][0] + ends[phase_id][1]) / 2
        # Reuse the first lane that is free by then: a host that finished its earlier phase.
        lane = next((i for i, free in enumerate(lane_free) if free <= mid_start + 1e-12), None)
        if lane is None:
            lane = len(lane_free)
            lane_free.append(mid_end)
        else:
            lane_free[lane] = mid_end
        estimate = estimates.get(phase_id)
        entries.append(
            TimelineEntry(
                phase_id=phase_id,
                lane=lane,
                host=estimate.host if estimate else "-",
                start=starts[phase_id],
                end=ends[phase_id],
                estimate=estimate,
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
        lanes=len(lane_free),
    )
