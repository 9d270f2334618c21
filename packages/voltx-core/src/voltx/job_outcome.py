"""What a finished job says about itself: its ``result.json``, or why it failed from its log.

The worker writes ``result.json`` (`voltx.worker.write_result`): ``status`` (succeeded or failed),
``outputs`` (artifact name -> digest) and ``duration_s`` on success, ``error`` on failure. A job
that died before writing it is described by its state and the end of its log.
"""

from __future__ import annotations

import json
from typing import Any

from voltx.backend import JobHandle, JobStatus
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
