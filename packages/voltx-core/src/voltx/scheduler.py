"""The scheduler: start every ready phase at once, within the backend's resources.

A phase is ready when every phase upstream of it has succeeded or was skipped. A phase whose
fingerprint already has committed outputs is skipped with its reason. A failed phase blocks its
descendants; independent lanes run on. Every event goes to the run ledger, so a second
`voltx run` of the same target continues the run, re-attaching to jobs that are still going.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import structlog

from voltx.backend import Backend, JobHandle, JobRequest, JobState
from voltx.errors import RunInterruptedError
from voltx.fingerprint import committed_outputs, fingerprint, why_run
from voltx.ledger import Ledger
from voltx.planning.estimates import record_measurement
from voltx.plugins import host
from voltx.results import PhaseResult, RunResult
from voltx.session import Session, split_secrets
from voltx.spec import Resources
from voltx.worker import JOB_FILE, RESULT_FILE, SECRETS_ENV

log = structlog.get_logger(__name__)

_POLL_S = 0.05
_LOG_TAIL_LINES = 6


@attrs.define
class _Running:
    phase_id: str
    handle: JobHandle
    resources: Resources
    devices: tuple[int, ...]
    attempt: int
    started: float
    fingerprint: str
    inputs: dict[str, str]


class Scheduler:
    """Runs the selected phases of a session on one backend, recording into one ledger."""

    def __init__(
        self,
        session: Session,
        backend: Backend,
        ledger: Ledger,
        phase_ids: Sequence[str],
        configs: Mapping[str, dict[str, Any]],
        *,
        force: bool = False,
        max_parallel: int | None = None,
        max_attempts: int = 2,
    ) -> None:
        self.session = session
        self.backend = backend
        self.ledger = ledger
        self.order = list(phase_ids)
        self.configs = configs
        self.force = force
        self.max_parallel = max_parallel
        self.max_attempts = max_attempts
        self.capacity = backend.capacity()
        self.results: dict[str, PhaseResult] = {}
        self.running: dict[str, _Running] = {}
        self.attempts: dict[str, int] = {}
        self._free_devices = list(range(self.capacity.gpus))
        self._cpu_in_use = 0
        self._ram_in_use = 0.0

    # -- the loop --------------------------------------------------------------------------

    def execute(self) -> RunResult:
        self._reattach()
        try:
            while True:
                progressed = self._start_ready()
                progressed |= self._collect_finished()
                if not self.running and not progressed:
                    break
                if not progressed:
                    time.sleep(_POLL_S)
        except KeyboardInterrupt:
            self._cancel_all()
            raise RunInterruptedError("interrupted: every job was cancelled") from None
        for phase_id in self.order:
            if phase_id not in self.results:
                self._finish(phase_id, "blocked", "nothing upstream could run")
        failed = any(not r.ok for r in self.results.values())
        status = "failed" if failed else "succeeded"
        self.ledger.record("run_finished", status=status)
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

    def _input_digests(self, phase_id: str) -> dict[str, str]:
        digests: dict[str, str] = {}
        for name in self.session.registry.phase(phase_id).requires:
            source = self.session.graph.producer.get(name)
            if source in self.results and name in self.results[source].outputs:
                digests[name] = self.results[source].outputs[name]
                continue
            digest = self.session.store.ref(name)
            if digest is None:
                raise KeyError(name)
            digests[name] = digest
        for name in self.session.registry.phase(phase_id).optional:
            digest = self.session.store.ref(name)
            if digest is not None:
                digests[name] = digest
        return digests

    def _try_start(self, phase_id: str) -> bool:
        spec = self.session.registry.phase(phase_id)
        config = self.configs[phase_id]
        try:
            inputs = self._input_digests(phase_id)
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
        needed = self._fit(spec.resources_for(self.session.profile))
        if isinstance(needed, str):
            self._finish(phase_id, "failed", needed)
            return True
        if self.max_parallel is not None and len(self.running) >= self.max_parallel:
            return False
        # A phase that fits nowhere alone was clamped by _fit; otherwise wait for room.
        if self.running and (
            needed.cpu_cores + self._cpu_in_use > self.capacity.cpu_cores
            or needed.ram_gb + self._ram_in_use > self.capacity.ram_gb
        ):
            return False
        if needed.gpus > len(self._free_devices):
            return False
        reason = (
            "forced"
            if self.force
            else why_run(self.session.store, spec.id, spec.version, config, inputs)
        )
        self._submit(phase_id, needed, fp, inputs, reason)
        return True

    def _fit(self, wanted: Resources) -> Resources | str:
        """The phase's resources, clamped to what the backend has; a reason if it cannot fit."""
        if wanted.gpus > self.capacity.gpus:
            return (
                f"needs {wanted.gpus} GPU(s) but backend {self.backend.name} has "
                f"{self.capacity.gpus}; use a GPU backend or the tiny profile"
            )
        # A phase asking for more cores or memory than the machine has still runs, alone.
        return attrs.evolve(
            wanted,
            cpu_cores=min(wanted.cpu_cores, self.capacity.cpu_cores),
            ram_gb=min(wanted.ram_gb, self.capacity.ram_gb),
        )

    def _submit(
        self, phase_id: str, needed: Resources, fp: str, inputs: dict[str, str], reason: str
    ) -> None:
        attempt = self.attempts.get(phase_id, 0) + 1
        self.attempts[phase_id] = attempt
        devices = tuple(self._free_devices[: needed.gpus])
        del self._free_devices[: needed.gpus]
        self._cpu_in_use += needed.cpu_cores
        self._ram_in_use += needed.ram_gb
        public, secret = split_secrets(self.configs[phase_id])
        job = {
            "run_id": self.ledger.run_id,
            "phase_id": phase_id,
            "attempt": attempt,
            "store": self.session.store.url,
            "profile": self.session.profile,
            "config": public,
            "inputs": inputs,
            "fingerprint": fp,
            "devices": list(devices),
        }
        env = {SECRETS_ENV: json.dumps(secret)} if secret else {}
        request = JobRequest(
            job_id=_job_id(self.ledger.run_id, phase_id, attempt),
            argv=(self.backend.python, "-m", "voltx", "worker", JOB_FILE),
            files={JOB_FILE: json.dumps(job, indent=1).encode()},
            env=env,
            resources=needed,
            devices=devices,
        )
        handle = self.backend.submit(request)
        self.running[phase_id] = _Running(
            phase_id, handle, needed, devices, attempt, time.monotonic(), fp, inputs
        )
        self.ledger.record(
            "started",
            phase_id,
            attempt=attempt,
            reason=reason,
            backend=self.backend.name,
            job=handle.ref,
            fingerprint=fp,
        )
        log.info("phase started", phase_id=phase_id, attempt=attempt, reason=reason)
        host().notify(
            "phase_started",
            run_id=self.ledger.run_id,
            phase_id=phase_id,
            backend=self.backend.name,
            attempt=attempt,
        )

    def _release(self, job: _Running) -> None:
        self._cpu_in_use -= job.resources.cpu_cores
        self._ram_in_use -= job.resources.ram_gb
        self._free_devices = sorted([*self._free_devices, *job.devices])

    def _collect_finished(self) -> bool:
        progressed = False
        for phase_id, job in list(self.running.items()):
            status = job.handle.status()
            if status.state is JobState.RUNNING:
                continue
            progressed = True
            del self.running[phase_id]
            self._release(job)
            duration = time.monotonic() - job.started
            result = _read_result(job.handle)
            if status.state is JobState.SUCCEEDED and result.get("status") == "succeeded":
                outputs = {str(k): str(v) for k, v in result.get("outputs", {}).items()}
                self._finish(phase_id, "succeeded", "", outputs, duration, job.attempt)
                self._learn(phase_id, job, float(result.get("duration_s", duration)))
            elif status.state is JobState.LOST and job.attempt < self.max_attempts:
                self.ledger.record("lost", phase_id, attempt=job.attempt, reason=status.detail)
                log.warning("job lost; resubmitting", phase_id=phase_id, attempt=job.attempt)
            else:
                error = result.get("error") or _describe_failure(job.handle, status)
                self._finish(phase_id, "failed", str(error), {}, duration, job.attempt)
        return progressed

    def _learn(self, phase_id: str, job: _Running, seconds: float) -> None:
        """Keep the measured duration, so later plans for this phase and host use it."""
        host = self.backend.quote(job.resources).host
        record_measurement(self.session.store, phase_id, self.session.profile, host, seconds / 3600)

    def _finish(
        self,
        phase_id: str,
        status: str,
        reason: str,
        outputs: Mapping[str, str] | None = None,
        duration: float | None = None,
        attempts: int = 0,
    ) -> None:
        outputs = dict(outputs or {})
        self.results[phase_id] = PhaseResult(
            phase_id=phase_id,
            status=status,
            reason=reason,
            outputs=outputs,
            attempts=attempts,
            duration_s=duration,
            backend=self.backend.name if attempts else None,
        )
        self.ledger.record(status, phase_id, reason=reason, outputs=outputs, duration_s=duration)
        summary = {"phase_id": phase_id, "status": status, "reason": reason}
        if duration is not None:
            summary["duration_s"] = f"{duration:.2f}"
        (log.error if status == "failed" else log.info)("phase " + status, **summary)
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
            if state.state != "running" or not state.job or state.backend != self.backend.name:
                continue
            handle = self.backend.attach(state.job)
            events = [e for e in self.ledger.events() if e.phase_id == phase_id]
            fp = str(events[-1].data.get("fingerprint", "")) if events else ""
            spec = self.session.registry.phase(phase_id)
            needed = self._fit(spec.resources_for(self.session.profile))
            resources = needed if isinstance(needed, Resources) else Resources()
            self._cpu_in_use += resources.cpu_cores
            self._ram_in_use += resources.ram_gb
            self.running[phase_id] = _Running(
                phase_id, handle, resources, (), state.attempts, time.monotonic(), fp, {}
            )
            log.info("re-attached to running job", phase_id=phase_id, attempt=state.attempts)

    def _cancel_all(self) -> None:
        for phase_id, job in list(self.running.items()):
            try:
                job.handle.cancel(grace_s=5.0)
            finally:
                self._finish(phase_id, "cancelled", "interrupted by the user", attempts=job.attempt)
        self.running.clear()
        for phase_id in self.order:
            if phase_id not in self.results:
                self._finish(phase_id, "cancelled", "run interrupted before the phase started")
        self.ledger.record("run_finished", status="cancelled")


def _job_id(run_id: str, phase_id: str, attempt: int) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{run_id}-{phase_id}-{attempt}")


def _read_result(handle: JobHandle) -> dict[str, Any]:
    raw = handle.read_file(RESULT_FILE)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return dict(data) if isinstance(data, dict) else {}


def _describe_failure(handle: JobHandle, status: Any) -> str:
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
