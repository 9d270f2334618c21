"""A job on a Vast.ai instance: first the instance is prepared, then the job runs there over SSH.

`VastBackend.submit` makes a handle and starts its `provision` in a thread: find or rent the
instance, wait for it, start the job through the instance's SSH backend. Until that is done the
job reads RUNNING with what it waits for as the detail. From then on the SSH job answers status,
log, files and cancel; the handle adds what only Vast knows: an instance that went away makes the
job LOST at once (rather than after the SSH backend's unreachable timeout).

When the job ends the handle keeps its log, the small files of its folder (``result.json`` among
them) and its final status in the backend's work folder and destroys the instance, so the
scheduler (which reads the result after the status), any later `attach` and any other handle on the
same job still find them: a handle whose job another handle finished reads the status kept here.

**Who destroys.** A handle from `submit` owns its instance. A handle from `attach` (a restarted
orchestrator continuing its run, or ``voltx logs`` from another process) decides at its first
`status` call: if no other live process holds the instance's lease, it takes the lease and owns the
instance from then on; otherwise it only reads. Reading a log alone never takes anything over.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import attrs
import structlog

from voltx.backend import JobHandle, JobRequest, JobState, JobStatus
from voltx.errors import BackendError
from voltx.job_document import JOB_FILE, job_document_in
from voltx_backends import _jobs
from voltx_backends.ssh.handle import SSHJobHandle
from voltx_backends.vast._local import LocalState, read_json, write_json
from voltx_backends.vast.instances import Condition
from voltx_backends.vast.pool import PooledMachine, pinned_argv, share_env
from voltx_backends.vast.pooled import MachinePool
from voltx_backends.vast.prep import prepare
from voltx_backends.vast.provision import (
    InstanceDiedError,
    ProvisionCancelled,
    Provisioner,
    Rental,
)
from voltx_backends.vast.settings import VastSettings

log = structlog.get_logger(__name__)

FINAL_FILE = "final.json"
SSH_REF_FILE = "ssh_ref.json"
# At most this much of a finished job's log is kept here after its instance is gone.
KEPT_LOG_BYTES = 64 * 2**20
# The job folder's files up to this size each are kept too (``result.json``, small reports);
# larger ones (outputs) have been committed to the store by then.
KEPT_FILE_BYTES = 16 * 2**20
# Beside final.json and ssh_ref.json, in a folder of their own so a job's file cannot replace them.
KEPT_FILES_DIR = "files"
# How long cancel and close wait for a provisioning thread to notice and stop.
JOIN_S = 60.0
# The SSH backend reports a host it cannot reach as RUNNING with this detail (for a while).
UNREACHABLE = "host unreachable"


class VastJobOwner(Protocol):
    """What a job handle needs of the backend that made it (`VastBackend` is one).

    Declared here so that the dependency goes one way: the backend makes handles, and a handle
    knows only this much of it.
    """

    @property
    def settings(self) -> VastSettings: ...

    @property
    def state(self) -> LocalState: ...  # this machine's leases and kept job folders

    @property
    def provisioner(self) -> Provisioner: ...

    @property
    def python(self) -> str: ...  # the interpreter the scheduler put in the argv

    @property
    def pool(self) -> MachinePool | None: ...  # the machine pool, with ``pool = true``

    def take_over(self, handle: VastJobHandle) -> bool:
        """Whether a re-attached job becomes the caller's (no other live process holds it)."""
        ...

    def heartbeat(self, label: str, run_id: str | None, instance_id: int | None) -> None:
        """Refresh the lease on `label` now and then."""
        ...

    def instance_trouble(self, rental: Rental | None) -> str | None:
        """Why the job's instance can no longer run it, or None."""
        ...

    def rental_for(self, label: str) -> Rental | None:
        """The instance held for `label`, if any."""
        ...

    def release(self, rental: Rental) -> None:
        """Destroy a rental's instance."""
        ...


class VastJobHandle(JobHandle):
    """A job on a Vast instance (see the module docstring)."""

    def __init__(
        self,
        backend: VastJobOwner,
        job_id: str,
        label: str,
        run_id: str | None,
        *,
        owner: bool | None,
    ) -> None:
        self.job_id = job_id
        self.label = label
        self.run_id = run_id
        # True: destroys its instance; False: only reads; None: decided at the first status().
        self.owner = owner
        self.cancelled = threading.Event()
        self._backend = backend
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._rental: Rental | None = None
        self._inner: SSHJobHandle | None = None
        self._failure: JobStatus | None = None
        self._final: JobStatus | None = None
        self._progress = "waiting for a Vast.ai instance"
        self._last: JobStatus | None = None
        self._last_read = 0.0
        self._next_check = 0.0
        self._kept = backend.state.job_dir(job_id)
        # The pooled machine the job was placed on (``pool = true``), else None.
        self.machine: PooledMachine | None = None

    def __repr__(self) -> str:
        return f"VastJobHandle(job_id={self.job_id!r}, label={self.label!r})"

    @property
    def ref(self) -> dict[str, Any]:
        return {
            "backend": "vast",
            "job_id": self.job_id,
            "label": self.label,
            "run_id": self.run_id,
        }

    @property
    def rental(self) -> Rental | None:
        """The instance the job runs on (and how it is reached), once known."""
        return self._rental

    @property
    def instance_id(self) -> int | None:
        """The instance the job runs on, once known."""
        rental = self._rental
        return rental.id if rental is not None else None

    @property
    def price_per_hour(self) -> float:
        """The instance's ``dph_total`` from the moment Vast reports it (while it loads too),
        nothing before it is rented or after it is given back."""
        if self._final is not None:
            return 0.0
        rental = self._rental or self._backend.rental_for(self.label)
        if rental is None or rental.destroyed:
            return 0.0
        return rental.instance.dph_total

    @property
    def billing_key(self) -> str:
        # One instance per label, and one label per job of a run.
        return f"vast:{self.label}"

    @classmethod
    def finished(
        cls, backend: VastJobOwner, job_id: str, label: str, run_id: str | None
    ) -> VastJobHandle | None:
        """A handle on what a finished job left here, or None if it has not finished."""
        handle = cls(backend, job_id, label, run_id, owner=False)
        handle._final = handle._kept_final()
        return handle if handle._final is not None else None

    def _kept_final(self) -> JobStatus | None:
        """The final status a handle on this job kept here, if one did."""
        kept = read_json(self._kept / FINAL_FILE)
        if not isinstance(kept, dict):
            return None
        try:
            state = JobState(kept.get("state"))
        except ValueError:
            return None
        exit_code = kept.get("exit_code")
        return JobStatus(
            state,
            exit_code if isinstance(exit_code, int) else None,
            str(kept.get("detail") or ""),
        )

    def _ended_elsewhere(self) -> JobStatus | None:
        """Adopt the final status another handle on this job kept (a re-attached handle that
        cancelled it, say): the instance is gone, and every handle must tell the same story."""
        final = self._kept_final()
        if final is not None:
            self._final = final
            rental, self._rental = self._rental, None
            if rental is not None:
                self._backend.provisioner.forget(rental, unpin=False)
        return final

    # -- the background part ---------------------------------------------------------------

    def start(self, work: Callable[..., None], *args: Any) -> None:
        """Run `work` (provisioning, or finding the job again) in a thread of its own."""
        self._thread = threading.Thread(
            target=self._guarded, args=(work, *args), name=f"voltx-vast-{self.job_id}", daemon=True
        )
        self._thread.start()

    def join(self, timeout_s: float = JOIN_S) -> None:
        """Wait for the background part to stop."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def _guarded(self, work: Callable[..., None], *args: Any) -> None:
        try:
            work(*args)
        except ProvisionCancelled:
            log.info("provisioning cancelled", job_id=self.job_id)
        except InstanceDiedError as exc:
            self._fail(JobState.LOST, str(exc))
        except Exception as exc:
            log.error("no instance for the job", job_id=self.job_id, error=str(exc))
            self._fail(JobState.FAILED, f"no Vast.ai instance: {exc}")

    def fail(self, detail: str) -> None:
        """End the job before it started (no machine could be had for it)."""
        self._fail(JobState.FAILED, detail)

    def _fail(self, state: JobState, detail: str) -> None:
        with self._lock:
            if self._failure is None:
                self._failure = JobStatus(state, None, detail)

    def report(self, progress: str) -> None:
        """What provisioning waits for now (the RUNNING status's detail)."""
        self._progress = progress
        if self.owner:
            self._backend.heartbeat(self.label, self.run_id, self.instance_id)

    def provision(self, request: JobRequest) -> None:
        """Find or rent the job's instance and start the job there (the thread's work)."""
        pool = self._backend.pool
        if self.machine is not None and pool is not None:
            pooled = pool.ready(self.machine, self.cancelled, self.report)
            self._use(pooled, lambda: self._launch(pooled, request))
            return
        rental = self._backend.provisioner.obtain(
            self.label, request.resources, self.run_id, self.cancelled, self.report
        )
        self._use(rental, lambda: self._launch(rental, request))

    def reattach(self) -> None:
        """Find the instance and the job an earlier orchestrator started (the thread's work).

        Nothing is taken over here (see the module docstring): the instance is reached with the
        run's key, and the job found by the SSH ref kept when it was started.
        """
        provisioner = self._backend.provisioner
        alive = [i for i in provisioner.labelled(self.label) if i.condition is not Condition.DEAD]
        if not alive:
            self._fail(JobState.LOST, f"{self.label}: its instance is gone")
            return
        ssh_ref = read_json(self._kept / SSH_REF_FILE)
        if not isinstance(ssh_ref, dict):
            # The orchestrator died before the job started there: nothing to follow. The
            # instance is fine; the job's next attempt finds it by its label and uses it.
            self._fail(
                JobState.LOST,
                f"the job never started on instance {alive[0].id} (its orchestrator stopped "
                "first); the next attempt uses that instance",
            )
            return
        rental = provisioner.reach(alive[0], self.run_id, self.cancelled, self.report)
        ssh = rental.ssh
        assert ssh is not None
        self._use(rental, lambda: ssh.attach({**ssh_ref, "host": ssh.destination}))

    def _use(self, rental: Rental, start: Callable[[], SSHJobHandle]) -> None:
        with self._lock:
            stopped = self._final is not None or self.cancelled.is_set()
            if not stopped:
                self._rental = rental
        if stopped:
            # Cancelled (or the backend closed) while the instance was being prepared.
            self._give_back(rental)
            raise ProvisionCancelled
        inner = start()
        with self._lock:
            if self._final is None and not self.cancelled.is_set():
                self._inner = inner
                return
        # Cancelled while the job was being started: stop it again, and give the instance back.
        with contextlib.suppress(BackendError):
            inner.cancel(grace_s=1.0)
        self._give_back(rental)

    def _give_back(self, rental: Rental | None, *, lost: bool = False) -> None:
        pool = self._backend.pool
        if self.machine is not None and pool is not None:
            # A pooled machine outlives its jobs: the share goes back, the pool decides.
            pool.release(self.job_id, lost=lost)
            return
        if rental is None:
            return
        if self.owner:
            self._backend.release(rental)
        else:
            self._backend.provisioner.forget(rental, unpin=False)

    def _launch(self, rental: Rental, request: JobRequest) -> SSHJobHandle:
        """Start the job on the instance through its SSH backend."""
        assert rental.ssh is not None
        ssh = rental.ssh
        self.report(f"starting the job on {rental.describe()}")
        argv = request.argv
        if argv and argv[0] == self._backend.python:
            # The scheduler asked for "our" python before any instance existed.
            argv = (ssh.python, *argv[1:])
        # The scheduler numbers GPUs over every instance; on its own instance a job has 0..n-1.
        devices = tuple(range(len(request.devices)))
        env = dict(request.env)
        pool = self._backend.pool
        share = pool.share(self.job_id) if pool is not None and self.machine else None
        if share is not None:
            # On a shared machine the job gets its share's GPUs and cores, and no more.
            devices = share.gpus
            env.update(share_env(share))
            argv = pinned_argv(
                ssh.python, share, argv, limit_memory=self._backend.settings.pin_memory
            )
        files = dict(request.files)
        job = job_document_in(files)
        if job is not None:
            files[JOB_FILE] = attrs.evolve(job, devices=devices).to_json()
        prepare(rental, request.files, self.report)
        inner = ssh.submit(attrs.evolve(request, argv=argv, devices=devices, files=files, env=env))
        if pool is not None and self.machine is not None:
            pool.started(self.machine)
        # How a restarted orchestrator finds the job again on the instance.
        write_json(self._kept / SSH_REF_FILE, inner.ref)
        return inner

    # -- the job protocol ------------------------------------------------------------------

    def status(self) -> JobStatus:
        with self._lock:
            if self._final is not None:
                return self._final
            ended = self._ended_elsewhere()
            if ended is not None:
                return ended
            if self.owner is None:
                self.owner = self._backend.take_over(self)
            if self._failure is not None:
                return self._finish(self._failure)
            inner = self._inner
            if inner is None:
                return JobStatus(JobState.RUNNING, detail=self._progress)
            now = time.monotonic()
            settings = self._backend.settings
            if self._last is not None and now - self._last_read < settings.status_interval_s:
                return self._last
            try:
                status = inner.status()
            except BackendError as exc:
                status = JobStatus(JobState.RUNNING, detail=f"{UNREACHABLE}: {exc}")
            self._last_read = time.monotonic()
            if status.state is JobState.RUNNING:
                unreachable = status.detail.startswith(UNREACHABLE)
                if unreachable or now >= self._next_check:
                    wait = settings.poll_s if unreachable else settings.instance_check_s
                    self._next_check = now + wait
                    trouble = self._backend.instance_trouble(self._rental)
                    if trouble is not None:
                        status = JobStatus(JobState.LOST, detail=trouble)
            if status.state.finished:
                return self._finish(status)
            if self.owner:
                self._backend.heartbeat(self.label, self.run_id, self.instance_id)
            self._last = status
            return status

    def _finish(self, status: JobStatus) -> JobStatus:
        """Keep what the job left, give the instance back, and remember the outcome."""
        if self.owner:
            if self._inner is not None and status.state is not JobState.LOST:
                self._keep_outputs()
            write_json(
                self._kept / FINAL_FILE,
                {
                    "state": status.state.value,
                    "exit_code": status.exit_code,
                    "detail": status.detail,
                },
            )
        self._final = status
        rental, self._rental = self._rental, None
        self._give_back(rental, lost=status.state is JobState.LOST)
        log.info(
            "vast job finished",
            job_id=self.job_id,
            state=status.state.value,
            detail=status.detail,
            instance=rental.id if rental else None,
        )
        return status

    def _keep_outputs(self) -> None:
        """Copy the log and the job folder's small files here before the instance goes."""
        assert self._inner is not None
        try:
            chunks: list[bytes] = []
            offset = 0
            while offset < KEPT_LOG_BYTES:
                data, offset = self._inner.read_log(offset)
                if not data:
                    break
                chunks.append(data)
            self._kept.mkdir(parents=True, exist_ok=True)
            (self._kept / _jobs.LOG_FILE).write_bytes(b"".join(chunks))
            self._inner.copy_files(self._kept / KEPT_FILES_DIR, KEPT_FILE_BYTES)
        except (BackendError, OSError) as exc:
            log.warning(
                "could not keep the job's log and files", job_id=self.job_id, error=str(exc)
            )

    def read_log(self, offset: int = 0) -> tuple[bytes, int]:
        if offset < 0:
            raise BackendError(f"log offset must not be negative, got {offset}", "vast")
        with self._lock:
            inner = self._inner if self._final is None else None
        if inner is not None:
            try:
                return inner.read_log(offset)
            except BackendError:
                return b"", offset
        return _jobs.read_log(self._kept, offset)

    def read_file(self, name: str) -> bytes | None:
        _jobs.check_file_name(name, "vast")
        with self._lock:
            inner = self._inner if self._final is None else None
        if inner is not None:
            return inner.read_file(name)
        return _jobs.read_file(self._kept / KEPT_FILES_DIR, name, "vast")

    def cancel(self, grace_s: float = 10.0) -> None:
        self.cancelled.set()
        self.join()
        with self._lock:
            if self._final is not None or self._ended_elsewhere() is not None:
                return
            if self.owner is None:
                self.owner = self._backend.take_over(self)
            if self._inner is not None:
                try:
                    self._inner.cancel(grace_s)
                except BackendError as exc:
                    log.warning("could not cancel the job on its instance", error=str(exc))
            self._finish(JobStatus(JobState.FAILED, None, "cancelled"))
