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
