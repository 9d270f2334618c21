"""What a finished job says about itself: its ``result.json``, or why it failed from its log.

The worker writes ``result.json`` (`voltx.worker.write_result`): ``status`` (succeeded or failed),
``outputs`` (artifact name -> digest) and ``duration_s`` on success, ``error`` on failure. A job
that died before writing it is described by its state and the end of its log.

Two endings are worth another attempt (`retry_reason`): a job *lost* with its machine or process,
and a worker *killed by a signal* (exit 128+n from the job's shell, as when the kernel's OOM killer
sends SIGKILL). Both leave the checkpoints committed so far, so the next attempt resumes.
"""

from __future__ import annotations

import json
import signal
from typing import Any

from voltx.backend import JobHandle, JobState, JobStatus
from voltx.job_document import RESULT_FILE

_LOG_TAIL_LINES = 6


def read_result(handle: JobHandle) -> dict[str, Any]:
    """The job's ``result.json`` as a dict; empty when it is absent or not a JSON object."""
    raw = handle.read_file(RESULT_FILE)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return dict(data) if isinstance(data, dict) else {}


def result_outputs(result: dict[str, Any]) -> dict[str, str]:
    """The outputs (artifact name -> digest) a successful result names."""
    return {str(k): str(v) for k, v in result.get("outputs", {}).items()}


def describe_failure(handle: JobHandle, status: JobStatus) -> str:
    """One line on a job that failed without saying why: its state and its log's last lines."""
    data, _offset = handle.read_log(0)
    tail = data.decode(errors="replace").strip().splitlines()[-_LOG_TAIL_LINES:]
    if status.exit_code is not None:
        code = f"exit code {status.exit_code}"
    elif status.detail:
        # What the backend knows beyond the state (a lost host, outputs that could not be
        # brought back from a remote host).
        code = f"{status.state.value} ({status.detail})"
    else:
        code = status.state.value
    return f"job {code}" + (f"; log ends: {' | '.join(tail)}" if tail else "")


def retry_reason(status: JobStatus) -> tuple[str, str] | None:
    """(ledger event, reason) when the job's end is worth another attempt, else None.

    ``("lost", detail)`` for a job whose process or machine vanished; ``("killed", "killed by
    SIGKILL (exit code 137)")`` for a worker a signal ended. A worker that failed on its own (a
    phase error, a bad config) is not retried: it would fail the same way.
    """
    if status.state is JobState.LOST:
        return "lost", status.detail or "the job's process is gone"
    if status.state is not JobState.FAILED or status.exit_code is None:
        return None
    code = status.exit_code
    # The job's shell reports a signal as 128+n; a process waited on directly, as -n.
    number = code - 128 if code > 128 else -code if code < 0 else None
    if number is None:
        return None
    try:
        name = signal.Signals(number).name
    except ValueError:
        return None
    return "killed", f"killed by {name} (exit code {code})"
