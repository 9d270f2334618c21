"""The hard core read over one frame, as the original's pipeline and safety layer order it:
safety check, route, certainty (`docs/phases.md`, "Hard core").

    readings = read_batch(r0, present, gamma)   # numpy [B, S, 256], [B, S], [B, S]
    readings[0].routing.strand_name, readings[0].certainty.global_gamma, readings[0].safety.level

What a model reports per sample: which strand its frame routes to, its global gamma and its
safety verdict. Strands and axioms default to the constant ones; calibrated ones (phases 3.1 and
3.3) are passed in the same way.
"""

from __future__ import annotations

import attrs
import numpy as np

from voltx_phases.hard_core.certainty import CertaintyReport, propagate
from voltx_phases.hard_core.frame import SlotFrame
from voltx_phases.hard_core.router import RoutingDecision, route
from voltx_phases.hard_core.safety import Axiom, SafetyVerdict, assess, default_axioms
from voltx_phases.hard_core.strands import Strand, default_strands


@attrs.frozen
class HardCoreReading:
    """The hard core's three answers about one frame."""

    routing: RoutingDecision
    certainty: CertaintyReport
    safety: SafetyVerdict


def read_frame(
    frame: SlotFrame,
    strands: tuple[Strand, ...] | None = None,
    axioms: tuple[Axiom, ...] | None = None,
) -> HardCoreReading:
    """Safety verdict, routing decision and global gamma of `frame`."""
    return HardCoreReading(
        routing=route(frame, default_strands() if strands is None else strands),
        certainty=propagate(frame),
        safety=assess(frame, default_axioms() if axioms is None else axioms),
    )


def read_batch(
    r0: np.ndarray,
    present: np.ndarray,
    gamma: np.ndarray,
    strands: tuple[Strand, ...] | None = None,
    axioms: tuple[Axiom, ...] | None = None,
) -> list[HardCoreReading]:
    """`read_frame` for each frame of a batch: `r0` [B, S, 256], `present` [B, S], `gamma` [B, S].
    The strand and axiom vectors are built once for the batch."""
    strands = default_strands() if strands is None else strands
    axioms = default_axioms() if axioms is None else axioms
    vectors, mask, certainty = np.asarray(r0), np.asarray(present), np.asarray(gamma)
    if vectors.ndim != 3 or mask.shape != vectors.shape[:2] or certainty.shape != mask.shape:
        raise ValueError(
            "a batch is r0 [B, S, 256] with present and gamma [B, S], got "
            f"{vectors.shape}, {mask.shape}, {certainty.shape}"
        )
    return [
        read_frame(SlotFrame.from_arrays(vectors[b], mask[b], certainty[b]), strands, axioms)
        for b in range(vectors.shape[0])
    ]
