"""The scheduler: start every ready phase at once, within its backend's resources.

A phase is ready when every phase upstream of it has succeeded or was skipped. A phase whose
fingerprint already has committed outputs is skipped with its reason. A failed phase blocks its
descendants; independent lanes run on. Every event goes to the run ledger, so a second
`voltx run` of the same target continues the run, re-attaching to jobs that are still going.
A run may use several backends at once (`voltx.routing`): each phase goes to its own, within
that backend's capacity (`voltx.capacity`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

import attrs
import structlog

from voltx.backend import Backend, JobHandle, JobState, UpcomingPhase
from voltx.budget import (
    DEFAULT_RECORD_EVERY_S,
    BudgetConfig,
    Clock,
    Stop,
    dollars,
)
from voltx.capacity import BackendSlots
from voltx.errors import RunInterruptedError, VoltxError
from voltx.fingerprint import committed_outputs, fingerprint, input_digests, why_run
from voltx.job_document import JobDocument
from voltx.job_outcome import describe_failure, read_result, result_outputs, retry_reason
from voltx.job_request import job_request
from voltx.ledger import Ledger
from voltx.machine_watch import upcoming_phases
from voltx.planning.estimates import record_measurement
from voltx.plugins import host
from voltx.remote_inputs import credential_env
from voltx.resolve import ResolvedRun
from voltx.results import PhaseResult, RunResult
from voltx.routing import RunBackends
from voltx.run_spend import RunSpend
from voltx.spec import Resources

log = structlog.get_logger(__name__)
# After Ctrl-C, how long a job has between TERM and KILL: the worker asks its phase to stop and
# checkpoint (voltx.worker.STOP_PATIENCE_S), then sends that checkpoint to the store.
CANCEL_GRACE_S = 10.0

_POLL_S = 0.05


@attrs.define
class _Running:
    phase_id: str
    backend: str
    handle: JobHandle
    resources: Resources
    devices: tuple[int, ...]
    attempt: int
    started: float
    fingerprint: str
    inputs: dict[str, str]


class Scheduler:
    """Runs the phases of a resolved run on its backends, recording into one ledger.

    `backend` is one backend for every phase, or the run's backends by phase (`RunBackends`).
    """

    def __init__(
        self,
        resolved: ResolvedRun,
        backend: Backend | RunBackends,
        ledger: Ledger,
        *,
        max_parallel: int | None = None,
        max_attempts: int = 2,
        budget: BudgetConfig | None = None,
        clock: Clock = time.monotonic,
        record_spend_every_s: float = DEFAULT_RECORD_EVERY_S,
    ) -> None:
        self.session = resolved.session
        self.backends = backend if isinstance(backend, RunBackends) else RunBackends.single(backend)
        self.ledger = ledger
        self.order = list(resolved.selected)
        self.configs = resolved.configs
        self.force = resolved.force
        self.max_parallel = max_parallel
        self.max_attempts = max_attempts
        self.slots: dict[str, BackendSlots] = {}
        self.results: dict[str, PhaseResult] = {}
        self.running: dict[str, _Running] = {}
        self.attempts: dict[str, int] = {}
        # Spend is metered on every run (the ledger keeps it for `voltx status`); limits stop it.
        self.budget = budget or BudgetConfig()
        self.spend = RunSpend(
            resolved, self.backends, ledger, self.budget, clock, record_spend_every_s
        )
        self.meter = self.spend.meter
        self.stopped: str | None = None  # why a limit stopped the whole run
        self.to_run = set(resolved.to_run)

    def _slots(self, name: str) -> BackendSlots:
        """The capacity of backend `name`, asked once: each backend's is its own."""
        if name not in self.slots:
            self.slots[name] = BackendSlots(self.backends.get(name))
        return self.slots[name]

    def _slots_of(self, phase_id: str) -> BackendSlots:
        return self._slots(self.backends.routing.backend_for(phase_id))

    # -- the loop --------------------------------------------------------------------------

    def execute(self) -> RunResult:
        self._reattach()
        try:
            while True:
                if self._check_budget():
                    break
                progressed = self._start_ready()
                progressed |= self._collect_finished()
                if not self.running and not progressed:
                    break
                if not progressed:
                    time.sleep(_POLL_S)
        except KeyboardInterrupt:
            self._cancel_all()
            raise RunInterruptedError("interrupted: every job was cancelled") from None
        finally:
            self.spend.machines.record(self.ledger)
        if self.stopped is not None:
            status = "budget_exceeded"
        else:
            for phase_id in self.order:
                if phase_id not in self.results:
                    self._finish(phase_id, "blocked", "nothing upstream could run")
            statuses = {r.status for r in self.results.values()}
            if "stopped" in statuses and "failed" not in statuses:
                status = "budget_exceeded"  # a phase ran out of its own budget
            elif any(not r.ok for r in self.results.values()):
                status = "failed"
            else:
                status = "succeeded"
            self.ledger.record("run_finished", status=status, **self.spend.record_fields())
        return RunResult(
            run_id=self.ledger.run_id,
            status=status,
            phases={pid: self.results[pid] for pid in self.order},
            store=self.session.store.url,
        )

    def _upstream(self, phase_id: str) -> list[str]:
        return [p for p in self.session.graph.upstream(phase_id) if p in self.order]

    def _start_ready(self) -> bool:
        progressed = False
        for phase_id in self.order:
            if phase_id in self.results or phase_id in self.running:
                continue
            upstream = self._upstream(phase_id)
            bad = [p for p in upstream if p in self.results and not self.results[p].ok]
            if bad:
                self._finish(phase_id, "blocked", f"upstream {', '.join(bad)} did not succeed")
                progressed = True
                continue
            if not all(p in self.results for p in upstream):
                continue
            progressed |= self._try_start(phase_id)
        return progressed

    def _try_start(self, phase_id: str) -> bool:
        spec = self.session.registry.phase(phase_id)
        config = self.configs[phase_id]
        made_here = {n: d for result in self.results.values() for n, d in result.outputs.items()}
        try:
            inputs = input_digests(self.session.store, spec.requires, spec.optional, made_here)
        except KeyError as missing:
            self._finish(phase_id, "failed", f"input {missing.args[0]} is not in the store")
            return True
        fp = fingerprint(spec.id, spec.version, config, inputs)
        if not self.force:
            outputs = committed_outputs(self.session.store, fp)
            if outputs is not None:
                for name, digest in outputs.items():
                    self.session.store.set_ref(name, digest)
                self._finish(phase_id, "skipped", f"up to date (fingerprint {fp[:12]})", outputs)
                return True
        slots = self._slots_of(phase_id)
        needed = slots.fit(spec.resources_for(self.session.profile))
        if isinstance(needed, str):
            self._finish(phase_id, "failed", needed)
            return True
        if self.max_parallel is not None and len(self.running) >= self.max_parallel:
            return False
        # A phase that fits nowhere alone was clamped by fit; otherwise wait for room.
        if not slots.has_room(needed):
            return False
        reason = (
            "forced"
            if self.force
            else why_run(self.session.store, spec.id, spec.version, config, inputs)
        )
        self._submit(phase_id, needed, fp, inputs, reason)
        return True

    def _submit(
        self, phase_id: str, needed: Resources, fp: str, inputs: dict[str, str], reason: str
    ) -> None:
        attempt = self.attempts.get(phase_id, 0) + 1
        self.attempts[phase_id] = attempt
        slots = self._slots_of(phase_id)
        backend = slots.backend
        devices = slots.take(needed)
        document = JobDocument(
            run_id=self.ledger.run_id,
            phase_id=phase_id,
            attempt=attempt,
            store=self.session.store.url,
            profile=self.session.profile,
            inputs=inputs,
            fingerprint=fp,
            devices=devices,
            fresh=self.force and attempt == 1,  # later attempts resume from the first's
            processes=needed.processes,
        )
        request = job_request(
            document,
            self.configs[phase_id],
            python=backend.python,
            resources=needed,
            credentials=credential_env(self.session.project.remote_inputs, inputs),
        )
        handle = backend.submit(request)
        self.running[phase_id] = _Running(
            phase_id, backend.name, handle, needed, devices, attempt, time.monotonic(), fp, inputs
        )
        self.meter.start(phase_id, _billing_key(backend.name, handle), handle.price_per_hour)
        self.ledger.record(
            "started",
            phase_id,
            attempt=attempt,
            reason=reason,
            backend=backend.name,
            job=handle.ref,
            fingerprint=fp,
        )
        log.info("phase started", phase_id=phase_id, attempt=attempt, reason=reason)
        host().notify(
            "phase_started",
            run_id=self.ledger.run_id,
            phase_id=phase_id,
            backend=backend.name,
            attempt=attempt,
        )

    def _release(self, job: _Running) -> None:
        self._slots(job.backend).release(job.resources, job.devices)

    def _collect_finished(self) -> bool:
        progressed = False
        for phase_id, job in list(self.running.items()):
            status = job.handle.status()
            if status.state is JobState.RUNNING:
                continue
            progressed = True
            del self.running[phase_id]
            self._release(job)
            self.meter.set_price(phase_id, job.handle.price_per_hour)
            spent = self.meter.finish(phase_id)
            duration = time.monotonic() - job.started
            result = read_result(job.handle)
            if status.state is JobState.SUCCEEDED and result.get("status") == "succeeded":
                outputs = result_outputs(result)
                self._finish(
                    phase_id, "succeeded", "", outputs, duration, job.attempt, spent, job.backend
                )
                self._learn(phase_id, job, float(result.get("duration_s", duration)))
            elif (retry := retry_reason(status)) and job.attempt < self.max_attempts:
                # Lost, or killed by a signal (the OOM killer): the next attempt resumes from
                # the latest committed checkpoint.
                kind, why = retry
                self.ledger.record(kind, phase_id, attempt=job.attempt, reason=why)
                log.warning(f"job {kind}; resubmitting", phase_id=phase_id, reason=why)
            else:
                error = result.get("error") or describe_failure(job.handle, status)
                self._finish(
                    phase_id, "failed", str(error), {}, duration, job.attempt, spent, job.backend
                )
        return progressed

    def _learn(self, phase_id: str, job: _Running, seconds: float) -> None:
        """Keep the measured duration, so later plans for this phase and host use it."""
        host = self.backends.get(job.backend).quote(job.resources).host
        record_measurement(self.session.store, phase_id, self.session.profile, host, seconds / 3600)

    def _finish(
        self,
        phase_id: str,
        status: str,
        reason: str,
        outputs: Mapping[str, str] | None = None,
        duration: float | None = None,
        attempts: int = 0,
        spent: float = 0.0,
        backend: str | None = None,
    ) -> None:
        outputs = dict(outputs or {})
        self.results[phase_id] = PhaseResult(
            phase_id=phase_id,
            status=status,
            reason=reason,
            outputs=outputs,
            attempts=attempts,
            duration_s=duration,
            backend=(backend or self.backends.routing.backend_for(phase_id)) if attempts else None,
        )
        extra = {"spent": round(spent, 6)} if spent > 0 else {}
        self.ledger.record(
            status, phase_id, reason=reason, outputs=outputs, duration_s=duration, **extra
        )
        summary = {"phase_id": phase_id, "status": status, "reason": reason}
        if duration is not None:
            summary["duration_s"] = f"{duration:.2f}"
        if spent > 0:
            summary["spent"] = dollars(spent)
        level = {"failed": log.error, "stopped": log.warning}.get(status, log.info)
        level("phase " + status, **summary)
        host().notify(
            "phase_finished",
            run_id=self.ledger.run_id,
            phase_id=phase_id,
            status=status,
            outputs=outputs,
            error=reason if status == "failed" else None,
        )

    # -- continuing and stopping -----------------------------------------------------------

    def _reattach(self) -> None:
        """Pick up jobs a dead orchestrator left running in this run."""
        for phase_id, state in self.ledger.phase_states().items():
            if phase_id not in self.order:
                continue
            self.attempts[phase_id] = state.attempts
            if state.state != "running" or not state.job or not state.backend:
                continue
            # The job's own backend, as the ledger recorded it: the routing may have changed.
            try:
                slots = self._slots(state.backend)
            except VoltxError as exc:  # not installed, or its settings are gone
                log.warning("cannot re-attach", phase_id=phase_id, error=str(exc))
                continue
            handle = slots.backend.attach(state.job)
            events = [e for e in self.ledger.events() if e.phase_id == phase_id]
            fp = str(events[-1].data.get("fingerprint", "")) if events else ""
            spec = self.session.registry.phase(phase_id)
            needed = slots.fit(spec.resources_for(self.session.profile))
            resources = needed if isinstance(needed, Resources) else Resources()
            slots.hold(resources)
            started = time.monotonic()
            self.running[phase_id] = _Running(
                phase_id, state.backend, handle, resources, (), state.attempts, started, fp, {}
            )
            self.meter.start(phase_id, _billing_key(state.backend, handle), handle.price_per_hour)
            log.info(
                "re-attached to running job",
                phase_id=phase_id,
                attempt=state.attempts,
                backend=state.backend,
            )

    # -- spend and limits ------------------------------------------------------------------

    def _check_budget(self) -> bool:
        """Accrue the spend, warn once, stop what a limit stops; True when the run stops."""
        # Idle rented machines cost money too, and may wait for a phase that fits them.
        self.spend.machines.poll(self._used_backends(), self._upcoming, force=not self.running)
        for phase_id, job in self.running.items():
            self.meter.set_price(phase_id, job.handle.price_per_hour)
        running = {phase_id: job.handle for phase_id, job in self.running.items()}
        waiting = [p for p in self.order if p not in self.results and p not in self.running]
        stops, warning = self.meter.check(
            self.spend.projected_remaining(running, waiting, self.to_run)
        )
        if warning is not None:
            log.warning("budget: " + warning)
            self.ledger.record("budget_warning", reason=warning, **self.spend.record_fields())
        run_stop = next((stop for stop in stops if stop.phase_id is None), None)
        if run_stop is not None:
            self._stop_run(run_stop)
            return True
        phase_stops = [stop for stop in stops if stop.phase_id in self.running]
        for stop in phase_stops:
            self._stop_jobs([str(stop.phase_id)], stop.reason)
        self.spend.maybe_record()
        return False

    def _used_backends(self) -> dict[str, Backend]:
        return {name: slots.backend for name, slots in self.slots.items()}

    def _upcoming(self) -> dict[str, list[UpcomingPhase]]:
        """The phases still to start, by backend, with when each should be ready."""
        waiting = [
            p
            for p in self.order
            if p in self.to_run and p not in self.results and p not in self.running
        ]
        profile = self.session.profile
        found = upcoming_phases(
            waiting,
            self._upstream,
            self.results,
            self.running,
            self.spend.hours_left,
            lambda phase_id: self.session.registry.phase(phase_id).resources_for(profile),
        )
        by_backend: dict[str, list[UpcomingPhase]] = {}
        for phase in found:
            name = self.backends.routing.backend_for(phase.phase_id)
            by_backend.setdefault(name, []).append(phase)
        return by_backend

    def _stop_run(self, stop: Stop) -> None:
        """A run limit was reached: stop every job (each gets the grace period to
        checkpoint), record the phases as stopped and the run as budget_exceeded."""
        self.stopped = stop.reason
        log.warning(
            "budget reached; stopping every job", reason=stop.reason, jobs=len(self.running)
        )
        self._stop_jobs(list(self.running), stop.reason)
        for phase_id in self.order:
            if phase_id not in self.results:
                self._finish(phase_id, "stopped", f"budget: {stop.reason}; not started")
        self.ledger.record(
            "run_finished", status="budget_exceeded", reason=stop.reason, **self.meter.snapshot()
        )

    def _stop_jobs(self, phase_ids: Sequence[str], reason: str) -> None:
        """Cancel these jobs at once (SIGTERM, then KILL after the grace period)."""
        jobs = [self.running.pop(pid) for pid in phase_ids if pid in self.running]
        errors: dict[str, str] = {}

        def cancel(job: _Running) -> None:
            try:
                job.handle.cancel(grace_s=self.budget.grace_s)
            except Exception as exc:  # the backend's close still gives the machine back
                errors[job.phase_id] = f"{type(exc).__name__}: {exc}"

        threads = [threading.Thread(target=cancel, args=(job,), daemon=True) for job in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for job in jobs:
            self._release(job)
            spent = self.meter.finish(job.phase_id)
            duration = time.monotonic() - job.started
            if job.phase_id in errors:
                log.error(
                    "could not stop the job", phase_id=job.phase_id, error=errors[job.phase_id]
                )
            result = read_result(job.handle)
            # One that finished just before the stop reached it keeps what it made.
            made = result.get("status") == "succeeded"
            status, why = ("succeeded", "") if made else ("stopped", f"budget: {reason}")
            outputs = result_outputs(result) if made else {}
            self._finish(
                job.phase_id, status, why, outputs, duration, job.attempt, spent, job.backend
            )

    def _cancel_all(self) -> None:
        for phase_id, job in list(self.running.items()):
            try:
                job.handle.cancel(grace_s=CANCEL_GRACE_S)
            finally:
                self._finish(
                    phase_id,
                    "cancelled",
                    "interrupted by the user",
                    attempts=job.attempt,
                    backend=job.backend,
                )
        self.running.clear()
        for phase_id in self.order:
            if phase_id not in self.results:
                self._finish(phase_id, "cancelled", "run interrupted before the phase started")
        self.ledger.record("run_finished", status="cancelled", **self.spend.record_fields())


def _billing_key(backend: str, handle: JobHandle) -> str:
    """The handle's billing key within its backend: two backends' keys never merge."""
    return f"{backend}/{handle.billing_key}"
