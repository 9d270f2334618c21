"""Several SSH hosts as one backend: each job placed on a host whose free resources fit it.

``[backends.ssh]`` with ``hosts = [...]`` (`voltx_backends.ssh.settings.SSHHostEntry`) makes an
`SSHPoolBackend` (docs/ssh.md, "Several hosts"). Every host is an `SSHBackend` of its own (its
connection, its bootstrap, done once, its job folders); the pool only decides where a job goes:

- A host's shape is what its entry declares, the rest probed (nproc, free, nvidia-smi), as the
  one-host backend reports it.
- A job goes to the first host, in the order listed, whose free share fits it; several jobs run
  on one host when they fit together, each pinned to its own share (GPUs by
  ``CUDA_VISIBLE_DEVICES``, cores by CPU affinity), as jobs sharing a rented machine are
  (`voltx_backends._shares`). A phase asking for more cores or RAM than any host has runs on the
  largest with what it has, as on one host.
- `capacity` is the hosts' sum, for the scheduler; a job the sum admits but no host has room for
  now waits (its handle reports it running) until a job ends somewhere.
- `preflight` refuses a phase no single host can hold; ``voltx plan`` shows the host of each phase.
- A job's ref names its host and share, so a new orchestrator attaches to it there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import structlog

from voltx.backend import Backend, JobRequest, PhaseSlot, Quote
from voltx.errors import BackendError, VoltxError
from voltx.spec import Resources
from voltx_backends import _jobs
from voltx_backends._shares import MachineShape, Share, place, place_all
from voltx_backends.ssh.backend import SSHBackend
from voltx_backends.ssh.bootstrap import VENV_DIR
from voltx_backends.ssh.pool_handle import SSHPoolJobHandle, launched_ref, share_from_ref
from voltx_backends.ssh.settings import SSHSettings

log = structlog.get_logger(__name__)

# Under the work folder: where a job that waited for room records the host it started on.
LAUNCHED_DIR = "ssh-pool"
# A host that could not be probed is asked again no sooner than this (seconds): every placement
# consults every host, and each try of an unreachable one waits out ssh's connect timeout.
PROBE_RETRY_S = 60.0


def ssh_backend(
    work_dir: Path | None = None, *, settings: SSHSettings | None = None, **options: Any
) -> SSHBackend | SSHPoolBackend:
    """The ``ssh`` backend of these settings: one host (`SSHBackend`) or a pool of them."""
    if settings is not None and options:
        raise BackendError("ssh: give settings or keyword settings, not both", "ssh")
    settings = settings or SSHSettings.from_options(options)
    if settings.hosts:
        return SSHPoolBackend(work_dir, settings=settings)
    return SSHBackend(work_dir, settings=settings)


def fitted(wanted: Resources, shape: MachineShape) -> Resources:
    """`wanted` with its cores and RAM no more than `shape` has (a phase asking for more runs
    with what the host has, as on one host); its GPUs and disk as asked."""
    return attrs.evolve(
        wanted,
        cpu_cores=max(1, min(wanted.cpu_cores, shape.cpu_cores)),
        ram_gb=min(wanted.ram_gb, shape.ram_gb),
    )


class SSHPoolBackend(Backend):
    """Runs each job on one of several SSH hosts (see the module docstring)."""

    name = "ssh"

    def __init__(
        self, work_dir: Path | None = None, *, settings: SSHSettings | None = None, **options: Any
    ) -> None:
        if settings is not None and options:
            raise BackendError("ssh: give settings or keyword settings, not both", self.name)
        settings = settings or SSHSettings.from_options(options)
        if not settings.hosts:
            raise BackendError("ssh: a pool needs hosts = [...]; for one host use SSHBackend")
        self.settings = settings
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.hosts = tuple(
            SSHBackend(work_dir, settings=settings.for_host(entry)) for entry in settings.hosts
        )
        self._lock = threading.Lock()
        self._shapes: dict[str, MachineShape] = {}
        # destination -> (why it could not be probed, when: time.monotonic()).
        self._unreachable: dict[str, tuple[str, float]] = {}
        # destination -> job id -> the share of that host the job holds.
        self._shares: dict[str, dict[str, Share]] = {h.destination: {} for h in self.hosts}
        # The handles of the jobs holding those shares (started or attached here).
        self._running: dict[str, SSHPoolJobHandle] = {}

    def __repr__(self) -> str:
        return f"SSHPoolBackend({[host.destination for host in self.hosts]!r})"

    @property
    def python(self) -> str:
        # The hosts' interpreter as the settings name it; a job's command gets its host's own
        # (with ~ resolved) when it is placed, so nothing is probed before that.
        if self.settings.bootstrap:
            return f"{self.settings.remote_root.rstrip('/')}/{VENV_DIR}/bin/python"
        return self.settings.python

    # -- the hosts -------------------------------------------------------------------------

    def host(self, destination: str) -> SSHBackend:
        """The host of the pool that `destination` (``user@host:port``) names."""
        for host in self.hosts:
            if host.destination == destination:
                return host
        known = ", ".join(host.destination for host in self.hosts)
        raise BackendError(
            f"host {destination} is not in this pool's hosts ({known}); was it removed from "
            "[backends.ssh] hosts?",
            self.name,
        )

    def shape(self, host: SSHBackend) -> MachineShape | None:
        """What `host` has (declared, the rest probed once); None while it cannot be reached."""
        with self._lock:
            known = self._shapes.get(host.destination)
            failed = self._unreachable.get(host.destination)
        if known is not None:
            return known
        if failed is not None and time.monotonic() - failed[1] < PROBE_RETRY_S:
            return None
        try:
            capacity = host.capacity()
        except (VoltxError, OSError) as exc:
            with self._lock:
                self._unreachable[host.destination] = (str(exc), time.monotonic())
            log.warning("pool host not reachable", host=host.destination, error=str(exc))
            return None
        shape = MachineShape(
            gpus=capacity.gpus,
            # GPUs declared on a host without nvidia-smi have no known memory: not checked.
            gpu_memory_gb=capacity.gpu_memory_gb or (float("inf") if capacity.gpus else 0.0),
            cpu_cores=capacity.cpu_cores,
            ram_gb=capacity.ram_gb,
            disk_gb=capacity.disk_gb,
        )
        with self._lock:
            self._shapes[host.destination] = shape
            self._unreachable.pop(host.destination, None)
        return shape

    def _shapes_now(self) -> list[tuple[SSHBackend, MachineShape]]:
        return [(host, shape) for host in self.hosts if (shape := self.shape(host)) is not None]

    def _candidates(self, wanted: Resources) -> list[tuple[SSHBackend, MachineShape]]:
        """The hosts that could hold `wanted` when idle, best first: those it fits as asked, in
        the order listed; only when there are none, those it fits with fewer cores or less RAM
        (largest first; a job never runs cut down while a host that fits it whole is busy)."""
        holding = [(h, s) for h, s in self._shapes_now() if place(s, [], fitted(wanted, s))]
        whole = [(h, s) for h, s in holding if fitted(wanted, s) == wanted]
        if whole:
            return whole
        return sorted(holding, key=lambda pair: (pair[1].cpu_cores, pair[1].ram_gb), reverse=True)

    def capacity(self) -> Resources:
        shapes = [shape for _host, shape in self._shapes_now()]
        if not shapes:
            problems = "; ".join(f"{d}: {e}" for d, (e, _at) in sorted(self._unreachable.items()))
            raise BackendError(f"no host of the pool can be reached ({problems})", self.name)
        memories = [shape.gpu_memory_gb for shape in shapes if shape.gpus]
        return Resources(
            gpus=sum(shape.gpus for shape in shapes),
            # The scheduler asks whether a phase fits on one GPU: the smallest one answers that.
            gpu_memory_gb=min(memories, default=0.0),
            cpu_cores=sum(shape.cpu_cores for shape in shapes),
            ram_gb=sum(shape.ram_gb for shape in shapes),
            disk_gb=sum(shape.disk_gb for shape in shapes),
        )

    def job_disk_gb(self, resources: Resources) -> float:
        return max((s.disk_gb for _h, s in self._candidates(resources)), default=0.0)

    def quote(self, resources: Resources) -> Quote:
        # The rate of the host the phase would go to first (free unless dollars_per_hour is set).
        # Measured hours are kept under the backend's name, as for one host: a phase may run on
        # another host of the pool than the first that fits it.
        candidates = self._candidates(resources)
        host = candidates[0][0] if candidates else self.hosts[0]
        return Quote(host=self.name, dollars_per_hour=host.dollars_per_hour)

    def preflight(self, resources: Mapping[str, Resources]) -> list[str]:
        """One line for each phase that no host of the pool can hold, even when idle."""
        shapes = self._shapes_now()
        hosts = "; ".join(
            [f"{host.destination}: {shape.describe()}" for host, shape in shapes]
            + [f"{d}: unreachable" for d in sorted(self._unreachable)]
        )
        problems = []
        for phase_id, wanted in resources.items():
            if not any(place(shape, [], fitted(wanted, shape)) for _host, shape in shapes):
                problems.append(
                    f"phase {phase_id} needs {_describe(wanted)}, which no single host of "
                    f"backend {self.name} has ({hosts})"
                )
        return problems

    def machine_plan(self, slots: Sequence[PhaseSlot]) -> list[str]:
        """Which host each phase goes to: the first that `reserve` would give it, with room
        for it beside the phases planned there that overlap it."""
        shapes = self._shapes_now()
        planned: dict[str, list[PhaseSlot]] = {host.destination: [] for host, _shape in shapes}
        nowhere = []
        for slot in sorted(slots, key=lambda s: (s.start_h, s.phase_id)):
            for host, shape in self._candidates(slot.resources):
                beside = [
                    fitted(s.resources, shape)
                    for s in planned[host.destination]
                    if s.start_h < slot.end_h and slot.start_h < s.end_h
                ]
                if place_all(shape, [*beside, fitted(slot.resources, shape)]) is not None:
                    planned[host.destination].append(slot)
                    break
            else:
                nowhere.append(slot.phase_id)
        lines = ["hosts (ssh pool; each phase on the first listed host with room for it):"]
        for host, shape in shapes:
            phases = ", ".join(s.phase_id for s in planned[host.destination]) or "nothing"
            lines.append(f"  {host.destination} ({shape.describe()}) runs {phases}")
        lines += [f"  {d}: unreachable, runs nothing" for d in sorted(self._unreachable)]
        if nowhere:
            lines.append(f"  no host holds {', '.join(nowhere)}")
        return lines

    # -- placing jobs ----------------------------------------------------------------------

    def reserve(self, job_id: str, wanted: Resources) -> tuple[SSHBackend, Share] | None:
        """A host with room for `wanted` now and the share it gets there (held until
        `release`), or None when every host that could hold it is busy."""
        for host, shape in self._candidates(wanted):
            with self._lock:
                taken = self._shares[host.destination]
                share = place(shape, taken.values(), fitted(wanted, shape))
                if share is not None:
                    taken[job_id] = share
                    return host, share
        return None

    def adopt(self, job_id: str, destination: str, share: Share) -> None:
        """Count the share of a job found on a host (attached after a restart)."""
        with self._lock:
            self._shares[destination][job_id] = share

    def track(self, handle: SSHPoolJobHandle) -> None:
        """`handle`'s job holds a share until it ends (`poll_running` asks it)."""
        with self._lock:
            self._running[handle.job_id] = handle

    def poll_running(self) -> None:
        """Ask every job holding a share how it stands: those that have ended give it back."""
        with self._lock:
            running = list(self._running.values())
        for handle in running:
            handle.status()

    def release(self, job_id: str) -> None:
        """The job's share is free again."""
        with self._lock:
            self._running.pop(job_id, None)
            for taken in self._shares.values():
                taken.pop(job_id, None)

    def launched_file(self, job_id: str) -> Path | None:
        """Where a job that waited for room records where it started (None: no work folder)."""
        if self.work_dir is None:
            return None
        return self.work_dir / LAUNCHED_DIR / f"{job_id}.json"

    # -- jobs ------------------------------------------------------------------------------

    def submit(self, request: JobRequest) -> SSHPoolJobHandle:
        _jobs.check_job_id(request.job_id, self.name)
        if not self._candidates(request.resources):
            raise BackendError(
                f"job {request.job_id} needs {_describe(request.resources)}, which no single "
                f"host of backend {self.name} has",
                self.name,
            )
        handle = SSHPoolJobHandle(self, request.job_id, request=request)
        handle.start_if_room()
        return handle

    def attach(self, ref: Mapping[str, Any]) -> SSHPoolJobHandle:
        job_id = ref.get("job_id")
        if not isinstance(job_id, str):
            raise BackendError(f"not an ssh job ref (needs job_id): {ref!r}", self.name)
        _jobs.check_job_id(job_id, self.name)
        if ref.get("host") is None:
            # The job waited for room when its ref was recorded: it may have started since.
            ref = launched_ref(self.launched_file(job_id)) or ref
        destination = ref.get("host")
        if not isinstance(destination, str):
            return SSHPoolJobHandle(self, job_id, request=None)  # never started: lost
        host = self.host(destination)
        inner = host.attach(ref)
        share = share_from_ref(ref)
        self.adopt(job_id, destination, share)
        handle = SSHPoolJobHandle(self, job_id, inner=inner, host=host, share=share)
        self.track(handle)
        return handle

    def close(self) -> None:
        for host in self.hosts:
            host.close()


def _describe(wanted: Resources) -> str:
    gpus = f"{wanted.gpus} GPU(s) of {wanted.gpu_memory_gb:g} GB, " if wanted.gpus else ""
    return f"{gpus}{wanted.cpu_cores} cores, {wanted.ram_gb:g} GB RAM, {wanted.disk_gb:g} GB disk"
