"""A machine's resources and the share of them one job gets: pure placement arithmetic.

Shared by the Vast.ai machine pool (`voltx_backends.vast.pool`) and the SSH host pool
(`voltx_backends.ssh.pool`). docs/vast.md, "Machine pool", states the rules:

- A machine's `MachineShape` is what it has (GPUs, memory per GPU, cores, RAM, disk).
- A job placed on a machine gets a `Share` of it: whole GPUs by index, whole cores by index, and
  its RAM and disk. Shares on one machine never overlap and never add up to more than it has.
- A job runs pinned to its share (`pinned_argv`, `share_env`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from voltx.spec import Resources

# The offer API counts memory in MB of 1000 (docs/vast.md, "Offer search").
MB_PER_GB = 1000.0


@attrs.frozen
class MachineShape:
    """What one rented machine has. `gpu_memory_gb` is per GPU."""

    gpus: int = 0
    gpu_memory_gb: float = 0.0
    cpu_cores: int = 1
    ram_gb: float = 0.0
    disk_gb: float = 0.0

    @classmethod
    def from_offer(cls, raw: Mapping[str, Any], disk_gb: float) -> MachineShape:
        """The shape of an offer's machine (`raw` is the API's offer object): the host's free
        disk (``disk_space``), or `disk_gb` where the answer has none."""
        return cls(
            gpus=int(raw.get("num_gpus") or 0),
            gpu_memory_gb=float(raw.get("gpu_ram") or 0.0) / MB_PER_GB,
            cpu_cores=max(1, int(float(raw.get("cpu_cores_effective") or 1))),
            ram_gb=float(raw.get("cpu_ram") or 0.0) / MB_PER_GB,
            disk_gb=float(raw.get("disk_space") or disk_gb),
        )

    def describe(self) -> str:
        memory = f" of {self.gpu_memory_gb:g} GB" if self.gpu_memory_gb != float("inf") else ""
        gpus = f"{self.gpus} GPU(s){memory}, " if self.gpus else ""
        return f"{gpus}{self.cpu_cores} cores, {self.ram_gb:g} GB RAM"


@attrs.frozen
class Share:
    """The part of a machine one job may use: GPU and core indices, RAM and disk in GB."""

    gpus: tuple[int, ...] = ()
    cpus: tuple[int, ...] = ()
    ram_gb: float = 0.0
    disk_gb: float = 0.0

    def cpu_list(self) -> str:
        """The cores as ``taskset -c`` writes them: ``0-3,6``."""
        return index_ranges(self.cpus)


def index_ranges(indices: Iterable[int]) -> str:
    """``0-3,6`` for 0, 1, 2, 3, 6."""
    ordered = sorted(set(indices))
    parts: list[str] = []
    start = previous = None
    for index in [*ordered, None]:
        if index is not None and previous is not None and index == previous + 1:
            previous = index
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = index
    return ",".join(parts)


def place(shape: MachineShape, taken: Iterable[Share], wanted: Resources) -> Share | None:
    """The share of `shape` a job with `wanted` resources gets beside the `taken` shares, or
    None when what is left is short of it. The lowest free indices are given."""
    taken = list(taken)
    if wanted.gpus and wanted.gpu_memory_gb > shape.gpu_memory_gb:
        return None
    used_gpus = {gpu for share in taken for gpu in share.gpus}
    used_cpus = {cpu for share in taken for cpu in share.cpus}
    free_gpus = [gpu for gpu in range(shape.gpus) if gpu not in used_gpus]
    free_cpus = [cpu for cpu in range(shape.cpu_cores) if cpu not in used_cpus]
    cores = max(1, wanted.cpu_cores)
    if len(free_gpus) < wanted.gpus or len(free_cpus) < cores:
        return None
    ram = sum(share.ram_gb for share in taken)
    disk = sum(share.disk_gb for share in taken)
    if ram + wanted.ram_gb > shape.ram_gb or disk + wanted.disk_gb > shape.disk_gb:
        return None
    return Share(
        gpus=tuple(free_gpus[: wanted.gpus]),
        cpus=tuple(free_cpus[:cores]),
        ram_gb=wanted.ram_gb,
        disk_gb=wanted.disk_gb,
    )


def place_all(shape: MachineShape, wanted: Sequence[Resources]) -> list[Share] | None:
    """Shares for every job of `wanted` on one machine, in order, or None if they do not fit."""
    shares: list[Share] = []
    for resources in wanted:
        share = place(shape, shares, resources)
        if share is None:
            return None
        shares.append(share)
    return shares


def combined(wanted: Sequence[Resources]) -> Resources:
    """One machine's worth of `wanted` side by side: GPUs, cores, RAM and disk add up; memory
    per GPU is the most any of them needs."""
    return Resources(
        gpus=sum(r.gpus for r in wanted),
        gpu_memory_gb=max((r.gpu_memory_gb for r in wanted if r.gpus), default=0.0),
        cpu_cores=sum(max(1, r.cpu_cores) for r in wanted),
        ram_gb=sum(r.ram_gb for r in wanted),
        disk_gb=sum(r.disk_gb for r in wanted),
    )


# its cores, cap its address space if asked, then exec the command. The share's core numbers
# count the cores the container may use (an offer's ``cpu_cores_effective`` is the container's
# share of the host, and its allowed CPU set need not start at 0), so they index that set.
_PIN_CODE = """\
import os, resource, sys
cpus = [int(c) for c in sys.argv[1].split(",") if c]
if cpus and hasattr(os, "sched_setaffinity"):
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {allowed[c % len(allowed)] for c in cpus})
limit = int(sys.argv[2])
if limit > 0:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
os.execvp(sys.argv[3], sys.argv[3:])
"""


def pinned_argv(
    python: str, share: Share, argv: Sequence[str], *, limit_memory: bool = False
) -> tuple[str, ...]:
    """`argv` run within `share`: on its cores (sched_setaffinity), and with `limit_memory` for a
    job without GPUs, under an address-space limit of its RAM."""
    limit = int(share.ram_gb * 2**30) if limit_memory and not share.gpus else 0
    cpus = ",".join(str(cpu) for cpu in share.cpus)
    return (python, "-c", _PIN_CODE, cpus, str(limit), *argv)


def share_env(share: Share) -> dict[str, str]:
    """The job's environment for its share: its GPUs (set even when none, so a CPU job on a GPU
    machine does not take GPU 0) and thread pools no wider than its cores."""
    threads = str(max(1, len(share.cpus)))
    return {
        "CUDA_VISIBLE_DEVICES": ",".join(str(gpu) for gpu in share.gpus),
        "VOLTX_CPU_SHARE": share.cpu_list(),
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
    }
