"""The live view of `voltx run` on a terminal: one table of every phase, redrawn as the run goes.

Each row: the phase's state (from the run ledger), its host, step and total (from the job's
``progress.json``, read through `JobHandle.read_file`), loss, ETA, and dollars so far against the
plan's estimate. The view runs in a thread of the orchestrating process and only reads: the
ledger from the store, the progress files through handles of a backend of its own (a viewer's
attach takes nothing over, as for `voltx logs`).

It needs rich (``pip install voltx-core[live]``); without rich, or when stdout is not a terminal,
`voltx run` prints what it always printed. `take_snapshot` and `render` are plain functions of the
ledger and the progress, so they are tested without a terminal.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import attrs

from voltx.errors import VoltxError
from voltx.ledger import Ledger, PhaseState

if TYPE_CHECKING:
    from rich.table import Table

    from voltx.backend import Backend, JobHandle
    from voltx.planning.timeline import Timeline
    from voltx.resolve import ResolvedRun
    from voltx.results import Plan
    from voltx.store import ArtifactStore

P = ParamSpec("P")
R = TypeVar("R")
PROGRESS_FILE = "progress.json"
_REFRESH_S = 1.0
_LOSS_KEYS = ("loss", "train_loss", "val_loss")


@attrs.frozen
class PlannedCost:
    """What the plan expects of one phase: dollars (optimistic, conservative) and the price."""

    dollars: tuple[float, float] = (0.0, 0.0)
    dollars_per_hour: float = 0.0
    host: str = ""


@attrs.frozen
class PhaseRow:
    """One line of the live view."""

    phase_id: str
    state: str
    host: str = "-"
    step: int | None = None
    total: int | None = None
    loss: float | None = None
    eta_s: float | None = None
    elapsed_s: float | None = None
    dollars: float = 0.0
    planned: tuple[float, float] | None = None


@attrs.frozen
class Snapshot:
    """The live view's table at one moment."""

    run_id: str
    rows: tuple[PhaseRow, ...]

    @property
    def dollars(self) -> float:
        return sum(row.dollars for row in self.rows)

    @property
    def planned(self) -> tuple[float, float]:
        known = [row.planned for row in self.rows if row.planned is not None]
        return (sum(p[0] for p in known), sum(p[1] for p in known))


def planned_costs(timeline: Timeline | None) -> dict[str, PlannedCost]:
    """Each phase's expected dollars and price per hour, from a plan's timeline."""
    costs: dict[str, PlannedCost] = {}
    for entry in timeline.entries if timeline is not None else ():
        estimate = entry.estimate
        if estimate is None:
            continue
        hours = estimate.total_hours[0]
        price = estimate.dollars[0] / hours if hours > 0 else 0.0
        costs[entry.phase_id] = PlannedCost(estimate.dollars, price, estimate.host)
    return costs


def _seconds_since(stamp: str | None, now: float) -> float | None:
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, now - moment.timestamp())


def _host(state: PhaseState | None, plan: PlannedCost | None) -> str:
    # The job's ref in the ledger (not its job document): where the backend ran it.
    ref = dict(state.job or {}) if state else {}
    for key in ("host", "label"):
        where = ref.get(key)
        if isinstance(where, str) and where:
            return where
    if plan is not None and plan.host:
        return plan.host
    return str(state.backend) if state and state.backend else "-"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def take_snapshot(
    run_id: str,
    phase_ids: Sequence[str],
    states: Mapping[str, PhaseState],
    progress: Mapping[str, Mapping[str, Any]],
    plan: Mapping[str, PlannedCost],
    now: float | None = None,
) -> Snapshot:
    """The table from the ledger's states, the jobs' progress and the plan, at `now`."""
    now = time.time() if now is None else now
    rows = []
    for phase_id in phase_ids:
        state = states.get(phase_id)
        planned = plan.get(phase_id)
        report = progress.get(phase_id, {})
        started = _seconds_since(state.started_at if state else None, now)
        finished = _seconds_since(state.finished_at if state else None, now)
        elapsed = started
        if started is not None and finished is not None and finished <= started:
            elapsed = started - finished  # ended (a lost attempt's end comes before a restart)
        if state is not None and state.state in ("skipped", "blocked", "pending"):
            elapsed = None
        price = planned.dollars_per_hour if planned else 0.0
        loss = next((_number(report[k]) for k in _LOSS_KEYS if k in report), None)
        step = _number(report.get("step"))
        total = _number(report.get("total"))
        rows.append(
            PhaseRow(
                phase_id=phase_id,
                state=state.state if state else "pending",
                host=_host(state, planned) if state and state.job else "-",
                step=int(step) if step is not None else None,
                total=int(total) if total is not None else None,
                loss=loss,
                eta_s=_number(report.get("eta_s")) if state and state.state == "running" else None,
                elapsed_s=elapsed,
                dollars=price * (elapsed or 0.0) / 3600.0,
                planned=planned.dollars if planned else None,
            )
        )
    return Snapshot(run_id=run_id, rows=tuple(rows))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def _money(low: float, high: float | None = None) -> str:
    if high is None or abs(high - low) < 0.005:
        return f"${low:,.2f}"
    return f"${low:,.2f}-{high:,.2f}"


_STYLE = {
    "running": "bold cyan",
    "succeeded": "green",
    "skipped": "dim green",
    "failed": "bold red",
    "blocked": "red",
    "cancelled": "yellow",
    "lost": "yellow",
    "killed": "yellow",
}


def render(snapshot: Snapshot) -> Table:
    """The snapshot as a rich table (rich is imported here, only when a view is drawn)."""
    from rich.table import Table

    table = Table(title=f"voltx run {snapshot.run_id}", title_justify="left", expand=False)
    for header in ("phase", "state", "host", "step", "loss", "ETA", "took", "$ so far", "$ plan"):
        table.add_column(header, justify="right" if header.startswith(("$", "step")) else "left")
    for row in snapshot.rows:
        step = "-"
        if row.step is not None:
            step = f"{row.step:,}" + (f"/{row.total:,}" if row.total else "")
        table.add_row(
            row.phase_id,
            f"[{_STYLE.get(row.state, '')}]{row.state}[/]" if row.state in _STYLE else row.state,
            row.host,
            step,
            f"{row.loss:.4g}" if row.loss is not None else "-",
            _duration(row.eta_s),
            _duration(row.elapsed_s),
            _money(row.dollars) if row.dollars else "-",
            _money(*row.planned) if row.planned else "-",
        )
    low, high = snapshot.planned
    table.caption = f"spent {_money(snapshot.dollars)} of a planned {_money(low, high)}"
    table.caption_justify = "left"
    return table


class ProgressReader:
    """Reads each running job's ``progress.json`` through a viewer backend's handles."""

    def __init__(self, make_backend: Callable[[str], Backend]) -> None:
        self._make_backend = make_backend
        self._backends: dict[str, Backend] = {}
        self._handles: dict[str, JobHandle] = {}

    def read(self, state: PhaseState) -> dict[str, Any] | None:
        if not state.job or not state.backend:
            return None
        key = json.dumps(dict(state.job), sort_keys=True, default=str)
        try:
            handle = self._handles.get(key)
            if handle is None:
                if state.backend not in self._backends:
                    self._backends[state.backend] = self._make_backend(state.backend)
                handle = self._backends[state.backend].attach(state.job)
                self._handles[key] = handle
            raw = handle.read_file(PROGRESS_FILE)
            data = json.loads(raw) if raw else None
        except Exception:  # a view must never stop the run: no progress is shown instead
            return None
        return data if isinstance(data, dict) else None

    def close(self) -> None:
        for backend in self._backends.values():
            with contextlib.suppress(Exception):
                backend.close()


def supported(stream: Any) -> bool:
    """Whether a live view can be drawn on `stream`: a terminal, and rich installed."""
    if os.environ.get("VOLTX_NO_LIVE") or not getattr(stream, "isatty", lambda: False)():
        return False
    try:
        import rich.live  # noqa: F401 (only asking whether it is there)
    except ImportError:
        return False
    return True


def _our_run(store: ArtifactStore) -> Ledger | None:
    """The ledger of the run this process started or continued, once it has."""
    from voltx.ledger import latest_run_id

    run_id = latest_run_id(store)
    if run_id is None:
        return None
    ledger = Ledger(store, run_id)
    owner = ledger.owner()
    return ledger if owner is not None and owner.get("pid") == os.getpid() else None


@contextlib.contextmanager
def live_view(
    store: ArtifactStore,
    plan: Mapping[str, PlannedCost],
    make_backend: Callable[[str], Backend],
    refresh_s: float = _REFRESH_S,
) -> Iterator[None]:
    """Draw the run's table on the terminal while the body (the run) goes."""
    from rich.console import Console
    from rich.live import Live

    stop = threading.Event()
    reader = ProgressReader(make_backend)
    console = Console()

    def frame(ledger: Ledger) -> Table:
        meta = ledger.meta() or {}
        states = ledger.phase_states()
        progress = {
            pid: report
            for pid, state in states.items()
            if state.state == "running" and (report := reader.read(state)) is not None
        }
        return render(take_snapshot(ledger.run_id, meta.get("phases", []), states, progress, plan))

    def draw(live: Live) -> None:
        ledger: Ledger | None = None
        while not stop.wait(refresh_s):
            try:
                ledger = ledger or _our_run(store)
                if ledger is not None:
                    live.update(frame(ledger))
            except Exception:  # the store hiccuped: draw the next frame instead
                continue
        if ledger is not None:
            with contextlib.suppress(Exception):
                live.update(frame(ledger))

    with Live(console=console, refresh_per_second=4, transient=False) as live:
        thread = threading.Thread(target=draw, args=(live,), name="voltx-live", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=10)
            reader.close()


def with_live_view(
    run: Callable[P, R], resolved: ResolvedRun, estimate: Callable[[], Plan]
) -> Callable[P, R]:
    """`run`, drawn as a live table while it goes, when stdout is a terminal and rich is there.

    The view draws the phases of `resolved`, from its session's store; `estimate` gives the
    plan's timeline (for "dollars against the plan") and is called only when a view is drawn.
    A plan that cannot be estimated (no price to be had) shows no planned dollars.
    """
    if not supported(sys.stdout):
        return run

    def live_run(*args: P.args, **kwargs: P.kwargs) -> R:
        from voltx.backend_factory import make_backend

        try:
            costs = planned_costs(estimate().timeline)
        except VoltxError:
            costs = {}
        session = resolved.session

        def viewer(name: str) -> Backend:
            return make_backend(session, name)

        with live_view(session.store, costs, viewer):
            return run(*args, **kwargs)

    return live_run
