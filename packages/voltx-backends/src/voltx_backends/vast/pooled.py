"""The machine pool of one Vast backend: rent once, run many (docs/vast.md, "Machine pool").

With ``pool = true`` a job is not given an instance of its own. `MachinePool.reserve` (called by
`VastBackend.submit`, so the job's label and billing key are known at once) places it on a machine
the pool holds or is about to rent, when its share fits beside the others (`voltx_backends.vast.
pool.place`); otherwise it plans a new machine for it, and a machine planned but not yet rented
is swapped for one larger offer when packing is cheaper (`choose_packing`). The first job of a
machine rents it after a short gather window (``pool_gather_s``), so the phases the scheduler
starts together are packed together; the others wait for it. The machine is bootstrapped once:
its jobs share one SSH backend, whose install runs once (beside the first uploads). A job that
ends gives its share back; a machine with nothing to run is destroyed after ``pool_idle_s``. A
lost machine (preempted, gone) is destroyed at once, and every job on it reads LOST, so the
scheduler resumes each from its checkpoint on a new one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import structlog

from voltx.backend import MachineUsage, UpcomingPhase
from voltx.errors import BackendError
from voltx.spec import Resources
from voltx_backends.vast.client import VastAPIError, VastClient
from voltx_backends.vast.instances import LABEL_PREFIX
from voltx_backends.vast.offers import Offer, OfferQuery
from voltx_backends.vast.pool import (
    MachineShape,
    MachineState,
    PooledMachine,
    Share,
    choose_packing,
    combined,
    hinted_idle_window,
    machine_usage,
    place,
    place_all,
    usage_record,
)
from voltx_backends.vast.provision import (
    InstanceDiedError,
    ProvisionCancelled,
    Provisioner,
    Rental,
)
from voltx_backends.vast.settings import VastSettings

log = structlog.get_logger(__name__)

WAIT_TICK_S = 0.1


class PoolOwner(Protocol):
    """What the pool needs of its backend (`VastBackend` is one)."""

    @property
    def settings(self) -> VastSettings: ...

    @property
    def client(self) -> VastClient: ...

    @property
    def provisioner(self) -> Provisioner: ...

    def release(self, rental: Rental) -> None: ...

    def instance_trouble(self, rental: Rental | None) -> str | None: ...

    def record_machine(self, record: Mapping[str, object]) -> None: ...


class MachinePool:
    """The machines one backend holds for its runs (see the module docstring)."""

    def __init__(self, owner: PoolOwner, clock: Callable[[], float] = time.monotonic) -> None:
        self._owner = owner
        self._clock = clock
        self._cond = threading.Condition()
        self._machines: list[PooledMachine] = []
        self._timers: list[threading.Timer] = []
        self._numbers: dict[str, int] = {}
        self._given_back: list[MachineUsage] = []
        # The scheduler's last hint (`expect`): each phase still to start, and the clock time it
        # should be ready (None: unknown). None until a hint came: then every window is the cap.
        self._upcoming: list[tuple[Resources, float | None]] | None = None

    @property
    def settings(self) -> VastSettings:
        return self._owner.settings

    # -- placing (synchronous, from submit) ------------------------------------------------

    def reserve(self, job_id: str, wanted: Resources, run_id: str | None) -> PooledMachine:
        """The machine job `job_id` will run on, held or planned (see the module docstring).
        `BackendError` when no offer fits the job at all."""
        with self._cond:
            for machine in self._machines:
                if machine.state in (MachineState.FAILED, MachineState.GONE):
                    continue
                share = place(machine.shape, machine.shares.values(), wanted)
                if share is not None:
                    self._assign(machine, job_id, wanted, share)
                    log.info("job placed on a pooled machine", job_id=job_id, label=machine.label)
                    return machine
            alone = self._cheapest(wanted)
            if alone is None:
                query = self._query(wanted)
                raise BackendError(f"no Vast.ai offer matches: {query.describe()}", "vast")
            for machine in self._machines:
                if machine.state is MachineState.PLANNED and self._repack(
                    machine, job_id, wanted, alone
                ):
                    return machine
            machine = PooledMachine(
                label=self._next_label(run_id),
                run_id=run_id,
                shape=self._shape(alone, [wanted]),
                price=alone.dph_total,
                planned_until=self._clock() + self.settings.pool_gather_s,
            )
            share = place(machine.shape, (), wanted) or Share(
                gpus=tuple(range(wanted.gpus)),
                cpus=tuple(range(max(1, wanted.cpu_cores))),
                ram_gb=wanted.ram_gb,
                disk_gb=wanted.disk_gb,
            )
            self._assign(machine, job_id, wanted, share)
            self._machines.append(machine)
            log.info("machine planned", label=machine.label, offer=alone.id, job_id=job_id)
            return machine

    def _repack(self, machine: PooledMachine, job_id: str, wanted: Resources, alone: Offer) -> bool:
        """Swap a planned machine for one offer that holds its jobs and this one, when that is
        cheaper than renting this job a machine of its own."""
        demands = [*machine.demands.values(), wanted]
        bigger = self._cheapest(combined(demands))
        if bigger is None:
            return False
        # At run time the phases' hours are unknown: they are taken as equal, so the prices
        # decide (the plan weighs them by expected time; docs/vast.md, "Machine pool").
        choice = choose_packing([1.0, 1.0], [machine.price, alone.dph_total], bigger.dph_total)
        if not choice.packed:
            return False
        shape = self._shape(bigger, demands)
        shares = place_all(shape, demands)
        if shares is None:
            return False
        machine.shape, machine.price = shape, bigger.dph_total
        machine.demands[job_id] = wanted
        machine.shares = dict(zip(machine.demands, shares, strict=True))
        log.info(
            "jobs packed onto one larger machine",
            label=machine.label,
            offer=bigger.id,
            jobs=list(machine.demands),
            saving_per_hour=round(choice.saving, 4),
        )
        return True

    def _assign(self, machine: PooledMachine, job_id: str, wanted: Resources, share: Share) -> None:
        machine.demands[job_id] = wanted
        machine.shares[job_id] = share
        machine.busy_again(self._clock())

    def _next_label(self, run_id: str | None) -> str:
        owner = run_id or "pool"
        number = self._numbers.get(owner, 0) + 1
        self._numbers[owner] = number
        return f"{LABEL_PREFIX}{owner}-m{number}"

    def _query(self, wanted: Resources) -> OfferQuery:
        settings = self.settings
        return OfferQuery.build(wanted, settings.offer_filters(), disk_gb=settings.disk_gb, limit=1)

    def _cheapest(self, wanted: Resources) -> Offer | None:
        try:
            offers = self._owner.client.search_offers(self._query(wanted))
        except VastAPIError as exc:
            raise BackendError(f"cannot search Vast.ai offers: {exc}", "vast") from exc
        return offers[0] if offers else None

    def _shape(self, offer: Offer, demands: list[Resources]) -> MachineShape:
        disk = max(self.settings.disk_gb, sum(r.disk_gb for r in demands))
        return MachineShape.from_offer(offer.raw, disk)

    def share(self, job_id: str) -> Share | None:
        """The share job `job_id` was given, while it holds one."""
        with self._cond:
            for machine in self._machines:
                if job_id in machine.shares:
                    return machine.shares[job_id]
        return None

    # -- getting the machine (from the job's thread) ----------------------------------------

    def ready(
        self,
        machine: PooledMachine,
        cancel: threading.Event,
        report: Callable[[str], None],
    ) -> Rental:
        """The machine, rented and answering SSH: rented by the first job that asks, waited for
        by the others. `ProvisionCancelled` on cancel."""
        while True:
            with self._cond:
                # The machine stays PLANNED through the gather window, so that jobs submitted
                # meanwhile may still swap it for a larger offer; one job claims the renting.
                renter = machine.state is MachineState.PLANNED and not machine.claimed
                machine.claimed = machine.claimed or renter
                while not renter and self._pending(machine):
                    if cancel.is_set():
                        raise ProvisionCancelled
                    report(f"waiting for pooled machine {machine.label}")
                    self._cond.wait(WAIT_TICK_S)
                if not renter:
                    if machine.state is MachineState.PLANNED:
                        continue  # its renter was cancelled: this job rents it
                    if machine.state is MachineState.READY and machine.rental is not None:
                        return machine.rental
                    reason = machine.error or f"pooled machine {machine.label} is gone"
                    raise InstanceDiedError(reason, None)
            return self._rent(machine, cancel, report)

    @staticmethod
    def _pending(machine: PooledMachine) -> bool:
        """Whether another job is renting the machine (or about to)."""
        planned = machine.state is MachineState.PLANNED
        return (planned and machine.claimed) or machine.state is MachineState.RENTING

    def _rent(
        self, machine: PooledMachine, cancel: threading.Event, report: Callable[[str], None]
    ) -> Rental:
        try:
            wait = machine.planned_until - self._clock()
            if wait > 0 and cancel.wait(wait):
                raise ProvisionCancelled
            with self._cond:
                if not machine.demands or machine.state is not MachineState.PLANNED:
                    raise ProvisionCancelled  # every job on it ended while it was planned
                machine.state = MachineState.RENTING
                wanted = combined(list(machine.demands.values()))
                machine.rent_started = self._clock()
            provisioner = self._owner.provisioner
            rental = provisioner.obtain(machine.label, wanted, machine.run_id, cancel, report)
        except ProvisionCancelled:
            with self._cond:
                if machine.state in (MachineState.PLANNED, MachineState.RENTING):
                    machine.state, machine.claimed = MachineState.PLANNED, False
                    machine.planned_until = self._clock()
                    machine.rent_started = None
                self._cond.notify_all()
            raise
        except BaseException as exc:
            with self._cond:
                machine.state, machine.error = MachineState.FAILED, str(exc)
                self._drop(machine)
                self._cond.notify_all()
            raise
        with self._cond:
            machine.rental = rental
            machine.state = MachineState.READY
            idle = not machine.shares
            self._cond.notify_all()
        if idle:
            self._went_idle(machine)
        return rental

    def started(self, machine: PooledMachine) -> None:
        """A job started on `machine` (ends its prep time, if it was the first)."""
        with self._cond:
            machine.jobs_run += 1
            if machine.first_job is None:
                machine.first_job = self._clock()

    # -- giving back -----------------------------------------------------------------------

    def release(self, job_id: str, *, lost: bool) -> None:
        """Job `job_id` ended: its share is free again. `lost`: the job vanished, and if its
        machine is in trouble the machine goes at once (every other job on it reads LOST)."""
        with self._cond:
            machine = next((m for m in self._machines if job_id in m.demands), None)
            if machine is None:
                return
            machine.demands.pop(job_id, None)
            machine.shares.pop(job_id, None)
            self._cond.notify_all()
            state, rental, empty = machine.state, machine.rental, not machine.demands
            if state is MachineState.PLANNED and empty:
                self._drop(machine)  # never rented: nothing to give back
                return
        if state is not MachineState.READY or rental is None:
            return
        if lost:
            trouble = self._owner.instance_trouble(rental)
            if trouble is not None:
                log.warning("pooled machine lost", label=machine.label, reason=trouble)
                self._destroy(machine, reason="lost")
                return
        if empty:
            self._went_idle(machine)

    def _went_idle(self, machine: PooledMachine) -> None:
        with self._cond:
            if machine.shares or machine.state is not MachineState.READY:
                return
            since = machine.idle_since = self._clock()
            cap = self.settings.pool_idle_s
            window = hinted_idle_window(cap, machine.shape, self._upcoming, since)
            timer = threading.Timer(window, self._expire, (machine, since))
            timer.daemon = True
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        log.info("pooled machine idle", label=machine.label, window_s=window)
        timer.start()

    def expect(self, upcoming: Sequence[UpcomingPhase]) -> None:
        """The scheduler's hint: the phases still to start on this backend (an idle machine
        waits for one that fits it: `hinted_idle_window`)."""
        now = self._clock()
        hint = [
            (u.resources, None if u.ready_in_s is None else now + u.ready_in_s) for u in upcoming
        ]
        with self._cond:
            self._upcoming = hint

    def _expire(self, machine: PooledMachine, since: float) -> None:
        with self._cond:
            still_idle = machine.idle_since == since and not machine.demands
            if not still_idle or machine.state is not MachineState.READY:
                return
        self._destroy(machine, reason="idle")

    def _destroy(self, machine: PooledMachine, *, reason: str) -> None:
        with self._cond:
            if machine.state is MachineState.GONE:
                return
            self._gone(machine, reason)
            self._drop(machine)
            rental = machine.rental
            self._cond.notify_all()
        if rental is not None:
            self._owner.release(rental)
        self._account(machine, reason)

    def machines(self) -> list[MachineUsage]:
        """Every machine rented so far, held or given back, with its prep and idle time."""
        with self._cond:
            now = self._clock()
            held = [machine_usage(m, now) for m in self._machines if m.rent_started is not None]
            return [*self._given_back, *held]

    def _gone(self, machine: PooledMachine, reason: str) -> None:
        """Mark `machine` given back (under the lock), keeping what it cost for `machines`."""
        now = self._clock()
        machine.busy_again(now)
        machine.state = MachineState.GONE
        if machine.rent_started is not None:
            self._given_back.append(machine_usage(machine, now, reason))

    def _account(self, machine: PooledMachine, reason: str) -> None:
        """Log and record what the machine cost: its prep, idle and busy time."""
        if machine.rent_started is None:
            return  # never rented
        record = usage_record(
            label=machine.label,
            run_id=machine.run_id,
            dollars_per_hour=machine.rental.instance.dph_total if machine.rental else machine.price,
            held_s=self._clock() - machine.rent_started,
            prep_s=machine.prep_s,
            idle_s=machine.idle_s,
            jobs_run=machine.jobs_run,
            reason=reason,
        )
        log.info("pooled machine given back", **record)
        try:
            self._owner.record_machine(record)
        except OSError as exc:
            log.warning("could not record the machine's cost", error=str(exc))

    def _drop(self, machine: PooledMachine) -> None:
        if machine in self._machines:
            self._machines.remove(machine)

    def close(self) -> None:
        """Stop the idle timers and forget every machine (the backend destroys the rentals)."""
        with self._cond:
            timers, self._timers = self._timers, []
            closing = list(self._machines)
            for machine in closing:
                self._gone(machine, "closed")
            self._machines.clear()
            self._cond.notify_all()
        for timer in timers:
            timer.cancel()
        for machine in closing:
            self._account(machine, "closed")
