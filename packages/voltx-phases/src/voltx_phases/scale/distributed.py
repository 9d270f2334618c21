"""The torch.distributed side of a data-parallel phase (docs/concepts.md, "Data parallel").

The worker launches the ranks under torchrun when a phase declares ``Resources(processes=N)``;
each rank's `PhaseContext` says its `rank` and `world_size`. `Ranks.start` joins the process
group from torchrun's environment (gloo on CPU, NCCL on GPUs) with a timeout on every
collective, so a rank whose peer died raises instead of waiting forever; under Ray Train it
takes the group Ray Train made. With one process (the scheduler clamped N to 1, or the phase
runs outside torchrun) every method is a no-op, and the same loop runs unchanged.

    ranks = Ranks.start(ctx, device, timeout_s=60)
    model = ranks.wrap(model)                   # DistributedDataParallel when world_size > 1
    if ranks.any(ctx.stop_requested()): ...     # every rank stops at the same step
    ranks.close()
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import timedelta

import attrs
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from voltx import PhaseContext


@attrs.frozen
class Ranks:
    """This process's place among the phase's ranks, and the collectives the loop needs."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @classmethod
    def start(cls, ctx: PhaseContext, device: torch.device, *, timeout_s: float) -> Ranks:
        """Join the process group (when there is more than one rank) and pick this rank's
        device: ``cuda:LOCAL_RANK`` on GPUs, where torchrun numbers the job's GPUs from 0."""
        if ctx.world_size == 1:
            return cls(device=device)
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", ctx.rank)))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            # Under Ray Train (the ray backend, docs/ray.md) the launcher made the group already.
            dist.init_process_group(
                backend="nccl" if device.type == "cuda" else "gloo",
                rank=ctx.rank,
                world_size=ctx.world_size,
                timeout=timedelta(seconds=timeout_s),
            )
        return cls(ctx.rank, ctx.world_size, device)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def leader(self) -> bool:
        """Rank 0: the one rank that commits checkpoints and writes the outputs."""
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """`model` under DistributedDataParallel (gradients averaged over the ranks in backward),
        or `model` itself with one rank."""
        if not self.distributed:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def no_sync(self, model: nn.Module, skip: bool) -> contextlib.AbstractContextManager[None]:
        """Skip the gradient all-reduce of this backward (a micro-batch before the last one of
        an accumulated step); the last micro-batch's backward reduces the sum."""
        if skip and isinstance(model, DistributedDataParallel):
            return model.no_sync()
        return contextlib.nullcontext()

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """`values` summed over the ranks (every rank gets the sum)."""
        if self.distributed:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one: a stop request reaches the ranks at
        different moments, and they must all stop after the same step."""
        if not self.distributed:
            return flag
        value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


@contextlib.contextmanager
def joined(ctx: PhaseContext, device: torch.device, *, timeout_s: float) -> Iterator[Ranks]:
    """`Ranks.start` … `Ranks.close`, the group left even when the loop raises."""
    ranks = Ranks.start(ctx, device, timeout_s=timeout_s)
    try:
        yield ranks
    finally:
        ranks.close()
