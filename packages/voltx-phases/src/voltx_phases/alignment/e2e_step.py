"""The losses of one phase-4.1 step (`docs/phases.md`, 4.1): 2.1's flow-matching loss on
problem pairs, and REINFORCE on sampled code scored by its tests.

    loss = flow_weight * L_FM + reinforce_weight * L_REINFORCE          (0.7 and 0.3)
    L_FM = MSE(VFN(x_t, t), a - q) + rar_weight * (L_rar + iteration_weight * L_iter)   (2.1's)

Every random draw of a step comes from generators seeded by (seed, step, stream), so a step
depends only on the weights it starts from: a resumed run replays it exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from voltx_phases.alignment.config import E2eConfig
from voltx_phases.alignment.rollouts import PolicySettings
from voltx_phases.models.rar import RarSettings, unrolled_rar
from voltx_phases.soft_core.pairs import PairSet, flow_batch
from voltx_phases.soft_core.vfn_step import Models

# Streams of per-step random draws.
PROBLEMS, ROLLOUT_NOISE, SAMPLING, FLOW_PAIRS, FLOW_DRAWS = range(5)


def step_seed(seed: int, step: int, stream: int) -> int:
    """The seed of `stream`'s draws at optimizer step `step` (0-based)."""
    return (seed * 1_000_003 + step * 7919 + stream * 104_729) % (2**63 - 1)


def step_generator(seed: int, step: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(step_seed(seed, step, stream))


def policy_settings(config: E2eConfig) -> PolicySettings:
    return PolicySettings(
        config.rar_steps, config.rar_dt, config.rar_beta, config.temperature, config.max_tokens
    )


def choose(count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """`min(size, count)` distinct indices below `count`."""
    return torch.randperm(count, generator=generator)[: min(size, count)]


def flow_matching_loss(
    models: Models,
    pairs: PairSet,
    config: E2eConfig,
    generator: torch.Generator,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """2.1's loss on `pairs`: (the whole term, its flow-matching MSE alone)."""
    flow = flow_batch(pairs, config.source, generator, device)
    flow_loss = F.mse_loss(models.vfn(flow.x_t, flow.t), flow.target)
    if config.rar_weight == 0:
        return flow_loss, flow_loss
    outcome = unrolled_rar(
        models.vfn,
        models.attention,
        models.controller,
        pairs.query.to(device),
        pairs.solution.to(device),
        pairs.shared.to(device),
        RarSettings(config.rar_steps, config.rar_dt, config.rar_beta),
        generator=generator if device.type == "cpu" else None,
    )
    rar = outcome.alignment_loss + config.iteration_weight * outcome.iteration_loss
    return flow_loss + config.rar_weight * rar, flow_loss


def validation_loss(
    models: Models, valid: PairSet, config: E2eConfig, stage_index: int, device: torch.device
) -> float:
    """Flow-matching MSE on the stage's held-out pairs, with a fixed draw of t per stage, so
    the value before and after the stage compare (it must not blow up under REINFORCE)."""
    generator = torch.Generator().manual_seed(config.seed + 1000 + stage_index)
    with torch.no_grad():
        flow = flow_batch(valid, config.source, generator, device)
        return float(F.mse_loss(models.vfn(flow.x_t, flow.t), flow.target))
