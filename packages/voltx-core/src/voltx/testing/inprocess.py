"""An in-process backend: runs worker jobs on threads of this process.

It lets tests use a ``memory://`` store (which other processes cannot see) and see a phase's
exceptions without subprocesses. It runs only voltx worker jobs; a job cannot be interrupted, so
`cancel` waits for it.
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from voltx.backend import Backend, JobHandle, JobRequest, JobState, JobStatus
from voltx.errors import BackendError
from voltx.hookspecs import hookimpl
from voltx.spec import PhaseSpec, Resources

_jobs: dict[str, _InProcessJob] = {}


def memory_store_url() -> str:
    """A fresh, empty ``memory://`` store URL."""
    return f"memory://voltx-test-{uuid.uuid4().hex[:12]}"


class _InProcessJob(JobHandle):
    def __init__(self, job_id: str, job_dir: Path) -> None:
        self.job_id = job_id
        self.job_dir = job_dir
        self.exit_code: int | None = None
        self.thread = threading.Thread(target=self._run, name=f"voltx-job-{job_id}", daemon=True)

    def _run(self) -> None:
        from voltx.worker import run_job

        with open(self.job_dir / "log", "a", encoding="utf-8") as log:
            try:
                self.exit_code = run_job(self.job_dir, log_stream=log)
            except BaseException:
                self.exit_code = 1

    @property
    def ref(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "job_dir": str(self.job_dir)}

    def status(self) -> JobStatus:
        if self.thread.is_alive():
            return JobStatus(JobState.RUNNING)
        if self.exit_code is None:
            return JobStatus(JobState.LOST, detail="thread ended without an exit code")
        state = JobState.SUCCEEDED if self.exit_code == 0 else JobState.FAILED
        return JobStatus(state, self.exit_code)

    def read_log(self, offset: int = 0) -> tuple[bytes, int]:
        try:
            with open(self.job_dir / "log", "rb") as stream:
                stream.seek(offset)
                data = stream.read()
        except FileNotFoundError:
            return b"", offset
        return data, offset + len(data)

    def read_file(self, name: str) -> bytes | None:
        if "/" in name or name.startswith("."):
            raise BackendError(f"job file name {name!r} must be a plain name")
        path = self.job_dir / name
        return path.read_bytes() if path.exists() else None

    def cancel(self, grace_s: float = 10.0) -> None:
        self.thread.join()


class InProcessBackend(Backend):
    """Runs each voltx worker job on a thread; for tests and notebooks."""

    name = "inprocess"

    def __init__(self, work_dir: Path | None = None, cpu_cores: int | None = None) -> None:
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="voltx-inprocess-"))
        self.cpu_cores = cpu_cores or os.cpu_count() or 1

    @property
    def runs_in_process(self) -> bool:
        return True

    def capacity(self) -> Resources:
        # Threads share this process's memory; the scheduler should not ration it.
        return Resources(cpu_cores=self.cpu_cores, ram_gb=float("inf"), disk_gb=float("inf"))

    def submit(self, request: JobRequest) -> JobHandle:
        if tuple(request.argv[1:4]) != ("-m", "voltx", "worker"):
            raise BackendError("the in-process backend runs only voltx worker jobs", self.name)
        if request.env:
            # Secrets reach the worker through the environment; on a thread that is ours.
            os.environ.update(request.env)
        job_dir = self.work_dir / "jobs" / request.job_id
        job_dir.mkdir(parents=True, exist_ok=True)
        for name, data in request.files.items():
            (job_dir / name).write_bytes(data)
        job = _InProcessJob(request.job_id, job_dir)
        _jobs[request.job_id] = job
        job.thread.start()
        return job

    def attach(self, ref: Mapping[str, Any]) -> JobHandle:
        job = _jobs.get(str(ref.get("job_id")))
        if job is None:
            raise BackendError(f"no in-process job {ref.get('job_id')!r} in this process")
        return job


class _PhasePlugin:
    def __init__(self, specs: tuple[PhaseSpec, ...]) -> None:
        self.specs = specs

    @hookimpl
    def register_phases(self, register: Any) -> None:
        for spec in self.specs:
            register(spec)


def phase_plugin(*specs: PhaseSpec) -> object:
    """A plugin object registering `specs`; use with `registered_plugin` in a test."""
    return _PhasePlugin(specs)
