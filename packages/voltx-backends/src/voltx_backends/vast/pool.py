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

Shapes, shares and pinning live in `voltx_backends._shares` (shared with the SSH host pool)
and are re-exported here. `PooledMachine` is the plain record of one machine and its jobs; the
stateful side (renting, waiting, destroying) is `voltx_backends.vast.pooled`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from voltx.backend import MachineUsage
from voltx.spec import Resources
from voltx_backends._shares import (
    MB_PER_GB,
    MachineShape,
    Share,
    combined,
    index_ranges,
    pinned_argv,
    place,
    place_all,
    share_env,
)

if TYPE_CHECKING:
    from voltx_backends.vast.provision import Rental

__all__ = [
    "MB_PER_GB",
    "MachineShape",
    "MachineState",
    "PackingChoice",
    "PooledMachine",
    "Share",
    "choose_packing",
    "combined",
    "idle_window_s",
    "index_ranges",
    "pinned_argv",
    "place",
    "place_all",
    "share_env",
    "usage_record",
]


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
