"""One optimizer step of phase 2.1, its losses, and the validation loss (docs/phases.md, 2.1).

Loss per step: MSE(VFN(x_t, t), a - q) + rar_weight * (L_rar + iteration_weight * L_iter), the
RAR terms from `voltx_phases.models.rar`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator

import attrs
import torch
import torch.nn.functional as F

from voltx_phases._common.schedules import warmup_cosine_lr
from voltx_phases.models.diffusion_controller import DiffusionController
from voltx_phases.models.rar import RarSettings, unrolled_rar
from voltx_phases.models.scaled_vfn import ScaledVFN
from voltx_phases.models.slot_attention import SlotAttention
from voltx_phases.soft_core.config import VfnTrainingConfig
from voltx_phases.soft_core.pairs import PairSet, flow_batch


@attrs.define
class Models:
    """The three modules 2.1 trains together, keyed by their weights files' names."""

    vfn: ScaledVFN
    attention: SlotAttention
    controller: DiffusionController

    def modules(self) -> dict[str, torch.nn.Module]:
        return {
            "scaled_vfn": self.vfn,
            "slot_attention": self.attention,
            "diffusion_controller": self.controller,
        }

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        for module in self.modules().values():
            yield from module.parameters()


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """The LambdaLR factor for 0-based `step`: the shared warmup + cosine, peak 1."""
    return warmup_cosine_lr(
        step + 1, max_lr=1.0, warmup_steps=warmup, total_steps=total, min_lr_ratio=min_ratio
    )


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 over a module's tensors in name order: proves which weights a stage started from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def train_step(
    models: Models,
    batch: PairSet,
    optimizer: torch.optim.Optimizer,
    config: VfnTrainingConfig,
    settings: RarSettings,
    generator: torch.Generator,
    device: torch.device,
) -> dict[str, float]:
    """One optimizer step on `batch`: forward, backward (in micro-batches), AdamW step.

    The losses come back as floats through one device sync, not one per value.
    """
    optimizer.zero_grad(set_to_none=True)
    chunks = 2**config.micro_batch_halvings
    autocast = config.bf16 and device.type == "cuda"
    keys = ("loss", "flow", "rar", "iterations")
    totals = torch.zeros(len(keys), device=device)
    # Every loss is a mean over shared slots, so weighting each micro-batch by its share of the
    # slots makes the accumulated gradient that of the whole batch.
    slots = float(batch.shared.sum())
    for part in torch.tensor_split(torch.arange(len(batch)), chunks):
        if len(part) == 0:
            continue
        weight = float(batch.shared[part].sum()) / slots
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            parts = _losses(models, batch.take(part), config, settings, generator, device)
        torch.autograd.backward(parts["loss"] * weight)
        totals += torch.stack([parts[k].detach().float() for k in keys]) * weight
    # Check before stepping: a NaN must not reach the weights the last checkpoint will be
    # compared with.
    values = dict(zip(keys, totals.tolist(), strict=True))
    if math.isfinite(values["loss"]):
        optimizer.step()
    return values


def _losses(
    models: Models,
    batch: PairSet,
    config: VfnTrainingConfig,
    settings: RarSettings,
    generator: torch.Generator,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    flow = flow_batch(batch, config.source, generator, device)
    flow_loss = F.mse_loss(models.vfn(flow.x_t, flow.t), flow.target)
    if config.rar_weight == 0:
        zero = torch.zeros((), device=device)
        return {"loss": flow_loss, "flow": flow_loss, "rar": zero, "iterations": zero}
    outcome = unrolled_rar(
        models.vfn,
        models.attention,
        models.controller,
        batch.query.to(device),
        batch.solution.to(device),
        batch.shared.to(device),
        settings,
        generator=generator if device.type == "cpu" else None,
    )
    rar = outcome.alignment_loss + config.iteration_weight * outcome.iteration_loss
    return {
        "loss": flow_loss + config.rar_weight * rar,
        "flow": flow_loss,
        "rar": outcome.alignment_loss,
        "iterations": outcome.moving_fraction,
    }


def validation_loss(
    models: Models,
    valid: PairSet,
    config: VfnTrainingConfig,
    stage_index: int,
    device: torch.device,
) -> float:
    """Flow-matching MSE on the held-out problems, with a fixed draw of t for comparability."""
    generator = torch.Generator().manual_seed(config.seed + 1000 + stage_index)
    with torch.no_grad():
        flow = flow_batch(valid, config.source, generator, device)
        return float(F.mse_loss(models.vfn(flow.x_t, flow.t), flow.target))
