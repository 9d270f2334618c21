"""The intent router: which strand (at most one) a frame goes to (`docs/phases.md`, "Hard core").

    decision = route(frame, default_strands())
    if decision.activated: ...  # run decision.strand_name on the frame

One global argmax of the cosine over every (strand, present slot) pair; ties go to the earlier
strand, then the earlier slot. The winner is activated only if its cosine reaches that strand's
threshold (>=); otherwise the frame passes through and a non-activated decision is recorded.
"""

from __future__ import annotations

import attrs
import numpy as np

from voltx_phases.hard_core.frame import SlotFrame
from voltx_phases.hard_core.strands import Strand, capability_matrix
from voltx_phases.hard_core.vectors import cosine_matrix


@attrs.frozen
class RoutingDecision:
    """What the router chose. `strand_name`, `slot` and `similarity` describe the best pair even
    when it falls below the threshold; all three are None when the frame has no present slot."""

    strand_name: str | None
    slot: int | None
    similarity: float | None
    activated: bool


NO_ROUTE = RoutingDecision(strand_name=None, slot=None, similarity=None, activated=False)


def route(frame: SlotFrame, strands: tuple[Strand, ...]) -> RoutingDecision:
    """The routing decision for `frame` over `strands` (their order breaks ties)."""
    slots = frame.present_slots
    if slots.size == 0 or not strands:
        return NO_ROUTE
    # [K, P]: strand-major, so the row-major flat argmax (first maximum wins) prefers the earlier
    # strand, then the earlier present slot, as the original's nested loops with a strict > do.
    similarities = cosine_matrix(capability_matrix(strands), frame.r0[slots])
    best_strand, best_column = np.unravel_index(int(np.argmax(similarities)), similarities.shape)
    strand = strands[int(best_strand)]
    similarity = float(similarities[best_strand, best_column])
    return RoutingDecision(
        strand_name=strand.name,
        slot=int(slots[best_column]),
        similarity=similarity,
        activated=similarity >= strand.threshold,
    )
