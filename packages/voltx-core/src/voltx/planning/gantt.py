"""The Gantt chart of a plan, as a PNG: one lane per host, the critical path highlighted.

matplotlib is not a dependency of voltx-core; `voltx plan --gantt` asks for it when used.
"""

from __future__ import annotations

from pathlib import Path

from voltx.errors import VoltxError
from voltx.planning.timeline import Timeline


def render_gantt(timeline: Timeline, path: Path, title: str) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise VoltxError("the Gantt chart needs matplotlib: pip install matplotlib") from exc
    entries = [e for e in timeline.entries if e.estimate is not None]
    height = max(2.5, 0.9 * timeline.lanes + 1.5)
    figure, axis = plt.subplots(figsize=(13, height), dpi=110)
    critical = set(timeline.critical_path)
    span = max((e.end[1] for e in entries), default=1.0) or 1.0
    last_label_end: dict[tuple[int, int], float] = {}
    for entry in sorted(entries, key=lambda e: e.midpoint_start):
        start, end = entry.midpoint_start, entry.midpoint_end
        color = "#d9534f" if entry.phase_id in critical else "#5b8bd9"
        # The bar is the expected span (midpoint of the two estimates); the whisker reaches the
        # conservative end, so a lane reads left to right without bars hiding each other.
        axis.barh(
            entry.lane,
            max(end - start, span * 0.002),
            left=start,
            color=color,
            height=0.5,
            edgecolor="white",
            linewidth=0.5,
        )
        axis.plot(
            [end, entry.end[1]], [entry.lane, entry.lane], color=color, linewidth=1, alpha=0.6
        )
        label = entry.phase_id
        width_needed = span * 0.012 * (len(label) + 1)
        if end - start >= width_needed:
            axis.text(
                (start + end) / 2,
                entry.lane,
                label,
                va="center",
                ha="center",
                fontsize=8,
                color="white",
                fontweight="bold",
            )
            continue
        # A short bar: its label goes above or below, whichever side is free at this x.
        for row in (-1, 1, -2, 2):
            if last_label_end.get((entry.lane, row), -1.0) <= start:
                break
        last_label_end[(entry.lane, row)] = start + width_needed
        axis.text(
            start,
            entry.lane + 0.2 * row + (0.1 if row > 0 else -0.1),
            label,
            va="center",
            ha="left",
            fontsize=7,
            color="black",
        )
    axis.set_yticks(range(timeline.lanes))
    axis.set_yticklabels([lane_label(timeline, lane) for lane in range(timeline.lanes)], fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel(
        "hours from the start of the run (bar: expected; line: to the conservative end)"
    )
    low, high = timeline.parallel_hours
    axis.set_title(
        f"{title}: {low:,.1f}-{high:,.1f} h in parallel (serial {timeline.serial_hours[0]:,.1f}-"
        f"{timeline.serial_hours[1]:,.1f} h); red: critical path",
        fontsize=10,
    )
    axis.grid(axis="x", linestyle=":", linewidth=0.6)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def lane_label(timeline: Timeline, lane: int) -> str:
    phases = [e.phase_id for e in timeline.entries if e.lane == lane and e.estimate]
    backends = set(timeline.lane_backends)
    # With phases routed to several backends, each lane says whose host it is.
    where = f"{timeline.lane_backends[lane]} " if len(backends) > 1 else ""
    return f"{where}host {lane + 1}\n({len(phases)} phases)"
