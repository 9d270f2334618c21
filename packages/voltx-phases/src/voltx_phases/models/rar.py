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
class RarModels:
    """The three learned parts one RAR iteration runs."""

    vfn: ScaledVFN
    attention: SlotAttention
    controller: DiffusionController


@attrs.frozen
class RarStep:
    states: torch.Tensor  # [B, S, D] after the iteration (unchanged where not moving)
    delta: torch.Tensor  # [B, S] |S' - S| (zero where not moving)
    vanished: torch.Tensor  # [B, S] bool: the update's norm fell below 1e-10 (slot left as it was)


def rar_iteration(
    models: RarModels,
    states: torch.Tensor,
    active: torch.Tensor,
    moving: torch.Tensor,
    *,
    time: float,
    progress: float,
    last_delta: torch.Tensor,
    noise: torch.Tensor,
    dt: float,
    beta: float,
) -> RarStep:
    """One iteration of the loop, shared by training (`unrolled_rar`) and inference
    (`models/inference.py`): the `moving` slots take the step, every `active` slot serves as a
    key and value of slot attention, frozen ones included.

    `time` is the VFN's t and `progress` the controller's iteration input; training passes
    iteration / steps for both, inference chooses (docs/phases.md, "Inference").
    """
    batch, slots, dim = states.shape
    times = torch.full((batch * slots,), time, device=states.device, dtype=states.dtype)
    drift = models.vfn(states.reshape(-1, dim), times).reshape(batch, slots, dim)
    messages = models.attention(states, active)
    sigma = models.controller(states, progress, last_delta)
    updated = states + dt * (drift + beta * messages)
    updated = updated + sigma[:, :, None] * noise
    # The original leaves a slot whose update vanished as it was, and counts it converged.
    vanished = moving & (updated.norm(dim=-1) < 1e-10)
    updated = F.normalize(updated, dim=-1)
    updated = torch.where((moving & ~vanished)[:, :, None], updated, states)
    return RarStep(updated, (updated - states).norm(dim=-1), vanished)


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
    batch, slots, _ = start.shape
    states = start
    delta = torch.zeros(batch, slots, device=start.device, dtype=start.dtype)
    deltas = []
    for iteration in range(1, settings.steps + 1):
        progress = iteration / settings.steps
        noise = torch.randn(
            states.shape, generator=generator, device=start.device, dtype=start.dtype
        )
        step = rar_iteration(
            RarModels(vfn, attention, controller),
            states,
            active,
            active,
            time=progress,
            progress=progress,
            last_delta=delta,
            noise=noise,
            dt=settings.dt,
            beta=settings.beta,
        )
        delta = step.delta
        deltas.append(delta)
        states = step.states
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
