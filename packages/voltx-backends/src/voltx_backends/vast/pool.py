"""Where a phase runs in a pool of rented machines: pure placement arithmetic, no I/O.

docs/vast.md, "Machine pool", states the rules this module implements:

- A machine's `MachineShape` comes from its offer (GPUs, memory per GPU, cores, RAM, disk).
- A job placed on a machine gets a `Share` of it: whole GPUs by index, whole cores by index, and
  its RAM and disk. Shares on one machine never overlap and never add up to more than it has.
- Packing several phases onto one larger machine beats renting one machine each when its price
  times the time it is held is below the sum of theirs (`choose_packing`); each rental also
  pays its own prep (boot, bootstrap, upload), which packing pays once.
- An idle machine is kept for as long as the next phase that fits it is expected to become
  ready, never longer than the cap (`idle_window_s`).

`PooledMachine` is the plain record of one machine and its jobs; the stateful side (renting,
waiting, destroying) is `voltx_backends.vast.pooled`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from voltx.backend import MachineUsage
from voltx.spec import Resources

if TYPE_CHECKING:
    from voltx_backends.vast.provision import Rental

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
        gpus = f"{self.gpus} GPU(s) of {self.gpu_memory_gb:g} GB, " if self.gpus else ""
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


@attrs.frozen
class PackingChoice:
    """Packed on one machine or one machine each, with both costs in dollars."""

    packed: bool
    packed_dollars: float
    separate_dollars: float

    @property
    def saving(self) -> float:
        """What the chosen way saves over the rejected one (never negative)."""
        return abs(self.separate_dollars - self.packed_dollars)


def choose_packing(
    hours: Sequence[float],
    separate_prices: Sequence[float],
    packed_price: float | None,
    prep_hours: float = 0.0,
) -> PackingChoice:
    """Pack the jobs (running for `hours` each, side by side) onto one machine at
    `packed_price`, or rent one each at `separate_prices`? Price times the time each machine is
    held, prep included; None (no offer fits them all) never packs."""
    separate = sum(p * (h + prep_hours) for p, h in zip(separate_prices, hours, strict=True))
    if packed_price is None:
        return PackingChoice(False, float("inf"), separate)
    packed = packed_price * (max(hours, default=0.0) + prep_hours)
    return PackingChoice(packed <= separate, packed, separate)


def idle_window_s(cap_s: float, expected_next_s: float | None = None) -> float:
    """How long an idle machine waits for its next job: until the next fitting phase is
    expected to become ready, when that is known, never more than `cap_s`."""
    if expected_next_s is None:
        return cap_s
    return max(0.0, min(cap_s, expected_next_s))


# A phase expected now (or already overdue) is submitted at one of the scheduler's next polls:
# an idle machine it fits waits at least this long for it.
NEXT_PHASE_GRACE_S = 5.0


def hinted_idle_window(
    cap_s: float,
    shape: MachineShape,
    upcoming: Iterable[tuple[Resources, float | None]] | None,
    now: float,
    grace_s: float = NEXT_PHASE_GRACE_S,
) -> float:
    """How long a machine of `shape`, idle from `now`, waits, given the phases still to start
    (`upcoming`: each one's resources and the clock time it should be ready, None if unknown):
    the cap when a phase that fits has no known time; until the soonest one that fits is
    expected (at least `grace_s`, the time the scheduler takes to submit a phase that is ready)
    when all are known; `grace_s` alone when none fits. No hints at all (None): the cap."""
    if upcoming is None:
        return idle_window_s(cap_s)
    fitting = [at for wanted, at in upcoming if place(shape, (), wanted) is not None]
    if not fitting:
        return min(cap_s, grace_s)
    known = [at for at in fitting if at is not None]
    if len(known) < len(fitting):
        return idle_window_s(cap_s)
    return idle_window_s(cap_s, max(grace_s, min(known) - now))


class MachineState(enum.Enum):
    PLANNED = "planned"  # chosen offer, not rented yet: may still be swapped for a larger one
    RENTING = "renting"  # one of its jobs rents and prepares it
    READY = "ready"  # answers SSH (its first job installs voltx, beside its upload)
    FAILED = "failed"  # could not be had
    GONE = "gone"  # destroyed (idle, lost, closed)


@attrs.define(eq=False)
class PooledMachine:
    """One machine of the pool and the jobs placed on it."""

    label: str
    run_id: str | None
    shape: MachineShape
    price: float
    planned_until: float
    demands: dict[str, Resources] = attrs.field(factory=dict)
    shares: dict[str, Share] = attrs.field(factory=dict)
    state: MachineState = MachineState.PLANNED
    claimed: bool = False  # one of its jobs rents it (after the gather window)
    rental: Rental | None = None
    error: str = ""
    # Billable time: rented (rent call) -> first job started, and idle stretches.
    rent_started: float | None = None
    first_job: float | None = None
    idle_since: float | None = None
    idle_s: float = 0.0
    jobs_run: int = 0

    @property
    def prep_s(self) -> float:
        if self.rent_started is None or self.first_job is None:
            return 0.0
        return self.first_job - self.rent_started

    def busy_again(self, now: float) -> None:
        """End an idle stretch (a job came, or the machine goes), adding it to `idle_s`."""
        if self.idle_since is not None:
            self.idle_s += now - self.idle_since
            self.idle_since = None


def machine_usage(machine: PooledMachine, now: float, released: str = "") -> MachineUsage:
    """What a rented `machine` has cost so far (`Backend.machines`): its prep, and its idle
    time with the stretch going on `now`."""
    assert machine.rent_started is not None
    idle_now = now - machine.idle_since if machine.idle_since is not None else 0.0
    rental = machine.rental
    return MachineUsage(
        label=machine.label,
        dollars_per_hour=rental.instance.dph_total if rental is not None else machine.price,
        held_s=now - machine.rent_started,
        prep_s=machine.prep_s,
        idle_s=machine.idle_s + idle_now,
        jobs_run=machine.jobs_run,
        released=released,
    )


def usage_record(
    *,
    label: str,
    run_id: str | None,
    dollars_per_hour: float,
    held_s: float,
    prep_s: float,
    idle_s: float,
    jobs_run: int,
    reason: str,
) -> dict[str, Any]:
    """What a pooled machine cost, split into prep (rented -> first job running), idle (no job)
    and busy time, each in seconds and dollars (for ``voltx vast machines``)."""
    busy_s = max(0.0, held_s - prep_s - idle_s)

    def dollars(seconds: float) -> float:
        return round(dollars_per_hour * seconds / 3600, 6)

    return {
        "label": label,
        "run_id": run_id,
        "dollars_per_hour": dollars_per_hour,
        "jobs_run": jobs_run,
        "released": reason,
        "held_s": round(held_s, 3),
        "prep_s": round(prep_s, 3),
        "idle_s": round(idle_s, 3),
        "busy_s": round(busy_s, 3),
        "dollars": dollars(held_s),
        "prep_dollars": dollars(prep_s),
        "idle_dollars": dollars(idle_s),
    }


# Run on the machine before the job's command: pin the process (and so everything it starts) to
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
