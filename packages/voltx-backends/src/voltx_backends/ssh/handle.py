"""A job of the ``ssh`` backend: its folder on the host, read over SSH.

Status comes from the folder (asked at most every `STATUS_INTERVAL_S`), a host that stops
answering is retried with backoff before the job counts as lost, and with a folder store the
handle brings the outputs back after success and the checkpoints back while the job runs
(`voltx_backends.ssh.staging`, `voltx_backends.ssh.checkpoint_mirror`).
"""

from __future__ import annotations

import json
import posixpath
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import structlog

from voltx.backend import JobHandle, JobState, JobStatus
from voltx.errors import BackendError, VoltxError
from voltx.job_document import JOB_FILE, RESULT_FILE, JobDocument
from voltx.store import ArtifactStore
from voltx_backends import _jobs
from voltx_backends.ssh import _scripts, checkpoint_mirror, staging
from voltx_backends.ssh.target import AuthenticationError, HostKeyError, TransportError
from voltx_backends.ssh.transport import SSHTransport

log = structlog.get_logger(__name__)

# A running job's status is asked of the host at most this often; the scheduler polls faster,
# and each ask starts a few processes on the host.
STATUS_INTERVAL_S = 0.3
# While the host cannot be reached, status asks again at most this often (seconds, doubling).
_RETRY_FIRST_S = 0.5
_RETRY_MAX_S = 15.0


class SSHHost(Protocol):
    """What a job handle needs of the backend that started it (`SSHBackend` is one).

    Declared here so that the dependency goes one way: the backend makes handles, and a handle
    knows only this much of it.
    """

    @property
    def name(self) -> str: ...  # the backend's name, for job refs

    @property
    def destination(self) -> str: ...  # user@host:port, naming the host in refs and messages

    @property
    def transport(self) -> SSHTransport: ...

    @property
    def remote_root(self) -> str: ...  # the host's folder holding jobs and the staged store

    @property
    def python(self) -> str: ...  # the host's interpreter with voltx (copies checkpoints)

    @property
    def unreachable_timeout_s(self) -> float: ...

    @property
    def checkpoint_pull_s(self) -> float: ...

    @property
    def dollars_per_hour(self) -> float: ...


class SSHJobHandle(JobHandle):
    """A job in a folder on an SSH host."""

    def __init__(
        self,
        backend: SSHHost,
        job_id: str,
        job_dir: str,
        stage_back: str | None = None,
        checkpoints: str | None = None,
    ) -> None:
        self.job_id = job_id
        self.job_dir = job_dir
        # The folder store on this machine that the job's outputs come back to (None: the job
        # used a store the host reaches itself).
        self.stage_back = stage_back
        # The job's checkpoint folder, relative to both stores, mirrored here while it runs
        # (None: nothing to mirror).
        self.checkpoints = checkpoints if stage_back is not None else None
        self._backend = backend
        self._lock = threading.Lock()
        self._staged = False
        self._stage_error: str | None = None
        self._unreachable_since: float | None = None
        self._retry_at = 0.0
        self._failures = 0
        self._last_unreachable: JobStatus | None = None
        self._last_running: JobStatus | None = None
        self._last_running_at = 0.0
        self._pull_failing_since: float | None = None
        self._checkpoint_lock = threading.Lock()
        self._checkpoint_pull: threading.Thread | None = None
        self._checkpoint_pulled_at = time.monotonic()
        self._checkpoints_final = False

    def __repr__(self) -> str:
        return f"SSHJobHandle(job_id={self.job_id!r}, host={self._backend.destination!r})"

    @property
    def _transport(self) -> SSHTransport:
        return self._backend.transport

    @property
    def ref(self) -> dict[str, Any]:
        return {
            "backend": self._backend.name,
            "host": self._backend.destination,
            "job_id": self.job_id,
            "job_dir": self.job_dir,
            "stage_back": self.stage_back,
            "checkpoints": self.checkpoints,
        }

    # -- status ----------------------------------------------------------------------------

    def status(self) -> JobStatus:
        """The job's state from its folder; RUNNING while the host is briefly unreachable.

        A host that stays unreachable for the backend's `unreachable_timeout_s` makes the job
        LOST. A job that succeeded with a folder store has its outputs brought back first.
        """
        now = time.monotonic()
        if self._unreachable_since is not None and now < self._retry_at:
            assert self._last_unreachable is not None
            return self._last_unreachable
        if self._last_running is not None and now - self._last_running_at < STATUS_INTERVAL_S:
            return self._last_running
        try:
            output = self._transport.check(
                _scripts.status(self.job_dir, self.job_id),
                idempotent=True,
                what=f"reading the status of job {self.job_id}",
            )
        except (HostKeyError, AuthenticationError):
            raise
        except TransportError as exc:
            return self._unreachable(exc)
        self._reachable()
        status = _scripts.parse_status(output.decode(errors="replace"), self.job_dir)
        if status.state is JobState.RUNNING:
            self._last_running, self._last_running_at = status, time.monotonic()
            self._pull_checkpoints_now_and_then()
        else:
            self._last_running = None
            self._pull_checkpoints_at_the_end(status)
        if status.state is JobState.SUCCEEDED and self.stage_back is not None:
            return self._with_outputs_back(status)
        return status

    def _reachable(self) -> None:
        self._unreachable_since = None
        self._failures = 0

    def _unreachable(self, error: TransportError) -> JobStatus:
        now = time.monotonic()
        if self._unreachable_since is None:
            self._unreachable_since = now
        waited = now - self._unreachable_since
        self._failures += 1
        self._retry_at = now + min(_RETRY_MAX_S, _RETRY_FIRST_S * 2 ** (self._failures - 1))
        limit = self._backend.unreachable_timeout_s
        if waited >= limit:
            self._last_unreachable = JobStatus(
                JobState.LOST,
                detail=f"host {self._backend.destination} unreachable for {waited:.0f} s: {error}",
            )
        else:
            self._last_unreachable = JobStatus(
                JobState.RUNNING, detail=f"host unreachable, trying again: {error}"
            )
            log.warning("host unreachable", host=self._backend.destination, error=str(error))
        return self._last_unreachable

    def _with_outputs_back(self, status: JobStatus) -> JobStatus:
        with self._lock:
            if not self._staged:
                try:
                    self._pull_outputs()
                except (HostKeyError, AuthenticationError):
                    raise
                except TransportError as exc:
                    # The outputs are safe on the host: report the job as still running and
                    # try again at the next poll, for as long as an unreachable host is waited for.
                    now = time.monotonic()
                    self._pull_failing_since = self._pull_failing_since or now
                    if now - self._pull_failing_since < self._backend.unreachable_timeout_s:
                        return self._unreachable(exc)
                    self._stage_error = f"{type(exc).__name__}: {exc}"
                except (VoltxError, OSError, ValueError, KeyError) as exc:
                    self._stage_error = f"{type(exc).__name__}: {exc}"
                    log.error("outputs not brought back", job_id=self.job_id, error=str(exc))
                self._staged = True
        if self._stage_error is not None:
            return JobStatus(
                JobState.FAILED,
                None,
                f"the job succeeded on {self._backend.destination}, but its outputs could not "
                f"be brought back: {self._stage_error}",
            )
        return status

    # -- checkpoints (staged jobs) ---------------------------------------------------------

    def _pull_checkpoints_now_and_then(self) -> None:
        """Start a pull of new checkpoints in the background, if one is due and none runs."""
        if self.checkpoints is None:
            return
        with self._checkpoint_lock:
            now = time.monotonic()
            running = self._checkpoint_pull is not None and self._checkpoint_pull.is_alive()
            if running or now - self._checkpoint_pulled_at < self._backend.checkpoint_pull_s:
                return
            self._checkpoint_pulled_at = now
            # In a thread: a large checkpoint must not hold up the scheduler's polls.
            self._checkpoint_pull = threading.Thread(
                target=self._pull_checkpoints,
                name=f"voltx-ssh-checkpoints-{self.job_id}",
                daemon=True,
            )
            self._checkpoint_pull.start()

    def _pull_checkpoints_at_the_end(self, status: JobStatus) -> None:
        """Once the job has finished, pull what it checkpointed last (before a retry pushes)."""
        if self.checkpoints is None or status.state is JobState.LOST:
            return
        with self._checkpoint_lock:
            if self._checkpoints_final:
                return
            self._checkpoints_final = True
            pulling = self._checkpoint_pull
        if pulling is not None:
            pulling.join(self._backend.unreachable_timeout_s)
            if pulling.is_alive():
                return  # stuck on a host that stopped answering: nothing more to get from it
        self._pull_checkpoints()

    def _pull_checkpoints(self) -> None:
        """Copy the host's new complete checkpoints here; a failure is only a warning."""
        assert self.checkpoints is not None and self.stage_back is not None
        try:
            local = ArtifactStore.open(self.stage_back).local_dir(*self.checkpoints.split("/"))
            assert local is not None
            remote = f"{self._backend.remote_root}/{staging.REMOTE_STORE_DIR}/{self.checkpoints}"
            step = checkpoint_mirror.pull(self._transport, self._backend.python, remote, local)
        except (VoltxError, OSError, ValueError, KeyError, TypeError) as exc:
            log.warning(
                "checkpoints not copied from the host",
                job_id=self.job_id,
                host=self._backend.destination,
                error=f"{type(exc).__name__}: {exc}",
            )
            return
        if step is not None:
            log.debug("checkpoints copied from the host", job_id=self.job_id, step=step)

    def _pull_outputs(self) -> None:
        assert self.stage_back is not None
        result = json.loads(self.read_file(RESULT_FILE) or b"{}")
        if not isinstance(result, dict) or result.get("status") != "succeeded":
            return  # the worker failed: there is nothing to bring back
        raw = self.read_file(JOB_FILE)
        if raw is None:
            raise BackendError(f"job {self.job_id} has no {JOB_FILE} on the host any more", "ssh")
        job = JobDocument.from_json(raw, f"{self.job_dir}/{JOB_FILE}")
        store = ArtifactStore.open(self.stage_back)
        assert store.local_root is not None
        root = posixpath.dirname(posixpath.dirname(self.job_dir))
        staging.pull_outputs(
            self._transport, store, root, self.job_id, job, result, store.local_root / "tmp"
        )

    # -- the folder ------------------------------------------------------------------------

    def read_log(self, offset: int = 0) -> tuple[bytes, int]:
        if offset < 0:
            raise BackendError(f"log offset must not be negative, got {offset}", "ssh")
        data = self._transport.check(
            _scripts.read_log(self.job_dir, offset),
            idempotent=True,
            what=f"reading the log of job {self.job_id}",
        )
        return data, offset + len(data)

    def read_file(self, name: str) -> bytes | None:
        _jobs.check_file_name(name, "ssh")
        result = self._transport.run(_scripts.read_file(self.job_dir, name), idempotent=True)
        if result.returncode == _scripts.ABSENT_RC:
            return None
        if result.returncode != 0:
            raise BackendError(
                f"cannot read {name} of job {self.job_id} on {self._backend.destination}: "
                f"{result.stderr.decode(errors='replace').strip()}",
                "ssh",
            )
        return result.stdout

    def copy_files(self, local_dir: Path, max_file_bytes: int) -> list[str]:
        """Copy the job folder's plain files of at most `max_file_bytes` each into `local_dir`
        (what is kept of a job whose host is about to go away); returns their names."""
        listing = self._transport.check(
            _scripts.small_files(self.job_dir, max_file_bytes),
            idempotent=True,
            what=f"listing the files of job {self.job_id}",
        )
        names = [
            name
            for name in listing.decode(errors="replace").splitlines()
            if name not in {"", ".", ".."} and "/" not in name
        ]
        self._transport.get(self.job_dir, local_dir, names)
        return names

    @property
    def price_per_hour(self) -> float:
        return self._backend.dollars_per_hour

    @property
    def billing_key(self) -> str:
        # Every job on the host shares its bill.
        return f"ssh:{self._backend.destination}"

    def cancel(self, grace_s: float = 10.0) -> None:
        self._last_running = None  # the next status is read afresh
        waits = grace_s + _jobs.KILL_WAIT_S + _scripts.PID_WAIT_TENTHS / 10
        self._transport.check(
            _scripts.cancel(self.job_dir, self.job_id, grace_s),
            timeout=waits + 60,
            idempotent=True,
            what=f"cancelling job {self.job_id}",
        )
