"""Phase 4.3, sleep consolidation: replay, consolidate, and keep the result only if it does not
forget (`docs/phases.md`, 4.3).

    voltx run 4.3                          # tiny profile
    voltx run 4.3 --profile full --backend vast
    python -c 'import voltx; voltx.run("4.3")'

1. **before**: greedy pass@1 on old problems (HumanEval + MBPP) and on a held-out set of new
   problems (APPS, never replayed);
2. **replay**: sample `replay_samples` programs for each replayed problem; keep those that pass
   every test (verified, high-reward: at least +0.5 in 4.2's table whatever their certainty);
3. **consolidate**: `steps` AdamW steps of flow matching on (problem frame -> verified sample
   frame) pairs mixed with rehearsal pairs from phase 2.0's frames (`consolidation.py`);
4. **validate**: the same pass@1 after. When the old problems' pass rate fell by more than
   `max_old_drop` the phase fails with a `PhaseError` and writes nothing to its outputs, so the
   store keeps no `vfn_sleep`; otherwise it commits the consolidated soft core and a report
   with the gain on the new problems.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voltx import PhaseContext, PhaseError, PhaseStopped
from voltx_phases._common.devices import resolve_device
from voltx_phases._common.training_state import read_training_state, write_training_state
from voltx_phases.alignment.alignment_reports import plot_curves, write_metrics
from voltx_phases.alignment.consolidation import (
    consolidation_step,
    forgetting_gate,
    mixed_batch,
    verified_pairs,
)
from voltx_phases.alignment.policy import Policy, pass_rate, verify
from voltx_phases.alignment.problem_pool import draw_problems
from voltx_phases.alignment.sleep_config import OLD_DATASETS, SleepConfig
from voltx_phases.datasets.schema import Problem
from voltx_phases.soft_core.pairs import PairSet, load_pairs

OUTPUT = "vfn_sleep"
REPORT = "vfn_sleep_report"
_EVAL_SEED = 9_999_991


def run(ctx: PhaseContext) -> None:
    config: SleepConfig = ctx.config
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device, ctx)
    old, new_held_out, replay = _problems(ctx, config)
    rehearsal = _rehearsal(ctx, config)
    torch.manual_seed(config.seed)
    policy = Policy.load(ctx.inputs, "vfn_rlvf", device)
    # Only the VFN consolidates; slot attention and the controller are carried over unchanged.
    optimizer = torch.optim.AdamW(
        policy.rar.vfn.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    loop: dict[str, Any] = {"step": 0, "before": None, "verified": None, "history": []}
    latest = ctx.checkpoints.latest()
    if latest is not None:
        loop = read_training_state(Path(latest.path), policy.modules(), optimizer)
        ctx.log.info("resuming", step=loop["step"])

    def measure() -> dict[str, float]:
        return {
            "old": pass_rate(policy, old, config.policy, _EVAL_SEED),
            "new": pass_rate(policy, new_held_out, config.policy, _EVAL_SEED + 1),
        }

    if loop["before"] is None:
        loop["before"] = measure()
        loop["verified"] = _replay(policy, replay, config)
        ctx.log.info("replayed", before=loop["before"], verified=len(loop["verified"]))
        _save(ctx, policy, optimizer, loop)
    verified = _verified_pairs(policy, replay, loop["verified"])

    while loop["step"] < config.steps:
        step = loop["step"]
        rng = np.random.default_rng([config.seed, step])
        batch = mixed_batch(verified, rehearsal, config.batch_size, config.rehearsal_fraction, rng)
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        loss = consolidation_step(policy.rar.vfn, batch, optimizer, generator, device)
        if not np.isfinite(loss):
            raise PhaseError(ctx.phase_id, f"loss is {loss} at step {step + 1}; try a lower 4.3.lr")
        loop["step"] = step + 1
        loop["history"].append({"step": step + 1, "loss": loss})
        if (step + 1) % config.log_every_steps == 0 or step == 0:
            ctx.metrics.log_metrics(step + 1, loss=loss)
            ctx.progress(step + 1, config.steps, loss=loss)
        stopping = ctx.stop_requested()
        if (step + 1) % config.checkpoint_every_steps == 0 or stopping or step + 1 == config.steps:
            _save(ctx, policy, optimizer, loop)
        if stopping:
            raise PhaseStopped(ctx.phase_id, f"step {step + 1}")

    before, after = loop["before"], measure()
    gate = forgetting_gate(before["old"], after["old"], config.max_old_drop)
    ctx.metrics.log_metrics(
        loop["step"],
        old_before=before["old"],
        old_after=after["old"],
        new_before=before["new"],
        new_after=after["new"],
    )
    if not gate.passed:
        # Nothing has been written to the outputs: the store keeps 4.2's soft core as the
        # latest, and the consolidated weights live only in this phase's checkpoints.
        raise PhaseError(
            ctx.phase_id,
            f"consolidation rejected: {gate.describe()} (HumanEval + MBPP pass@1 "
            f"{before['old']:.4f} -> {after['old']:.4f}); nothing was committed",
        )
    ctx.log.info("consolidation kept", gate=gate.describe(), new_gain=after["new"] - before["new"])
    policy.save(ctx.outputs[OUTPUT])
    report = ctx.outputs[REPORT]
    write_metrics(
        report,
        {
            "old_before": before["old"],
            "old_after": after["old"],
            "old_drop": gate.drop,
            "max_old_drop": gate.limit,
            "new_before": before["new"],
            "new_after": after["new"],
            "new_gain": after["new"] - before["new"],
            "old_problems": len(old),
            "new_problems": len(new_held_out),
            "replayed_problems": len(replay),
            "verified_samples": len(loop["verified"]),
            "verified_pairs": 0 if verified is None else len(verified),
            "rehearsal_pairs": len(rehearsal),
            "steps": config.steps,
        },
        loop["history"],
    )
    plot_curves(
        report / "loss_curve.png",
        loop["history"],
        ("loss",),
        f"Phase {ctx.phase_id}: consolidation flow-matching loss",
    )


def _problems(
    ctx: PhaseContext, config: SleepConfig
) -> tuple[list[Problem], list[Problem], list[Problem]]:
    """(old problems, new held-out problems, replayed problems)."""
    old = draw_problems(ctx, OLD_DATASETS, (0,) * len(OLD_DATASETS), config.seed)
    if config.old_problems:
        old = old[:: max(1, len(old) // config.old_problems)][: config.old_problems]
    pool = draw_problems(ctx, config.new_datasets, (0,) * len(config.new_datasets), config.seed)
    random.Random(config.seed).shuffle(pool)
    if not old or len(pool) < config.gain_problems + 1:
        raise PhaseError(
            ctx.phase_id,
            f"{len(old)} old and {len(pool)} new usable problem(s): need old ones and more new "
            f"ones than the {config.gain_problems} held out; lower 4.3.gain_problems",
        )
    held_out = pool[: config.gain_problems]
    replay = pool[config.gain_problems : config.gain_problems + config.replay_problems]
    return old, held_out, replay


def _rehearsal(ctx: PhaseContext, config: SleepConfig) -> PairSet:
    frames = ctx.inputs["problem_frames"]
    missing = [d for d in config.rehearsal_datasets if not (frames / f"{d}.safetensors").is_file()]
    if missing:
        raise PhaseError(ctx.phase_id, f"problem_frames has no {missing[0]}.safetensors")
    pairs = load_pairs(frames, config.rehearsal_datasets)
    if len(pairs) == 0:
        raise PhaseError(ctx.phase_id, "no rehearsal pairs in problem_frames")
    return pairs


def _replay(policy: Policy, problems: list[Problem], config: SleepConfig) -> list[list[Any]]:
    """[problem index, code] of each distinct replayed sample that passed verification."""
    kept: list[list[Any]] = []
    chunk = 32
    for start in range(0, len(problems), chunk):
        part = problems[start : start + chunk]
        rollout = policy.rollout(
            [p.query for p in part], config.replay_samples, config.policy, config.seed + start
        )
        seen: set[tuple[int, str]] = set()
        for row, report in enumerate(verify(part, rollout, config.policy)):
            key = (start + row // config.replay_samples, rollout.codes[row])
            if report.all_passed and report.pass_rate >= config.min_pass_rate and key not in seen:
                seen.add(key)
                kept.append(list(key))
    return kept


def _verified_pairs(
    policy: Policy, problems: list[Problem], verified: list[list[Any]]
) -> PairSet | None:
    if not verified:
        return None
    queries = policy.model.encode([problems[index].query for index, _ in verified])
    samples = policy.model.encode([code for _, code in verified])
    return verified_pairs(queries, samples)


def _save(
    ctx: PhaseContext, policy: Policy, optimizer: torch.optim.Optimizer, loop: dict[str, Any]
) -> None:
    with ctx.checkpoints.save(int(loop["step"])) as folder:
        write_training_state(Path(folder), policy.modules(), optimizer, loop)
