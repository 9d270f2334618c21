"""The ``vast`` backend: every job on an instance of its own, rented on Vast.ai for the job.

    [project]
    backend = "vast"

    [backends.vast]                # every key optional; see `VastSettings`
    gpu_name = "RTX 4090"
    max_dph = 0.8

    VAST_API_KEY=... voltx run all

`submit` returns at once; a thread per job finds or rents the instance (label
``voltx-<run>-<phase>``), waits until it runs and SSH answers (`voltx_backends.vast.provision`),
and then starts the job on it through the ``ssh`` backend, which also serves its status, log,
files and cancel from then on. Until then the job reads RUNNING, with what it waits for as the
detail.

**No instance outlives its job.** When the job's status turns final its log and ``result.json``
are copied here (``<work_dir>/vast/jobs/<job>/``, where later reads find them) and the instance is
destroyed (`voltx_backends.vast.handle`). A job whose instance died (preempted, offline) is LOST,
and its instance destroyed, so the scheduler starts it again on a new one. Cancel destroys;
`close` destroys whatever this backend still holds (the API's ``finally`` calls it, on success,
failure, Ctrl-C or any exception), and an ``atexit`` hook closes any backend left open. A killed
orchestrator (SIGKILL, power loss) cannot clean up: its instances run on, and the rerun of the same
run finds them by label, re-attaching to a job still running there and putting the job's next
attempt on an instance whose job never started, instead of renting again. ``voltx vast reap``
destroys the ``voltx-`` instances that no live run owns.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from voltx.backend import Backend, JobRequest, MachineUsage, PhaseSlot, Quote, UpcomingPhase
from voltx.errors import BackendError
from voltx.job_document import job_document_in
from voltx.spec import Resources
from voltx_backends import _jobs
from voltx_backends.vast._local import LeaseRecord, LocalState
from voltx_backends.vast.client import RetryPolicy, VastAPIError, VastClient, load_api_key
from voltx_backends.vast.gpus import relative_speed
from voltx_backends.vast.handle import VastJobHandle
from voltx_backends.vast.instances import LABEL_PREFIX, Condition, Instance
from voltx_backends.vast.offers import OfferQuery
from voltx_backends.vast.pool_plan import machine_plan_lines
from voltx_backends.vast.pooled import MachinePool
from voltx_backends.vast.provision import Provisioner, Rental
from voltx_backends.vast.settings import VastSettings

log = structlog.get_logger(__name__)

# Plans ask for prices often (every phase, every finished job): the market is asked at most this
# often per kind of phase, and the price range comes from this many of the cheapest offers.
QUOTE_TTL_S = 300.0
QUOTE_OFFERS = 5


def job_label(request: JobRequest) -> tuple[str, str | None]:
    """The instance label for a job, ``voltx-<run>-<phase>``, and the run id.

    Read from the worker's ``job.json``; a job that is not a phase (a test, a plain command)
    gets ``voltx-<job id>``.
    """
    job = job_document_in(request.files)
    if job is not None and job.run_id and job.phase_id:
        return f"{LABEL_PREFIX}{job.run_id}-{job.phase_id}", job.run_id
    return f"{LABEL_PREFIX}{request.job_id}", None


class VastBackend(Backend):
    """Runs each job on a Vast.ai instance of its own (see the module docstring)."""

    name = "vast"

    def __init__(
        self,
        work_dir: Path | None = None,
        *,
        client: VastClient | None = None,
        settings: VastSettings | None = None,
        **options: Any,
    ) -> None:
        if settings is not None and options:
            raise BackendError("vast: give settings or keyword settings, not both", self.name)
        self.settings = settings or VastSettings.from_options(options)
        self.work_dir = Path(work_dir) if work_dir is not None else _default_work_dir()
        self.state = LocalState(self.work_dir)
        # Made on first use, so that a plan or a preflight without an API key can say so
        # instead of failing to make the backend at all.
        self._client = client
        self._provisioner: Provisioner | None = None
        self._lock = threading.Lock()
        self._handles: list[VastJobHandle] = []
        # Instances rented or adopted for a job and not yet handed to it: close destroys them.
        self._rentals: dict[int, Rental] = {}
        # Labels whose lease this backend took: close looks for any instance left with them.
        self._labels: set[str] = set()
        self._runs: set[str] = set()
        self._heartbeats: dict[str, float] = {}
        self._quotes: dict[Resources, tuple[float, Quote]] = {}
        # Jobs share and reuse machines (``pool = true``; voltx_backends.vast.pooled).
        self.pool = MachinePool(self) if self.settings.pool else None
        _open_backends.add(self)

    def __repr__(self) -> str:
        return f"VastBackend(work_dir={str(self.work_dir)!r})"

    @property
    def client(self) -> VastClient:
        """The API client (reads the API key on first use)."""
        if self._client is None:
            key = load_api_key(self.settings.api_key, self.settings.api_key_file)
            self._client = VastClient(
                key,
                url=self.settings.url,
                timeout_s=self.settings.request_timeout_s,
                min_interval_s=self.settings.request_spacing_s,
                retry=RetryPolicy(
                    attempts=self.settings.request_attempts,
                    first_s=self.settings.retry_backoff_s,
                ),
            )
        return self._client

    @property
    def provisioner(self) -> Provisioner:
        """What rents, waits for and destroys instances."""
        if self._provisioner is None:
            self._provisioner = Provisioner(
                self.client, self.settings, self.state, self._register, self._unregister
            )
        return self._provisioner

    @property
    def python(self) -> str:
        # The instance's python is known only once it runs; the handle puts it in the argv.
        return self.settings.python

    def capacity(self) -> Resources:
        # Every job brings its own machine: only the GPU budget bounds what runs at once.
        return Resources(
            gpus=self.settings.max_gpus,
            gpu_memory_gb=float("inf"),
            cpu_cores=2**31 - 1,
            ram_gb=float("inf"),
            disk_gb=float("inf"),
        )

    def quote(self, resources: Resources) -> Quote:
        """The market now for a phase with `resources`: the cheapest matching offer's price
        (the dearest of the next few as the high end), its GPU as the host, its bandwidth.

        Asked once per kind of phase every few minutes; an API that cannot answer gives a
        quote with no price rather than an error (a plan must not fail on it).
        """
        now = time.monotonic()
        cached = self._quotes.get(resources)
        if cached is not None and now - cached[0] < QUOTE_TTL_S:
            return cached[1]
        try:
            offers = self.client.search_offers(self._query(resources, limit=QUOTE_OFFERS))
        except (VastAPIError, BackendError) as exc:
            log.warning("no Vast.ai prices for the plan", error=str(exc))
            return Quote(host=self.name, separate_host=True)
        if not offers:
            quote = Quote(host=self.name, separate_host=True)
        else:
            best = offers[0]
            # Mb/s in the API; the slower direction bounds a transfer both ways.
            inet = [best.raw.get("inet_up"), best.raw.get("inet_down")]
            speeds = [float(v) for v in inet if isinstance(v, int | float) and v > 0]
            quote = Quote(
                host=f"{self.name}:{best.gpu_name}" if best.gpu_name else self.name,
                dollars_per_hour=best.dph_total,
                dollars_per_hour_high=max(o.dph_total for o in offers),
                bandwidth_mb_s=min(speeds) / 8 if speeds else 100.0,
                relative_speed=relative_speed(best.gpu_name),
                separate_host=True,
            )
        self._quotes[resources] = (now, quote)
        return quote

    def machine_plan(self, slots: Sequence[PhaseSlot]) -> list[str]:
        """With ``pool = true``: which machine each phase runs on, priced from live offers,
        and what one machine per phase would cost (`voltx_backends.vast.pool_plan`)."""
        if self.pool is None or not slots:
            return []
        return machine_plan_lines(slots, self.client, self.settings)

    def job_disk_gb(self, resources: Resources) -> float:
        # The disk rented with the instance (the offer search asks for the same).
        return max(self.settings.disk_gb, resources.disk_gb)

    def preflight(self, resources: Mapping[str, Resources]) -> list[str]:
        """Whether the API answers with this key and an offer matches every phase (rents
        nothing): one offer search per kind of phase."""
        try:
            client = self.client
        except BackendError as exc:
            return [f"Vast.ai: {exc}"]
        problems: list[str] = []
        by_need: dict[Resources, list[str]] = {}
        for phase_id, wanted in resources.items():
            by_need.setdefault(wanted, []).append(phase_id)
        for wanted, phase_ids in by_need.items():
            try:
                query = self._query(wanted, limit=1)
                offers = client.search_offers(query)
            except VastAPIError as exc:
                if exc.status in (401, 403):
                    # Every further request would be refused too: offers cannot be checked.
                    return [
                        *problems,
                        f"Vast.ai: the API key was refused (HTTP {exc.status}); set a valid "
                        "key in $VAST_API_KEY or api_key_file ([backends.vast])",
                    ]
                return [*problems, f"Vast.ai: {exc}"]
            except BackendError as exc:
                problems.append(f"phase {', '.join(phase_ids)}: {exc}")
                continue
            if not offers:
                problems.append(
                    f"phase {', '.join(phase_ids)}: no Vast.ai offer matches now "
                    f"({query.describe()})"
                )
        return problems

    def _query(self, resources: Resources, *, limit: int) -> OfferQuery:
        return OfferQuery.build(
            resources, self.settings.offer_filters(), disk_gb=self.settings.disk_gb, limit=limit
        )

    # -- jobs ------------------------------------------------------------------------------

    def submit(self, request: JobRequest) -> VastJobHandle:
        _jobs.check_job_id(request.job_id, self.name)
        if not request.argv:
            raise BackendError("a job needs a command: argv is empty", self.name)
        label, run_id = job_label(request)
        holder = self.state.held_by_other(label)
        if holder is not None:
            raise BackendError(
                f"instance label {label} is held by a live orchestrator (pid "
                f"{holder.owner.pid} on {holder.owner.host}); two runs cannot share it",
                self.name,
            )
        if self.pool is not None:
            return self._submit_pooled(request, run_id)
        handle = VastJobHandle(self, request.job_id, label, run_id, owner=True)
        self._track(handle)
        handle.start(handle.provision, request)
        return handle

    def _submit_pooled(self, request: JobRequest, run_id: str | None) -> VastJobHandle:
        """Place the job on a pooled machine now (so its label and billing key are the
        machine's from the start), and get the machine ready in the job's thread."""
        assert self.pool is not None
        try:
            machine = self.pool.reserve(request.job_id, request.resources, run_id)
        except BackendError as exc:
            # As without the pool: the job fails with the reason, and the scheduler says so.
            handle = VastJobHandle(self, request.job_id, job_label(request)[0], run_id, owner=True)
            handle.fail(f"no Vast.ai instance: {exc}")
            return handle
        handle = VastJobHandle(self, request.job_id, machine.label, run_id, owner=True)
        handle.machine = machine
        self._track(handle)
        handle.start(handle.provision, request)
        return handle

    def attach(self, ref: Mapping[str, Any]) -> VastJobHandle:
        job_id, label, run_id = ref.get("job_id"), ref.get("label"), ref.get("run_id")
        if not isinstance(job_id, str) or not isinstance(label, str):
            raise BackendError(f"not a vast job ref (needs job_id and label): {ref!r}", self.name)
        _jobs.check_job_id(job_id, self.name)
        if not label.startswith(LABEL_PREFIX):
            raise BackendError(f"not a voltx instance label: {label!r}", self.name)
        run = run_id if isinstance(run_id, str) else None
        done = VastJobHandle.finished(self, job_id, label, run)
        if done is not None:
            return done  # it finished before: what it left is here, its instance long gone
        handle = VastJobHandle(self, job_id, label, run, owner=None)
        self._track(handle)
        handle.start(handle.reattach)
        # Most jobs are found within a few seconds; waiting for that much means a reader
        # (``voltx logs``) sees the log at once instead of an empty first read.
        handle.join(self.settings.connect_timeout_s + 5.0)
        return handle

    def _track(self, handle: VastJobHandle) -> None:
        with self._lock:
            self._handles.append(handle)
            if handle.owner:
                self._claimed(handle)

    def _claimed(self, handle: VastJobHandle) -> None:
        self._labels.add(handle.label)
        if handle.run_id:
            self._runs.add(handle.run_id)

    def take_over(self, handle: VastJobHandle) -> bool:
        """Whether a re-attached job becomes ours: no other live process holds its lease."""
        if self.state.held_by_other(handle.label) is not None:
            return False
        self.state.write_lease(handle.label, handle.run_id, handle.instance_id)
        with self._lock:
            self._claimed(handle)
        log.info("took over a job of an earlier orchestrator", job_id=handle.job_id)
        return True

    # -- instances -------------------------------------------------------------------------

    def _register(self, rental: Rental) -> None:
        with self._lock:
            self._rentals[rental.id] = rental

    def _unregister(self, rental: Rental) -> None:
        with self._lock:
            self._rentals.pop(rental.id, None)

    def rental_for(self, label: str) -> Rental | None:
        """The instance this backend holds for `label` (rented or adopted), if any."""
        with self._lock:
            return next((r for r in self._rentals.values() if r.label == label), None)

    def release(self, rental: Rental) -> None:
        """Destroy a rental's instance; a failure is logged and left for `close` to retry."""
        try:
            self.provisioner.destroy(rental)
        except VastAPIError as exc:
            self._register(rental)
            log.error(
                "instance not destroyed; will retry on close", instance=rental.id, error=str(exc)
            )

    def machines(self) -> Sequence[MachineUsage]:
        """The pooled machines, held or given back, with their prep and idle time so far."""
        return [] if self.pool is None else self.pool.machines()

    def expect(self, upcoming: Sequence[UpcomingPhase]) -> None:
        """Keep an idle pooled machine while a phase that fits it is expected (docs/vast.md)."""
        if self.pool is not None:
            self.pool.expect(upcoming)

    def record_machine(self, record: Mapping[str, object]) -> None:
        """Keep what a pooled machine cost (``voltx vast machines`` lists it)."""
        self.state.record_machine(record)

    def instance_trouble(self, rental: Rental | None) -> str | None:
        """Why the job's instance can no longer run it (gone, exited, offline), or None."""
        if rental is None:
            return None
        try:
            instance = self.client.show_instance(rental.id)
        except VastAPIError as exc:
            log.warning("cannot check the instance", instance=rental.id, error=str(exc))
            return None
        if instance is None:
            return f"{rental.describe()} is gone"
        if instance.condition is Condition.DEAD:
            message = f": {instance.status_msg}" if instance.status_msg else ""
            return f"{rental.describe()} went {instance.state}{message}"
        return None

    def heartbeat(self, label: str, run_id: str | None, instance_id: int | None) -> None:
        """Refresh our lease on `label` now and then (for reapers on other machines)."""
        now = time.monotonic()
        if now - self._heartbeats.get(label, 0.0) < 30.0:
            return
        self._heartbeats[label] = now
        with contextlib.suppress(OSError):
            self.state.touch_lease(label, run_id, instance_id)

    def instances(self) -> list[tuple[Instance, LeaseRecord | None]]:
        """Every instance of the account, with the lease that owns it here (if any)."""
        leases = self.state.leases()
        return [(i, leases.get(i.label)) for i in self.client.list_instances()]

    def reap(self, *, dry_run: bool = False) -> list[Instance]:
        """Destroy every ``voltx-`` instance that no live run owns; returns them."""
        orphans = [
            instance
            for instance, lease in self.instances()
            if instance.is_voltx and (lease is None or not lease.alive())
        ]
        for instance in orphans:
            if dry_run:
                continue
            self.client.destroy_instance(instance.id)
            self.state.release_lease(instance.label)
            with contextlib.suppress(FileNotFoundError):
                self.state.known_hosts(instance.id).unlink()
            log.info("orphan instance destroyed", instance=instance.id, label=instance.label)
        return orphans

    # -- the end ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every provisioning and destroy every instance this backend holds.

        Safe to call again: what could not be destroyed the first time is tried again.
        """
        with self._lock:
            handles = list(self._handles)
        if self._client is None:
            return  # never talked to Vast: nothing rented
        if self.pool is not None:
            self.pool.close()
        for handle in handles:
            if handle.owner is not False:
                handle.cancelled.set()
        for handle in handles:
            handle.join()
        failed = False
        for handle in handles:
            if handle.owner is None:
                handle.owner = False  # never asked for its status: it stays someone else's
            rental = handle.rental
            if handle.owner and rental is not None and not rental.destroyed:
                self._register(rental)
            elif rental is not None and not handle.owner:
                self.provisioner.forget(rental, unpin=False)
        with self._lock:
            rentals = list(self._rentals.values())
            labels = set(self._labels)
        for rental in rentals:
            try:
                self.provisioner.destroy(rental)
            except VastAPIError:
                failed = True
        # A rental whose answer never came back (the backend closed mid-request) is known only
        # by its label: sweep the account for our labels.
        if labels:
            try:
                for instance in self.client.list_instances():
                    if (
                        instance.label in labels
                        and self.state.held_by_other(instance.label) is None
                    ):
                        log.info("destroying a leftover instance", instance=instance.id)
                        self.client.destroy_instance(instance.id)
            except VastAPIError as exc:
                failed = True
                log.error("could not check for leftover instances", error=str(exc))
        for label in labels:
            self.state.release_lease(label)
        with self._lock:
            self._handles.clear()
            if not failed:
                for run_id in self._runs:
                    self.state.remove_run_key(run_id)
                self._labels.clear()
                self._runs.clear()


def _default_work_dir() -> Path:
    return Path(os.environ.get("VOLTX_HOME", Path.home() / ".voltx"))


_open_backends: weakref.WeakSet[VastBackend] = weakref.WeakSet()


@atexit.register
def _close_open_backends() -> None:
    """The last line of defence: an interpreter that exits destroys what is still rented."""
    for backend in list(_open_backends):
        with contextlib.suppress(Exception):
            backend.close()
