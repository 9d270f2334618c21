"""Phase 4.3's consolidation step and its forgetting gate (`docs/phases.md`, 4.3).

Consolidation is supervised flow matching, as phase 2.1 trains the VFN, on two kinds of pairs:
the verified pairs (a replayed problem's frame -> the frame of a sample of the model that passed
all its tests) and rehearsal pairs (earlier data: phase 2.0's problem -> reference-solution
frames), mixed in every batch so that the new pairs do not overwrite what the VFN already
does. The gate then compares the old problems' pass rate before and after.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np
import torch
import torch.nn.functional as F

from voltx_phases.models.encoder import SlotFrames
from voltx_phases.models.scaled_vfn import ScaledVFN
from voltx_phases.soft_core.pairs import PairSet, flow_batch


@attrs.frozen
class GateVerdict:
    """The forgetting gate's decision: `drop` is old pass rate before minus after."""

    drop: float
    limit: float

    @property
    def passed(self) -> bool:
        return self.drop <= self.limit + 1e-12

    def describe(self) -> str:
        return (
            f"old-problem pass rate fell by {self.drop:.4f} "
            f"({'within' if self.passed else 'beyond'} the limit of {self.limit:.4f})"
        )


def forgetting_gate(old_before: float, old_after: float, limit: float) -> GateVerdict:
    """Pass when the old problems' pass rate fell by at most `limit` (absolute)."""
    return GateVerdict(drop=old_before - old_after, limit=limit)


def verified_pairs(queries: SlotFrames, samples: SlotFrames) -> PairSet:
    """Pairs (problem frame -> verified sample frame), keeping those sharing a slot (as 2.1)."""
    shared = (queries.present & samples.present).cpu()
    keep = shared.any(dim=1)
    return PairSet(
        query=queries.vectors.detach().cpu()[keep],
        solution=samples.vectors.detach().cpu()[keep],
        shared=shared[keep],
    )


def mixed_batch(
    verified: PairSet | None,
    rehearsal: PairSet,
    batch_size: int,
    rehearsal_fraction: float,
    rng: np.random.Generator,
) -> PairSet:
    """`batch_size` pairs: a `rehearsal_fraction` share from the earlier data (all of it when
    nothing was verified), the rest verified pairs, each drawn with replacement."""
    from_verified = (
        0
        if verified is None or len(verified) == 0
        else batch_size - round(batch_size * rehearsal_fraction)
    )
    parts: list[PairSet] = []
    if from_verified and verified is not None:
        parts.append(verified.take(torch.from_numpy(rng.integers(0, len(verified), from_verified))))
    old = batch_size - from_verified
    parts.append(rehearsal.take(torch.from_numpy(rng.integers(0, len(rehearsal), old))))
    return _concat(parts)


def _concat(parts: Sequence[PairSet]) -> PairSet:
    return PairSet(
        query=torch.cat([p.query for p in parts]),
        solution=torch.cat([p.solution for p in parts]),
        shared=torch.cat([p.shared for p in parts]),
    )


def consolidation_step(
    vfn: ScaledVFN,
    batch: PairSet,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    device: torch.device,
) -> float:
    """One AdamW step of flow matching, MSE(VFN(x_t, t), a - q), on `batch`."""
    optimizer.zero_grad(set_to_none=True)
    flow = flow_batch(batch, "query", generator, device)
    loss = F.mse_loss(vfn(flow.x_t, flow.t), flow.target)
    if torch.isfinite(loss):
        torch.autograd.backward(loss)
        optimizer.step()
    return float(loss.detach())
