"""The run ledger: every event of a run, kept in the store so any process can read it.

Each event is its own small record (``runs/<run>/events/<time>-<seq>.json``) because object
stores cannot append; `voltx status` and a continued run read them back in order.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from voltx.store import ArtifactStore
from voltx.store.artifacts import utc_now

TERMINAL_PHASE_STATES = ("succeeded", "skipped")
# The events that say which process drives the run from then on (its `owner`).
OWNER_EVENTS = ("run_started", "run_continued")


@attrs.frozen
class Event:
    """One line of a run's history."""

    kind: str  # run_started, queued, started, finished, failed, skipped, blocked, cancelled, ...
    time: str
    phase_id: str | None = None
    data: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class PhaseState:
    """What the ledger says about one phase of a run."""

    phase_id: str
    state: str
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    reason: str = ""
    outputs: Mapping[str, str] = attrs.field(factory=dict)
    job: Mapping[str, Any] | None = None
    backend: str | None = None


def since_last_start(events: Sequence[Event]) -> Sequence[Event]:
    """The events of the latest invocation of a run: from its last start or continuation on."""
    starts = [i for i, e in enumerate(events) if e.kind in OWNER_EVENTS]
    return events[starts[-1] :] if starts else events


def target_key(targets: Iterable[str], profile: str, backend: str) -> str:
    """Identifies "the same target": rerunning it continues an unfinished run."""
    text = "|".join([",".join(sorted(targets)), profile, backend])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def new_run_id() -> str:
    """A sortable, unique run id: time then randomness."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


class Ledger:
    """Append and read the events of one run."""

    def __init__(self, store: ArtifactStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self._sequence = 0

    def record(self, kind: str, phase_id: str | None = None, **data: Any) -> Event:
        if kind in OWNER_EVENTS:
            # Who drives the run: `voltx status` tells a live run from one whose orchestrator died.
            self.store.write_record(f"runs/{self.run_id}/owner.json", current_owner())
        event = Event(kind=kind, time=utc_now(), phase_id=phase_id, data=data)
        self._sequence += 1
        # Nanosecond time first so names sort in order; the random tail keeps two writers apart.
        name = f"{time.time_ns():020d}-{self._sequence:06d}-{uuid.uuid4().hex[:6]}"
        self.store.write_record(
            f"runs/{self.run_id}/events/{name}.json",
            {"kind": kind, "time": event.time, "phase_id": phase_id, "data": data},
            create=True,
        )
        return event

    def events(self) -> list[Event]:
        return [
            Event(
                kind=str(doc["kind"]),
                time=str(doc["time"]),
                phase_id=doc.get("phase_id"),
                data=doc.get("data", {}),
            )
            for _path, doc in self.store.iter_records(f"runs/{self.run_id}/events")
        ]

    def owner(self) -> dict[str, Any] | None:
        """The process that started or last continued the run (pid, host, start time)."""
        return self.store.read_record(f"runs/{self.run_id}/owner.json")

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        self.store.write_record(f"runs/{self.run_id}/run.json", meta)

    def meta(self) -> dict[str, Any] | None:
        return self.store.read_record(f"runs/{self.run_id}/run.json")

    def phase_states(self) -> dict[str, PhaseState]:
        """Fold the events into the latest state of each phase."""
        states: dict[str, PhaseState] = {}
        for event in self.events():
            if event.phase_id is None:
                continue
            current = states.get(event.phase_id, PhaseState(event.phase_id, "pending"))
            data = event.data
            if event.kind == "queued":
                current = attrs.evolve(current, state="queued")
            elif event.kind == "started":
                current = attrs.evolve(
                    current,
                    state="running",
                    attempts=int(data.get("attempt", current.attempts + 1)),
                    started_at=event.time,
                    job=data.get("job"),
                    backend=data.get("backend"),
                )
            else:
                current = attrs.evolve(
                    current,
                    state=event.kind,
                    finished_at=event.time,
                    reason=str(data.get("reason", data.get("error", ""))),
                    outputs=data.get("outputs", current.outputs),
                )
            states[event.phase_id] = current
        return states


def _process_start(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    with contextlib.suppress(IndexError, ValueError):
        return int(fields[19])
    return None


def current_owner() -> dict[str, Any]:
    """This process, as a run's ledger records its orchestrator."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "process_start": _process_start(pid)}


def owner_alive(owner: Mapping[str, Any] | None) -> bool | None:
    """Whether the orchestrator `owner` still runs; None when this machine cannot tell."""
    if not owner or owner.get("host") != socket.gethostname():
        return None
    pid = int(owner.get("pid") or 0)
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, someone else's
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
        state = stat.rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc: the signal answered, that is all we know
    if state in ("Z", "X"):
        return False  # killed, and not yet reaped by its parent
    recorded = owner.get("process_start")
    return recorded is None or recorded == _process_start(pid)


def remember_run(store: ArtifactStore, key: str, run_id: str) -> None:
    store.write_record(f"runs/index/{key}.json", {"run_id": run_id})


def last_run_for(store: ArtifactStore, key: str) -> str | None:
    record = store.read_record(f"runs/index/{key}.json")
    return None if record is None else str(record["run_id"])


def latest_run_id(store: ArtifactStore) -> str | None:
    """The most recently started run in the store."""
    record = store.read_record("runs/latest.json")
    return None if record is None else str(record["run_id"])
