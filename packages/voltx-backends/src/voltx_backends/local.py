"""The ``local`` backend: every job is a detached subprocess on this machine.

It runs the same wrapper and job folder as the remote backends (`voltx_backends._jobs`), so a job
started here behaves like one started over SSH: it survives the orchestrator that started it, its
status is read from its folder, and a later process finds it again with `LocalBackend.attach`.

    backend = LocalBackend(work_dir=Path(".voltx/local"), gpus=1)
    handle = backend.submit(JobRequest("demo-1", ("python", "-c", "print('hi')")))
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from voltx.backend import Backend, JobHandle, JobRequest, JobStatus
from voltx.errors import BackendError
from voltx.spec import Resources
from voltx_backends import _jobs

log = structlog.get_logger(__name__)

# nvidia-smi can take a few seconds while the driver wakes up; a hung one must not hang voltx.
NVIDIA_SMI_TIMEOUT_S = 10.0
GIB = 2**30


class LocalJobHandle(JobHandle):
    """A job in a folder on this machine."""

    def __init__(self, job_dir: Path, job_id: str, leader_pid: int | None = None) -> None:
        self.job_dir = job_dir
        self.job_id = job_id
        # Known only to the process that started the job; it lets status and cancel act before
        # the wrapper has written its pid file.
        self._leader_pid = leader_pid

    def __repr__(self) -> str:
        return f"LocalJobHandle(job_id={self.job_id!r}, job_dir={str(self.job_dir)!r})"

    @property
    def ref(self) -> dict[str, Any]:
        return {"backend": LocalBackend.name, "job_id": self.job_id, "job_dir": str(self.job_dir)}

    def status(self) -> JobStatus:
        return _jobs.read_status(self.job_dir, self.job_id, self._leader_pid)

    def read_log(self, offset: int = 0) -> tuple[bytes, int]:
        return _jobs.read_log(self.job_dir, offset)

    def read_file(self, name: str) -> bytes | None:
        return _jobs.read_file(self.job_dir, name, LocalBackend.name)

    def cancel(self, grace_s: float = 10.0) -> None:
        _jobs.cancel(self.job_dir, self.job_id, grace_s, self._leader_pid, LocalBackend.name)


class LocalBackend(Backend):
    """Runs each job as a detached subprocess, in ``work_dir/jobs/<job_id>/``.

    Every option left as None is read from the machine: CPU cores from the CPUs this process may
    use, GPUs from ``CUDA_VISIBLE_DEVICES`` and ``nvidia-smi``, RAM from ``/proc/meminfo`` (and
    the cgroup limit, inside a container). Set them to share the machine with other work.
    """

    name = "local"

    def __init__(
        self,
        work_dir: Path,
        cpu_cores: int | None = None,
        gpus: int | None = None,
        gpu_memory_gb: float | None = None,
        ram_gb: float | None = None,
    ) -> None:
        for option, value in [
            ("cpu_cores", cpu_cores),
            ("gpus", gpus),
            ("gpu_memory_gb", gpu_memory_gb),
            ("ram_gb", ram_gb),
        ]:
            if value is not None and value < 0:
                raise BackendError(f"{option} must not be negative, got {value}", self.name)
        self.work_dir = Path(work_dir)
        self.jobs_dir = self.work_dir / "jobs"
        self._cpu_cores = cpu_cores
        self._gpus = gpus
        self._gpu_memory_gb = gpu_memory_gb
        self._ram_gb = ram_gb

    def submit(self, request: JobRequest) -> LocalJobHandle:
        _jobs.check_job_id(request.job_id, self.name)
        env = self._job_env(request)
        job_dir = self.jobs_dir / request.job_id
        _jobs.write_folder(job_dir, request, self.name)
        try:
            # A new session makes the wrapper the leader of its own process group, so that cancel
            # reaches everything the job started, and so that a Ctrl-C aimed at the orchestrator
            # does not reach the job. No inherited stdio: the job must hold none of our pipes.
            process = subprocess.Popen(
                _jobs.launch_argv(request.job_id, shell="/bin/sh"),
                cwd=job_dir,
                env=env,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError as exc:
            raise BackendError(f"cannot start job {request.job_id}: {exc}", self.name) from exc
        # Reap the wrapper when it exits, so it does not linger as a zombie while we live.
        threading.Thread(
            target=process.wait, name=f"voltx-reap-{request.job_id}", daemon=True
        ).start()
        log.debug("job started", job_id=request.job_id, pid=process.pid, job_dir=str(job_dir))
        return LocalJobHandle(job_dir, request.job_id, leader_pid=process.pid)

    def attach(self, ref: Mapping[str, Any]) -> LocalJobHandle:
        job_id = ref.get("job_id")
        job_dir = ref.get("job_dir")
        if not isinstance(job_id, str) or not isinstance(job_dir, str):
            raise BackendError(
                f"not a local job ref (needs job_id and job_dir): {ref!r}", self.name
            )
        _jobs.check_job_id(job_id, self.name)
        if Path(job_dir).name != job_id:
            raise BackendError(f"job folder {job_dir} does not belong to job {job_id}", self.name)
        return LocalJobHandle(Path(job_dir), job_id)

    def capacity(self) -> Resources:
        gpus = self._gpu_count()
        if self._gpu_memory_gb is not None:
            gpu_memory_gb = self._gpu_memory_gb
        elif gpus and self._gpu_memories_gb:
            # The scheduler asks whether a phase fits on one GPU: the smallest one answers that.
            gpu_memory_gb = min(self._gpu_memories_gb)
        else:
            gpu_memory_gb = 0.0
        return Resources(
            gpus=gpus,
            gpu_memory_gb=gpu_memory_gb,
            cpu_cores=self._cpu_cores if self._cpu_cores is not None else _usable_cpu_count(),
            ram_gb=self._ram_gb if self._ram_gb is not None else _total_ram_gb(),
            disk_gb=_free_disk_gb(self.work_dir),
        )

    def _gpu_count(self) -> int:
        if self._gpus is not None:
            return self._gpus
        detected = len(self._gpu_memories_gb)
        visible = _visible_gpu_ids()
        return detected if visible is None else min(detected, len(visible))

    @functools.cached_property
    def _gpu_memories_gb(self) -> list[float]:
        # Asked once per backend: nvidia-smi is slow, and the GPUs do not change under a run.
        return _query_gpu_memories_gb()

    def _job_env(self, request: JobRequest) -> dict[str, str]:
        env = {**os.environ, **request.env}
        gpus = self._gpu_count()
        if gpus == 0:
            if request.devices:
                raise BackendError(
                    f"job {request.job_id} asks for GPUs {list(request.devices)} "
                    "but this machine has none (set the gpus option if that is wrong)",
                    self.name,
                )
            # No GPUs to share out: whatever the user's environment says stays as it is.
            return env
        # The scheduler numbers the GPUs it may use from 0; when our own CUDA_VISIBLE_DEVICES
        # already narrows the machine, those numbers index into it.
        physical = _visible_gpu_ids() or [str(index) for index in range(gpus)]
        usable = min(gpus, len(physical))
        wrong = [device for device in request.devices if not 0 <= device < usable]
        if wrong:
            raise BackendError(
                f"job {request.job_id} asks for GPUs {wrong}, but only 0..{usable - 1} exist",
                self.name,
            )
        # Set even when empty: a CPU job on a GPU machine must not grab GPU 0 by default.
        env["CUDA_VISIBLE_DEVICES"] = ",".join(physical[device] for device in request.devices)
        return env


def _visible_gpu_ids() -> list[str] | None:
    """Our own CUDA_VISIBLE_DEVICES as a list, or None when it is not set."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    ids: list[str] = []
    for part in value.split(","):
        part = part.strip()
        # CUDA stops reading at the first invalid entry; "-1" is the usual way to hide every GPU.
        if not part or part.startswith("-"):
            break
        ids.append(part)
    return ids


def _query_gpu_memories_gb() -> list[float]:
    """The total memory of each GPU that nvidia-smi lists (GiB); empty without a working one."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return []
    try:
        result = subprocess.run(
            [binary, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("nvidia-smi failed; counting no GPUs", error=str(exc))
        return []
    memories: list[float] = []
    for line in filter(None, (line.strip() for line in result.stdout.splitlines())):
        try:
            memories.append(float(line) / 1024)  # nvidia-smi reports MiB
        except ValueError:
            # Some boards report "[N/A]": the GPU is there, only its memory is unknown.
            memories.append(0.0)
    return memories


def _usable_cpu_count() -> int:
    # The CPUs this process may run on (taskset, cpusets), not every CPU the machine has.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _total_ram_gb() -> float:
    total: float | None = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024 / GIB  # reported in kB
                break
    except (OSError, ValueError):
        pass
    if total is None:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
        except (OSError, ValueError):
            return 0.0
    # Inside a container MemTotal is the host's memory; the cgroup limit is what we may use.
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return total
    return min(total, int(limit) / GIB) if limit.isdigit() else total


def _free_disk_gb(path: Path) -> float:
    # The work folder may not exist yet: ask about the nearest folder that does.
    for candidate in (path, *path.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free / GIB
    return 0.0
