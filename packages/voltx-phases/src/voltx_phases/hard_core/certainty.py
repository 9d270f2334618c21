"""The certainty engine: a frame's global gamma is the least gamma of its present slots, 0 if it has
none (`docs/phases.md`, "Hard core").

    report = propagate(frame)
    report.global_gamma, report.weakest_slot
"""

from __future__ import annotations

import attrs
import numpy as np

from voltx_phases.hard_core.frame import SlotFrame


@attrs.frozen
class CertaintyReport:
    """The frame's global gamma and the slot that set it (the earliest on a tie; None when
    the frame is empty)."""

    global_gamma: float
    weakest_slot: int | None


def propagate(frame: SlotFrame) -> CertaintyReport:
    """Global gamma = min over present slots of their gamma; an empty frame has gamma 0 and no
    weakest slot.

    A slot counts as present whatever its vector holds: the original's engine checks only that
    the slot exists, not that its R0 vector is set."""
    slots = frame.present_slots
    if slots.size == 0:
        return CertaintyReport(global_gamma=0.0, weakest_slot=None)
    gammas = frame.gamma[slots]
    weakest = int(np.argmin(gammas))
    return CertaintyReport(global_gamma=float(gammas[weakest]), weakest_slot=int(slots[weakest]))
