"""One optimizer step of phase 5.1: flow matching mixed with distillation of the teacher's
velocity, over data-parallel ranks and accumulated micro-batches (docs/phases.md, 5.1).

    loss = alpha * MSE(v_S(x_t, t), a - q) + (1 - alpha) * MSE(v_S(x_t, t), v_T(x_t, t))

Both terms are means over every shared-slot row of the *global* batch. Each rank takes its
contiguous share of the batch's problems and each micro-batch adds ``sum of squared errors /
(global rows x 256)`` to its gradient, times the rank count because DistributedDataParallel
averages the ranks' gradients: the reduced gradient is that of the global mean, whatever the
rank count or the accumulation. The times t are drawn for the whole global batch on every rank
from the step's own generator, so a run on 2 ranks sees exactly the rows a run on 1 sees.
"""

from __future__ import annotations

import math

import attrs
import torch
from torch import nn

from voltx_phases.models.scaled_vfn import SLOT_DIM, ScaledVFN
from voltx_phases.scale.distributed import Ranks
from voltx_phases.soft_core.pairs import PairSet

LOSS_KEYS = ("loss", "flow", "distill")


def alpha_at(step: int, total_steps: int, start: float, ramp: float) -> float:
    """The flow-matching share at 0-based `step`: linear from `start` to 1 over the first
    ``ramp * total_steps`` steps, then 1 (the teacher's guidance is annealed out)."""
    span = ramp * total_steps
    if span <= 0:
        return 1.0
    return min(1.0, start + (1.0 - start) * step / span)


def draw_times(problems: int, seed: int) -> torch.Tensor:
    """One t per problem of the global batch, from a generator of the step alone (`seed`), so
    a resumed run and every rank draw the same times without carrying generator state."""
    return torch.rand(problems, generator=torch.Generator().manual_seed(seed))


@attrs.frozen
class FlowRows:
    x_t: torch.Tensor  # [N, 256]
    t: torch.Tensor  # [N]
    target: torch.Tensor  # [N, 256], the velocity a - q


def flow_rows(pairs: PairSet, t_problem: torch.Tensor, device: torch.device) -> FlowRows:
    """Every shared slot of `pairs` as a row x_t = (1 - t) q + t a, in problem order."""
    mask = pairs.shared
    q = pairs.query[mask]
    a = pairs.solution[mask]
    t = t_problem[:, None].expand(-1, mask.shape[1])[mask]
    x_t = (1.0 - t[:, None]) * q + t[:, None] * a
    return FlowRows(x_t.to(device), t.to(device), (a - q).to(device))


def distillation_step(
    student: nn.Module,
    teacher: ScaledVFN,
    batch: PairSet,
    t_problem: torch.Tensor,
    alpha: float,
    optimizer: torch.optim.Optimizer,
    ranks: Ranks,
    accumulation: int,
) -> dict[str, float]:
    """One AdamW step of `student` (DistributedDataParallel-wrapped with several ranks) on the
    global `batch`; returns the global mean losses (the same on every rank)."""
    optimizer.zero_grad(set_to_none=True)
    share = len(batch) // ranks.world_size
    mine = torch.arange(ranks.rank * share, (ranks.rank + 1) * share)
    global_elements = float(batch.shared.sum()) * SLOT_DIM
    totals = torch.zeros(len(LOSS_KEYS), dtype=torch.float64)
    parts = torch.tensor_split(mine, accumulation)
    for index, part in enumerate(parts):
        rows = flow_rows(batch.take(part), t_problem[part], ranks.device)
        with ranks.no_sync(student, skip=index < len(parts) - 1):
            velocity = student(rows.x_t, rows.t)
            with torch.no_grad():
                guide = teacher(rows.x_t, rows.t)
            flow = (velocity - rows.target).pow(2).sum() / global_elements
            distill = (velocity - guide).pow(2).sum() / global_elements
            loss = alpha * flow + (1.0 - alpha) * distill
            (loss * ranks.world_size).backward()
        totals += torch.stack([loss, flow, distill]).detach().to("cpu", torch.float64)
    values = dict(zip(LOSS_KEYS, ranks.sum(totals.to(ranks.device)).tolist(), strict=True))
    # A NaN must not reach the weights the last checkpoint will be compared with.
    if math.isfinite(values["loss"]):
        optimizer.step()
    return values


def velocity_gap(student: nn.Module, teacher: ScaledVFN, rows: FlowRows) -> float:
    """The largest |v_S - v_T| over `rows`: 0 (to rounding) right after a function-preserving
    growth, recorded in the report."""
    with torch.no_grad():
        return float((student(rows.x_t, rows.t) - teacher(rows.x_t, rows.t)).abs().max())


def validation_flow_loss(model: nn.Module, rows: FlowRows) -> float:
    """Flow-matching MSE of `model` on fixed validation rows."""
    with torch.no_grad():
        return float((model(rows.x_t, rows.t) - rows.target).pow(2).mean())
