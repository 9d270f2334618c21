"""Planning before anything runs: estimates, the timeline and its cost, the Gantt chart."""

from voltx.planning.estimates import PhaseEstimate, estimate_phase, record_measurement
from voltx.planning.timeline import Timeline, TimelineEntry, build_timeline

__all__ = [
    "PhaseEstimate",
    "Timeline",
    "TimelineEntry",
    "build_timeline",
    "estimate_phase",
    "record_measurement",
]
