"""The backend contract: where a phase's job runs, and how voltx watches and stops it.

Every backend speaks one job protocol (see `docs/concepts.md`): a job folder holding the command's
files, ``pid``, ``log``, ``exit_code`` (written by rename, so it is all there or absent) and
``heartbeat``. A job is started detached; its status is read from the folder, never from the exit
status of whatever started it; logs are read from a byte offset so a client can re-attach; cancel
kills the job's whole process group.
"""

from __future__ import annotations

import abc
import enum
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from voltx.spec import Resources


class JobState(enum.Enum):
    """Where a job stands."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LOST = "lost"  # the process vanished without writing its exit code (host gone, OOM kill)

    @property
    def finished(self) -> bool:
        return self is not JobState.RUNNING


@attrs.frozen
class JobStatus:
    """A job's state, with its exit code once it has one."""

    state: JobState
    exit_code: int | None = None
    detail: str = ""


@attrs.frozen
class JobRequest:
    """One job for a backend to start.

    `argv` runs inside the job folder, after `files` are written there. The scheduler builds it
    from `Backend.python` (``(python, "-m", "voltx", "worker", "job.json")``). `devices` are the
    GPU indices the scheduler allotted (empty on CPU); a backend exposes exactly those to the job.
    """

    job_id: str
    argv: tuple[str, ...]
    files: Mapping[str, bytes] = attrs.field(factory=dict)
    env: Mapping[str, str] = attrs.field(factory=dict)
    resources: Resources = Resources()
    devices: tuple[int, ...] = ()


class JobHandle(abc.ABC):
    """A started job. `ref` is plain data from which `Backend.attach` finds the job again."""

    job_id: str

    @property
    @abc.abstractmethod
    def ref(self) -> dict[str, Any]:
        """Serializable address of the job (kept in the run ledger)."""

    @abc.abstractmethod
    def status(self) -> JobStatus:
        """Read the job's state from its folder."""

    @abc.abstractmethod
    def read_log(self, offset: int = 0) -> tuple[bytes, int]:
        """The log's bytes from `offset`, and the offset to ask for next."""

    @abc.abstractmethod
    def read_file(self, name: str) -> bytes | None:
        """A file the job wrote into its folder (``result.json``), or None if absent."""

    @abc.abstractmethod
    def cancel(self, grace_s: float = 10.0) -> None:
        """Stop the job's whole process group: TERM, then KILL after `grace_s`."""

    @property
    def price_per_hour(self) -> float:
        """Dollars per hour the job's machine costs while the job runs (for budgets).

        The default is free (this machine). It may change while the job runs: a rented
        machine's price is known once it is rented.
        """
        return 0.0

    @property
    def billing_key(self) -> str:
        """Jobs with the same key share one machine, paid for once (budgets count it once)."""
        return f"job:{self.job_id}"


@attrs.frozen
class PhaseSlot:
    """One phase of a plan's timeline, for a backend that lays phases onto machines: its
    resources and when it runs (hours from the start of the run, midpoint estimates)."""

    phase_id: str
    resources: Resources
    start_h: float
    end_h: float


@attrs.frozen
class Quote:
    """What running a phase with some resources would cost on a backend, for plans.

    `relative_speed` is the GPU's speed against the reference GPU the phase hours are quoted for
    (an H100 = 1.0). `separate_host` says each phase gets its own machine (so its inputs and
    outputs cross the network at `bandwidth_mb_s`); on one shared machine nothing moves.
    """

    host: str
    dollars_per_hour: float = 0.0
    relative_speed: float = 1.0
    bandwidth_mb_s: float = 1000.0
    separate_host: bool = False
    # A wider range for the conservative estimate, where the price is not firm (market offers).
    dollars_per_hour_high: float | None = None


@attrs.frozen
class MachineUsage:
    """A machine a backend rented for its jobs, and the billable time no job's meter covers.

    `prep_s` runs from the rent call to its first job running (the jobs' meters already count
    it: a job is metered from its submission); `idle_s` is the time the machine was held with no
    job on it, which no job pays for, so the run's budget meter charges `idle_dollars`
    (docs/concepts.md, "Backends"). `released` says why it was given back (``idle``, ``lost``,
    ``closed``); empty while it is held.
    """

    label: str
    dollars_per_hour: float
    held_s: float = 0.0
    prep_s: float = 0.0
    idle_s: float = 0.0
    jobs_run: int = 0
    released: str = ""

    @property
    def prep_dollars(self) -> float:
        return self.dollars_per_hour * self.prep_s / 3600

    @property
    def idle_dollars(self) -> float:
        return self.dollars_per_hour * self.idle_s / 3600

    def record(self) -> dict[str, Any]:
        """The fields as the ledger keeps them (seconds and dollars, rounded)."""
        return {
            "label": self.label,
            "dollars_per_hour": self.dollars_per_hour,
            "held_s": round(self.held_s, 3),
            "prep_s": round(self.prep_s, 3),
            "idle_s": round(self.idle_s, 3),
            "jobs_run": self.jobs_run,
            "released": self.released,
            "prep_dollars": round(self.prep_dollars, 6),
            "idle_dollars": round(self.idle_dollars, 6),
        }


@attrs.frozen
class UpcomingPhase:
    """A phase routed to a backend that has not started yet, as the scheduler sees it now:
    `ready_in_s` is when it is expected to be ready to start (0: its inputs are there), None
    when nobody can tell (an upstream phase has not started, or has no estimate)."""

    phase_id: str
    resources: Resources
    ready_in_s: float | None


class Backend(abc.ABC):
    """Runs jobs. Subclass it and register the class with the `register_backends` hook."""

    name: str = "backend"

    @abc.abstractmethod
    def submit(self, request: JobRequest) -> JobHandle:
        """Start `request` detached and return at once."""

    @abc.abstractmethod
    def attach(self, ref: Mapping[str, Any]) -> JobHandle:
        """Find a job started earlier (perhaps by an orchestrator that has since died)."""

    @property
    def python(self) -> str:
        """The Python interpreter, on the job's host, that has voltx installed."""
        return sys.executable

    def capacity(self) -> Resources:
        """Resources available to run jobs at once; the scheduler never exceeds them.

        Memory and disk are in GiB (per GPU for `gpu_memory_gb`); infinity means not rationed.
        """
        return Resources(cpu_cores=1, ram_gb=float("inf"), disk_gb=float("inf"))

    def quote(self, resources: Resources) -> Quote:
        """The price, speed and bandwidth a phase with `resources` would get here (for plans).

        The default is this machine: free, reference speed, nothing to transfer.
        """
        return Quote(host=self.name)

    def machine_plan(self, slots: Sequence[PhaseSlot]) -> list[str]:
        """Lines for ``voltx plan`` on which machine each phase runs, when machines are rented
        and released, and what the alternative would cost. Must not rent anything. The default
        says nothing (every phase runs on this backend's hosts as they are)."""
        return []

    def job_disk_gb(self, resources: Resources) -> float:
        """The disk, in GB, a job with `resources` gets here (preflight checks that a phase's
        inputs, outputs and checkpoints fit). The default is what `capacity` reports."""
        return self.capacity().disk_gb

    def preflight(self, resources: Mapping[str, Resources]) -> list[str]:
        """Problems that would stop these phases here (credentials, offers, disk), as lines.

        Must not rent or start anything. The default checks the resources against `capacity`.
        """
        capacity = self.capacity()
        problems = []
        for phase_id, wanted in resources.items():
            if wanted.gpus > capacity.gpus:
                problems.append(
                    f"phase {phase_id} needs {wanted.gpus} GPU(s); backend {self.name} has "
                    f"{capacity.gpus}"
                )
            if wanted.disk_gb > capacity.disk_gb:
                problems.append(
                    f"phase {phase_id} needs {wanted.disk_gb:g} GB of disk; backend {self.name} "
                    f"has {capacity.disk_gb:g} GB free"
                )
        return problems

    def store_problems(self, url: str) -> list[str]:
        """Problems the backend's jobs would have reaching the store at `url`, as lines.

        Preflight asks it. The default has none: jobs on this machine reach any store it does.
        """
        return []

    def machines(self) -> Sequence[MachineUsage]:
        """The machines this backend rented and holds (or gave back) for its jobs, with their
        prep and idle time so far. The scheduler polls it: idle time is charged to the run's
        budget, and each machine goes into the ledger. The default: none (the jobs' meters
        cover every billed second)."""
        return []

    def expect(self, upcoming: Sequence[UpcomingPhase]) -> None:  # noqa: B027 (optional hook)
        """A hint from the scheduler, on every poll: the phases routed here still to start. A
        backend that keeps idle machines may keep one as long as a phase that fits it is
        expected; the default ignores it."""

    @property
    def runs_in_process(self) -> bool:
        """True when jobs share this process (and so may use a ``memory://`` store)."""
        return False

    def close(self) -> None:  # noqa: B027 (optional hook, deliberately empty by default)
        """Release whatever the backend holds (connections, rented machines)."""


def process_group_alive(pgid: int) -> bool:
    """Whether a live process of group `pgid` exists on this machine (zombies do not count).

    Backends that run jobs here use it to tell a running job from a finished one, and the
    backend contract suite to check that cancel stopped the whole group.
    """
    if not Path("/proc/self").exists():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # it exists, under another user
        return True
    # Scan /proc rather than ask killpg: a container's init often never reaps orphans, and their
    # zombies would keep the group "alive" forever although nothing in it can run.
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        # The command name may hold spaces and parentheses; the fields start after its last ")".
        fields = stat[stat.rindex(b")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in {b"Z", b"X"}:
            return True
    return False
