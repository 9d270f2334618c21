"""The RAR loop (`docs/phases.md`, 2.1), unrolled and differentiable, for joint training of 2.1-2.3.

Each iteration, for the unconverged active slots:

    drift = VFN(S, t)                 t = iteration / max_iterations (the original's RAR had no t)
    msg   = SlotAttention(S)          over all active slots, frozen ones included
    S'    = normalize(S + dt * (drift + beta * msg) + sigma * noise)
    delta = |S' - S|;  a slot with delta < eps freezes

Training objective (the original never trained slot attention or a controller, so this is
voltx's choice, written down here): unroll `steps` iterations from the problem frame's slots and
pull the result towards the solution frame's slots,

    L_rar  = mean over active slots of (1 - cos(S_final, solution))
    L_iter = mean over iterations and slots of sigmoid((delta - eps) / temperature)

L_iter is a smooth count of "still moving" slot-iterations: lowering it asks the dynamics, and
through sigma the controller, to converge in fewer iterations. Noise is reparameterised
(sigma * fixed Gaussian draw), so gradients reach the controller.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F

from voltx_phases.models.diffusion_controller import DiffusionController
from voltx_phases.models.scaled_vfn import ScaledVFN
from voltx_phases.models.slot_attention import SlotAttention


@attrs.frozen
class RarSettings:
    steps: int = 4
    dt: float = 0.1
    beta: float = 0.5
    epsilon: float = 1e-3
    temperature: float = 1e-2


@attrs.frozen
class RarOutcome:
    states: torch.Tensor  # [B, S, D]
    alignment_loss: torch.Tensor
    iteration_loss: torch.Tensor
    moving_fraction: torch.Tensor  # hard fraction of slot-iterations with delta >= eps (a metric)


def unrolled_rar(
    vfn: ScaledVFN,
    attention: SlotAttention,
    controller: DiffusionController,
    start: torch.Tensor,
    target: torch.Tensor,
    active: torch.Tensor,
    settings: RarSettings,
    generator: torch.Generator | None = None,
) -> RarOutcome:
    """Run `settings.steps` RAR iterations from `start` and score them against `target`."""
    batch, slots, dim = start.shape
    states = start
    delta = torch.zeros(batch, slots, device=start.device, dtype=start.dtype)
    deltas = []
    for iteration in range(1, settings.steps + 1):
        progress = iteration / settings.steps
        times = torch.full((batch * slots,), progress, device=start.device, dtype=start.dtype)
        drift = vfn(states.reshape(-1, dim), times).reshape(batch, slots, dim)
        messages = attention(states, active)
        sigma = controller(states, progress, delta)
        noise = torch.randn(
            states.shape, generator=generator, device=start.device, dtype=start.dtype
        )
        updated = states + settings.dt * (drift + settings.beta * messages)
        updated = F.normalize(updated + sigma[:, :, None] * noise, dim=-1)
        updated = torch.where(active[:, :, None], updated, states)
        delta = (updated - states).norm(dim=-1)
        deltas.append(delta)
        states = updated
    weight = active.to(start.dtype)
    count = weight.sum().clamp_min(1.0)
    cosine = F.cosine_similarity(states, target, dim=-1)
    alignment = ((1.0 - cosine) * weight).sum() / count
    stacked = torch.stack(deltas)
    soft = torch.sigmoid((stacked - settings.epsilon) / settings.temperature).mean(dim=0)
    iteration_loss = (soft * weight).sum() / count
    with torch.no_grad():
        hard = (stacked >= settings.epsilon).to(start.dtype).mean(dim=0)
        moving = (hard * weight).sum() / count
    return RarOutcome(states, alignment, iteration_loss, moving)
