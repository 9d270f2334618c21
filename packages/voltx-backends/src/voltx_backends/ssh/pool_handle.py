"""A job of the ssh host pool: placed on a host (or waiting for room on one), then that host's job.

Until a host has room the handle reports the job running and tries again at each poll; once
started it is the host's `SSHJobHandle` with the share it holds there, and gives the share back
when the job ends. The ref names the host and the share, so a new orchestrator finds the job; a
job that started after its ref was recorded leaves its host's ref in the work folder
(`SSHPoolBackend.launched_file`).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import structlog

from voltx.backend import JobHandle, JobRequest, JobState, JobStatus
from voltx.errors import BackendError, VoltxError
from voltx.job_document import JOB_FILE, job_document_in
from voltx.spec import Resources
from voltx_backends._shares import Share, pinned_argv, share_env
from voltx_backends.ssh.handle import SSHJobHandle

if TYPE_CHECKING:
    from voltx_backends.ssh.backend import SSHBackend

log = structlog.get_logger(__name__)


class HostPool(Protocol):
    """What a pool job asks of its pool (`SSHPoolBackend`, which imports this module)."""

    name: str

    @property
    def python(self) -> str: ...
    def reserve(self, job_id: str, wanted: Resources) -> tuple[SSHBackend, Share] | None: ...
    def track(self, handle: SSHPoolJobHandle) -> None: ...
    def poll_running(self) -> None: ...
    def release(self, job_id: str) -> None: ...
    def launched_file(self, job_id: str) -> Path | None: ...


def share_ref(share: Share) -> dict[str, Any]:
    return {
        "gpus": list(share.gpus),
        "cpus": list(share.cpus),
        "ram_gb": share.ram_gb,
        "disk_gb": share.disk_gb,
    }


def share_from_ref(ref: dict[str, Any] | Any) -> Share:
    """The share a job's ref records (an empty one for a ref without it)."""
    raw = ref.get("share") if hasattr(ref, "get") else None
    if raw is None:
        return Share()
    try:
        return Share(
            gpus=tuple(int(gpu) for gpu in raw["gpus"]),
            cpus=tuple(int(cpu) for cpu in raw["cpus"]),
            ram_gb=float(raw["ram_gb"]),
            disk_gb=float(raw["disk_gb"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BackendError(f"bad share in job ref: {raw!r} ({exc})", "ssh") from exc


def launched_ref(path: Path | None) -> dict[str, Any] | None:
    """The ref a job that waited for room recorded when it started, if it did."""
    if path is None or not path.is_file():
        return None
    data = json.loads(path.read_text())
    return data if isinstance(data, dict) else None


def _write_ref(path: Path, ref: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(ref))
    os.replace(partial, path)  # whole or absent, for an orchestrator killed meanwhile


class SSHPoolJobHandle(JobHandle):
    """A job of `SSHPoolBackend` (see the module docstring)."""

    def __init__(
        self,
        pool: HostPool,
        job_id: str,
        *,
        request: JobRequest | None = None,
        inner: SSHJobHandle | None = None,
        host: SSHBackend | None = None,
        share: Share | None = None,
    ) -> None:
        self.job_id = job_id
        self._pool = pool
        self._request = request
        self._inner = inner
        self._host = host
        self._share = share
        self._released = False
        self._cancelled = False
        # Set when the job could not be started on the host it was placed on: final.
        self._start_failed: JobStatus | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        where = self._host.destination if self._host is not None else "no host yet"
        return f"SSHPoolJobHandle(job_id={self.job_id!r}, host={where!r})"

    @property
    def host(self) -> str | None:
        """The destination of the job's host (None: not started yet)."""
        return self._host.destination if self._host is not None else None

    @property
    def share(self) -> Share | None:
        return self._share

    @property
    def ref(self) -> dict[str, Any]:
        if self._inner is None or self._share is None:
            return {"backend": self._pool.name, "job_id": self.job_id, "host": None}
        return {**self._inner.ref, "pool": True, "share": share_ref(self._share)}

    def start_if_room(self) -> bool:
        """Place and start the job if a host has room for it now; True once it has started."""
        if self._inner is not None:
            return True
        if self._request is None or self._cancelled:
            return False
        if not self._start():
            # Jobs that have ended but whose handles nobody has asked since still hold their
            # shares: asking them gives those back (the scheduler polls all, a program may not).
            self._pool.poll_running()
            if not self._start():
                return False
        path = self._pool.launched_file(self.job_id)
        if path is not None:
            _write_ref(path, self.ref)
        return True

    def _start(self) -> bool:
        with self._lock:
            if self._inner is not None:
                return True
            assert self._request is not None
            placed = self._pool.reserve(self.job_id, self._request.resources)
            if placed is None:
                return False
            host, share = placed
            try:
                self._inner = host.submit(_pinned(self._request, host, share, self._pool.python))
            except BaseException:
                self._pool.release(self.job_id)
                raise
            self._host, self._share = host, share
        self._pool.track(self)
        log.debug("job placed", job_id=self.job_id, host=host.destination, cpus=share.cpus)
        return True

    def _release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        # The launched file stays: a new orchestrator that attaches after the job has ended
        # still finds the host holding its exit code and log, rather than running it again.
        self._pool.release(self.job_id)

    def status(self) -> JobStatus:
        if self._inner is None:
            if self._start_failed is not None:
                return self._start_failed
            if self._cancelled:
                return JobStatus(JobState.FAILED, detail="cancelled before a host had room")
            if self._request is None:
                return JobStatus(JobState.LOST, detail="the job had not started on any host")
            try:
                started = self.start_if_room()
            except VoltxError as exc:
                # The host it was placed on refused the start: the scheduler's retry policy decides.
                self._start_failed = JobStatus(
                    JobState.FAILED, detail=f"could not start on its host: {exc}"
                )
                return self._start_failed
            if not started:
                return JobStatus(JobState.RUNNING, detail="waiting for room on a host")
        assert self._inner is not None
        status = self._inner.status()
        if status.state.finished:
            self._release()
        return status

    def read_log(self, offset: int = 0) -> tuple[bytes, int]:
        if self._inner is None:
            return b"", offset
        return self._inner.read_log(offset)

    def read_file(self, name: str) -> bytes | None:
        return self._inner.read_file(name) if self._inner is not None else None

    def cancel(self, grace_s: float = 10.0) -> None:
        with self._lock:
            self._cancelled = True
            inner = self._inner
        if inner is not None:
            inner.cancel(grace_s)

    @property
    def price_per_hour(self) -> float:
        return self._host.dollars_per_hour if self._host is not None else 0.0

    @property
    def billing_key(self) -> str:
        # Every job on one host shares its bill; a job not started yet costs nothing.
        return self._inner.billing_key if self._inner is not None else f"job:{self.job_id}"


def _pinned(request: JobRequest, host: SSHBackend, share: Share, pool_python: str) -> JobRequest:
    """`request` as it runs on `host` within `share`: its GPUs and cores, and the host's
    Python where the scheduler named the pool's."""
    argv = request.argv
    if argv and argv[0] == pool_python:
        argv = (host.python, *argv[1:])
    env = {**request.env, **share_env(share)}
    files = dict(request.files)
    job = job_document_in(files)
    if job is not None:
        # The scheduler numbers GPUs over every host; on its host the job has its share's.
        files[JOB_FILE] = attrs.evolve(job, devices=share.gpus).to_json()
    return attrs.evolve(
        request,
        argv=pinned_argv(host.python, share, argv),
        devices=share.gpus,
        env=env,
        files=files,
    )
