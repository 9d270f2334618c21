"""Phase 2.1 training-step overhead: voltx's step over a bare PyTorch loop on the same batches.

    python bench/train_step.py [--steps 30] [--device cpu]

Both loops use the same modules (ScaledVFN, slot attention, diffusion controller), the same
batches and the same losses (flow-matching MSE + unrolled RAR); the bare loop writes the maths
inline, with no voltx code in it. Printed per config: ms/step each way, the ratio (target <= 1.05)
and samples/s (problems per second).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "phases"))

from voltx_phases.models.diffusion_controller import DiffusionController
from voltx_phases.models.rar import RarSettings
from voltx_phases.models.scaled_vfn import ScaledVFN, VfnShape
from voltx_phases.models.slot_attention import SlotAttention
from voltx_phases.soft_core.config import VfnTrainingConfig
from voltx_phases.soft_core.pairs import PairSet
from voltx_phases.soft_core.vfn_step import Models, train_step


def synthetic_pairs(problems: int, seed: int = 0) -> PairSet:
    generator = torch.Generator().manual_seed(seed)
    query = F.normalize(torch.randn(problems, 16, 256, generator=generator), dim=-1)
    solution = F.normalize(
        0.8 * torch.roll(query, -7, dims=-1)
        + 0.1 * torch.rand(problems, 16, 256, generator=generator),
        dim=-1,
    )
    shared = torch.rand(problems, 16, generator=generator) < 0.25
    shared[:, 0] = True
    return PairSet(query, solution * shared[..., None], shared)


def make_models(shape: VfnShape, device: torch.device) -> Models:
    torch.manual_seed(0)
    return Models(
        ScaledVFN(shape).to(device), SlotAttention().to(device), DiffusionController().to(device)
    )


def voltx_loop(
    models: Models, batches: list[PairSet], config: VfnTrainingConfig, device: torch.device
) -> float:
    optimizer = torch.optim.AdamW(models.parameters(), lr=1e-4, weight_decay=0.01)
    settings = RarSettings(config.rar_steps, config.rar_dt, config.rar_beta)
    generator = torch.Generator().manual_seed(1)
    started = time.perf_counter()
    for batch in batches:
        train_step(models, batch, optimizer, config, settings, generator, device)
    _sync(device)
    return time.perf_counter() - started


def bare_loop(
    models: Models, batches: list[PairSet], config: VfnTrainingConfig, device: torch.device
) -> float:
    vfn, attention, controller = models.vfn, models.attention, models.controller
    optimizer = torch.optim.AdamW(models.parameters(), lr=1e-4, weight_decay=0.01)
    generator = torch.Generator().manual_seed(1)
    started = time.perf_counter()
    for batch in batches:
        optimizer.zero_grad(set_to_none=True)
        t_problem = torch.rand(len(batch), generator=generator)
        mask = batch.shared
        q, a = batch.query[mask], batch.solution[mask]
        t = t_problem[:, None].expand(-1, 16)[mask]
        x_t = ((1 - t[:, None]) * q + t[:, None] * a).to(device)
        flow = F.mse_loss(vfn(x_t, t.to(device)), (a - q).to(device))
        states = batch.query.to(device)
        target = batch.solution.to(device)
        active = mask.to(device)
        delta = torch.zeros(states.shape[:2], device=device)
        soft = []
        for iteration in range(1, config.rar_steps + 1):
            progress = iteration / config.rar_steps
            times = torch.full((states.shape[0] * 16,), progress, device=device)
            drift = vfn(states.reshape(-1, 256), times).reshape(states.shape)
            messages = attention(states, active)
            sigma = controller(states, progress, delta)
            noise = torch.randn(states.shape, generator=generator)
            updated = F.normalize(
                states
                + config.rar_dt * (drift + config.rar_beta * messages)
                + sigma[..., None] * noise.to(device),
                dim=-1,
            )
            updated = torch.where(active[..., None], updated, states)
            delta = (updated - states).norm(dim=-1)
            soft.append(torch.sigmoid((delta - 1e-3) / 1e-2))
            states = updated
        weight = active.float()
        count = weight.sum().clamp_min(1)
        align = ((1 - F.cosine_similarity(states, target, dim=-1)) * weight).sum() / count
        moving = (torch.stack(soft).mean(0) * weight).sum() / count
        loss = flow + config.rar_weight * (align + config.iteration_weight * moving)
        loss.backward()
        # The same bookkeeping voltx does: losses to host once, finiteness check.
        assert torch.isfinite(loss).item()
        optimizer.step()
    _sync(device)
    return time.perf_counter() - started


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    configs = {
        "tiny (H=64, B=1, batch 8)": (VfnShape(64, 1, 4), 8),
        "mid (H=512, B=3, batch 32)": (VfnShape(512, 3, 32), 32),
    }
    worst = 0.0
    for label, (shape, batch_size) in configs.items():
        config = VfnTrainingConfig(
            hidden_dim=shape.hidden_dim, num_blocks=shape.num_blocks, time_freqs=shape.time_freqs
        )
        pairs = synthetic_pairs(batch_size * args.steps)
        batches = [
            pairs.take(slice(i * batch_size, (i + 1) * batch_size)) for i in range(args.steps)
        ]
        voltx_times, bare_times = [], []
        for _ in range(args.repeat):
            # Alternate, each on fresh identical models, so drift in machine load hits both.
            bare_times.append(bare_loop(make_models(shape, device), batches, config, device))
            voltx_times.append(voltx_loop(make_models(shape, device), batches, config, device))
        voltx_s, bare_s = min(voltx_times), min(bare_times)
        ratio = voltx_s / bare_s
        worst = max(worst, ratio)
        print(
            f"{label}: voltx {voltx_s / args.steps * 1000:.1f} ms/step, bare "
            f"{bare_s / args.steps * 1000:.1f} ms/step, ratio {ratio:.3f}, "
            f"{batch_size * args.steps / voltx_s:.0f} samples/s on {device}"
        )
    verdict = "ok" if worst <= 1.05 else "over target"
    print(f"worst voltx / bare: {worst:.3f} (target <= 1.05: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
