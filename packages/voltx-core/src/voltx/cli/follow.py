"""`voltx logs PHASE [-f]`: a phase's log, wherever its job runs, read through its backend.

The run ledger records each attempt's job (its backend and the ref `Backend.attach` takes), so
any process can read the log from a byte offset: this one prints what is there and, following,
keeps reading until the job ends. Following starts before the phase does (it waits for the
ledger to show a job), and moves on to the next attempt when a job is lost and started again.
It stops waiting when the run ends or its orchestrator is gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import BinaryIO

import attrs

from voltx.backend import Backend, JobHandle, JobState
from voltx.errors import VoltxError
from voltx.ledger import Ledger, PhaseState, owner_alive
from voltx.session import Session

_POLL_S = 0.2  # the log
_LEDGER_POLL_S = 0.5  # the ledger (a listing of the store)
# Ledger states after which the phase will start no further job in this run.
_DONE = ("succeeded", "failed", "skipped", "blocked", "cancelled")

MakeBackend = Callable[[Session], Backend]


def print_log(
    session: Session,
    run_id: str,
    phase_id: str,
    out: BinaryIO,
    make_backend: MakeBackend,
    *,
    follow: bool = False,
) -> None:
    """Write the phase's log to `out`; with `follow`, until its last job has ended."""
    ledger = Ledger(session.store, run_id)
    meta = ledger.meta()
    if meta is None:
        raise VoltxError(f"no run {run_id!r} in store {session.store.url}")
    if phase_id not in meta.get("phases", []):
        raise VoltxError(f"phase {phase_id} is not part of run {run_id}")
    backends: dict[str, Backend] = {}
    try:
        attempt = 0
        while True:
            state = _next_job(ledger, phase_id, after=attempt, wait=follow)
            if state is None:
                return
            attempt = state.attempts
            name = state.backend or session.backend
            if name not in backends:
                backends[name] = make_backend(attrs.evolve(session, backend=name))
            assert state.job is not None
            ended = _copy(backends[name].attach(state.job), out, follow)
            if not follow or ended is not JobState.LOST:
                return
    finally:
        for backend in backends.values():
            backend.close()


def _copy(handle: JobHandle, out: BinaryIO, follow: bool) -> JobState | None:
    """Copy the job's log from the start; following, until the job ends. Returns its end."""
    offset = 0
    while True:
        data, offset = handle.read_log(offset)
        if data:
            out.write(data)
            out.flush()
            continue
        if not follow:
            return None
        status = handle.status()
        if status.state.finished:
            # What the job wrote between the last read and its end.
            data, offset = handle.read_log(offset)
            if data:
                out.write(data)
                out.flush()
            return status.state
        time.sleep(_POLL_S)


def _next_job(ledger: Ledger, phase_id: str, *, after: int, wait: bool) -> PhaseState | None:
    """The phase's latest job of an attempt later than `after`; waiting for one with `wait`.

    None when there is none to come: the phase ended, the run finished, or its orchestrator
    is gone (a job already printed is not waited for again).
    """
    while True:
        events = ledger.events()
        state = ledger.phase_states().get(phase_id)
        if state is not None and state.job and state.attempts > after:
            return state
        if not wait:
            if after:
                return None
            raise VoltxError(f"phase {phase_id} has no job in run {ledger.run_id}")
        if state is not None and state.state in _DONE:
            return None
        if any(e.kind == "run_finished" for e in events):
            return None
        if owner_alive(ledger.owner()) is False:
            if after:
                return None
            raise VoltxError(
                f"phase {phase_id} has no job in run {ledger.run_id}, and the run's "
                "orchestrator is gone"
            )
        time.sleep(_LEDGER_POLL_S)
