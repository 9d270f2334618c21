"""Which machine each phase of a plan runs on, with a pool of rented machines (pure, no I/O).

`voltx plan --backend vast` with ``pool = true`` lays the timeline's phases onto machines the way
the pool would (docs/vast.md, "Machine pool"): a phase goes to a machine already planned when its
share fits beside the phases running there at the time, and the machine would still be held (it
went idle no longer than the idle window before); phases that start together and fit one larger
offer are packed onto it when that costs less, by price x hours (prep included), than renting
each its own. The alternative the plan rejects, one machine per phase, is priced too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs
import structlog

from voltx.backend import PhaseSlot
from voltx.errors import BackendError
from voltx.spec import Resources
from voltx_backends.vast.client import VastAPIError, VastClient
from voltx_backends.vast.offers import Offer, OfferQuery
from voltx_backends.vast.pool import MachineShape, choose_packing, combined, place_all
from voltx_backends.vast.settings import VastSettings

log = structlog.get_logger(__name__)

# Phases whose starts differ by less than this (hours) start together.
SAME_TIME_H = 1e-9


@attrs.frozen
class OfferChoice:
    """An offer a plan may rent: what it is called, its shape and its price."""

    name: str
    shape: MachineShape
    dollars_per_hour: float


@attrs.frozen
class PlannedMachine:
    """One machine of the plan: the phases it runs and when it is held."""

    name: str
    offer: OfferChoice
    phases: tuple[str, ...]
    rented_h: float  # hours from the start of the run (prep starts then)
    first_phase_h: float
    released_h: float

    @property
    def prep_h(self) -> float:
        return self.first_phase_h - self.rented_h

    @property
    def dollars(self) -> float:
        return self.offer.dollars_per_hour * (self.released_h - self.rented_h)


@attrs.frozen
class MachinePlan:
    """The pooled machines, and what one machine per phase would cost instead."""

    machines: tuple[PlannedMachine, ...]
    per_phase_dollars: float

    @property
    def dollars(self) -> float:
        return sum(machine.dollars for machine in self.machines)


Cheapest = Callable[[Resources], OfferChoice | None]


def plan_machines(
    slots: Sequence[PhaseSlot], cheapest: Cheapest, *, prep_h: float, idle_h: float
) -> MachinePlan:
    """Lay `slots` onto machines (see the module docstring). `cheapest` finds the cheapest
    offer for some resources (None: none fits); a phase no offer fits gets no machine."""
    ordered = sorted(slots, key=lambda s: (s.start_h, s.phase_id))
    held: list[tuple[OfferChoice, list[PhaseSlot]]] = []
    placed: set[str] = set()
    for slot in ordered:
        if slot.phase_id in placed:
            continue
        target = next((m for m in held if _fits(m[0], m[1], slot, idle_h)), None)
        if target is not None:
            target[1].append(slot)
            placed.add(slot.phase_id)
            continue
        alone = cheapest(slot.resources)
        if alone is None:
            continue
        # Phases starting with this one may share one larger machine instead.
        group = [slot] + [
            other
            for other in ordered
            if other.phase_id not in placed
            and other is not slot
            and abs(other.start_h - slot.start_h) < SAME_TIME_H
        ]
        offer, members = alone, [slot]
        if len(group) > 1:
            bigger = cheapest(combined([s.resources for s in group]))
            singles = [cheapest(s.resources) for s in group]
            if bigger is not None and all(s is not None for s in singles):
                choice = choose_packing(
                    [s.end_h - s.start_h for s in group],
                    [s.dollars_per_hour for s in singles if s is not None],
                    bigger.dollars_per_hour,
                    prep_hours=prep_h,
                )
                if choice.packed and place_all(bigger.shape, [s.resources for s in group]):
                    offer, members = bigger, group
        held.append((offer, list(members)))
        placed.update(s.phase_id for s in members)
    machines = tuple(
        PlannedMachine(
            name=f"m{number}",
            offer=offer,
            phases=tuple(s.phase_id for s in members),
            rented_h=min(s.start_h for s in members) - prep_h,
            first_phase_h=min(s.start_h for s in members),
            released_h=max(s.end_h for s in members),
        )
        for number, (offer, members) in enumerate(held, start=1)
    )
    per_phase = 0.0
    for slot in ordered:
        single = cheapest(slot.resources)
        if single is not None:
            per_phase += single.dollars_per_hour * (slot.end_h - slot.start_h + prep_h)
    return MachinePlan(machines, per_phase)


def _fits(offer: OfferChoice, members: list[PhaseSlot], slot: PhaseSlot, idle_h: float) -> bool:
    """Whether `slot` can join a machine running `members`: still held when it starts, and its
    share fits beside every member that overlaps it."""
    if slot.start_h - max(s.end_h for s in members) > idle_h:
        return False  # the machine went back after its idle window
    overlapping = [s for s in members if s.start_h < slot.end_h and slot.start_h < s.end_h]
    return place_all(offer.shape, [*(s.resources for s in overlapping), slot.resources]) is not None


def clock(hours: float) -> str:
    """Hours as ``h:mm``."""
    minutes = round(hours * 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


def describe(plan: MachinePlan) -> list[str]:
    """The plan's lines for ``voltx plan``: each machine, then the alternative. Times count
    from the first rental (the timeline's phases start after their machine's prep)."""
    zero = min((machine.rented_h for machine in plan.machines), default=0.0)
    lines = ["machines (pool = true; times from the first rental):"]
    for machine in plan.machines:
        lines.append(
            f"  {machine.name}: {machine.offer.name} ({machine.offer.shape.describe()}) at "
            f"${machine.offer.dollars_per_hour:.2f}/h runs {', '.join(machine.phases)}; "
            f"rented at {clock(machine.rented_h - zero)}, prep {clock(machine.prep_h)}, "
            f"released at {clock(machine.released_h - zero)}; ${machine.dollars:.2f}"
        )
    saving = plan.per_phase_dollars - plan.dollars
    verdict = f"saves ${saving:.2f}" if saving >= 0 else f"costs ${-saving:.2f} more"
    lines.append(
        f"  pooled: ${plan.dollars:.2f}; one machine per phase (not chosen): "
        f"${plan.per_phase_dollars:.2f}; pooling {verdict}"
    )
    return lines


def offer_choice(offer: Offer, settings: VastSettings) -> OfferChoice:
    """An offer as a plan shows it: its GPUs (or "CPU machine"), shape and price."""
    gpus = f"{offer.num_gpus}x {offer.gpu_name}" if offer.num_gpus else "CPU machine"
    return OfferChoice(
        name=f"{gpus} (offer {offer.id})",
        shape=MachineShape.from_offer(offer.raw, settings.disk_gb),
        dollars_per_hour=offer.dph_total,
    )


def machine_plan_lines(
    slots: Sequence[PhaseSlot], client: VastClient, settings: VastSettings
) -> list[str]:
    """`describe` of the plan for `slots` on the offers the API lists now (one search per kind
    of phase); an API that cannot answer leaves the phases it could not price unplaced."""
    offers: dict[Resources, OfferChoice | None] = {}

    def cheapest(resources: Resources) -> OfferChoice | None:
        if resources not in offers:
            query = OfferQuery.build(
                resources, settings.offer_filters(), disk_gb=settings.disk_gb, limit=1
            )
            try:
                found = client.search_offers(query)
            except (VastAPIError, BackendError) as exc:
                log.warning("no Vast.ai offers for the machine plan", error=str(exc))
                found = []
            offers[resources] = offer_choice(found[0], settings) if found else None
        return offers[resources]

    plan = plan_machines(
        slots, cheapest, prep_h=settings.pool_prep_s / 3600, idle_h=settings.pool_idle_s / 3600
    )
    return describe(plan)
